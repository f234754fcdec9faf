package tenant

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/accessrule"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/approval"
	"github.com/portcullis-mcp/portcullis/ent/changerequest"
	"github.com/portcullis-mcp/portcullis/ent/enrollmenttoken"
	"github.com/portcullis-mcp/portcullis/ent/gateway"
	"github.com/portcullis-mcp/portcullis/ent/policyversion"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/toolversion"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ent/virtualserver"
)

// RenameGateway gives a gateway a new name; its id, agents, upstreams and
// virtual servers stay, and so do the clients' URLs (/mcp/{server}).
func (s *Service) RenameGateway(ctx context.Context, tenantID, gatewayID uuid.UUID, name string) (*ent.Gateway, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	if !nameRE.MatchString(name) {
		return nil, authz.Invalid("gateway name %q must be 1 to 63 letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	before, err := s.db.Gateway.Query().Where(gateway.TenantID(tenantID), gateway.ID(gatewayID)).Only(ctx)
	if err != nil {
		return nil, authz.DBError("gateway "+gatewayID.String(), err)
	}
	if before.Name == name {
		return before, nil
	}
	var after *ent.Gateway
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		var err error
		if after, err = tx.Gateway.UpdateOneID(before.ID).SetName(name).Save(ctx); err != nil {
			return authz.DBError(fmt.Sprintf("renaming gateway %q to %q", before.Name, name), err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "gateway.update", TargetType: "gateway",
			TargetID: after.ID.String(), TargetName: name, Before: before, After: after})
	})
	return after, err
}

// DeleteGateway removes a gateway with everything configured on it and its
// agents; the audit log, call events and traffic rollups keep the history.
// While agents are connected it refuses unless force is set; then it
// returns how many were, and their streams are cut (on every replica) by
// the notification that follows.
func (s *Service) DeleteGateway(ctx context.Context, tenantID, gatewayID uuid.UUID, force bool) (int, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return 0, err
	}
	g, err := s.db.Gateway.Query().Where(gateway.TenantID(tenantID), gateway.ID(gatewayID)).WithAgents().Only(ctx)
	if err != nil {
		return 0, authz.DBError("gateway "+gatewayID.String(), err)
	}
	var live []string
	for _, a := range g.Edges.Agents {
		if a.Connected && !a.Revoked {
			live = append(live, a.Hostname)
		}
	}
	if len(live) > 0 && !force {
		return 0, fmt.Errorf("%w: gateway %q has %d connected agents (%s); delete it with force to cut them off: they keep enforcing their last policy until stopped, and must enroll again to serve another gateway",
			authz.ErrPrecondition, g.Name, len(live), strings.Join(live, ", "))
	}
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		upIDs, err := tx.Upstream.Query().Where(upstream.GatewayID(g.ID)).IDs(ctx)
		if err != nil {
			return err
		}
		toolIDs, err := tx.Tool.Query().Where(tool.UpstreamIDIn(upIDs...)).IDs(ctx)
		if err != nil {
			return err
		}
		crIDs, err := tx.ChangeRequest.Query().Where(changerequest.Or(changerequest.GatewayID(g.ID), changerequest.ToolIDIn(toolIDs...))).IDs(ctx)
		if err != nil {
			return err
		}
		// Children first: the schema's foreign keys hold.
		for _, del := range []interface {
			Exec(context.Context) (int, error)
		}{
			tx.Approval.Delete().Where(approval.ChangeRequestIDIn(crIDs...)),
			tx.ChangeRequest.Delete().Where(changerequest.IDIn(crIDs...)),
			tx.ToolVersion.Delete().Where(toolversion.ToolIDIn(toolIDs...)),
			tx.Tool.Delete().Where(tool.IDIn(toolIDs...)),
			tx.Upstream.Delete().Where(upstream.IDIn(upIDs...)),
			tx.VirtualServer.Delete().Where(virtualserver.GatewayID(g.ID)),
			tx.AccessRule.Delete().Where(accessrule.GatewayID(g.ID)),
			tx.EnrollmentToken.Delete().Where(enrollmenttoken.GatewayID(g.ID)),
			tx.PolicyVersion.Delete().Where(policyversion.GatewayID(g.ID)),
			tx.Agent.Delete().Where(agent.GatewayID(g.ID)),
		} {
			if _, err := del.Exec(ctx); err != nil {
				return fmt.Errorf("deleting gateway %q: %w", g.Name, err)
			}
		}
		if err := tx.Gateway.DeleteOneID(g.ID).Exec(ctx); err != nil {
			return authz.DBError(fmt.Sprintf("deleting gateway %q", g.Name), err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "gateway.delete", TargetType: "gateway",
			TargetID: g.ID.String(), TargetName: g.Name, Before: map[string]any{
				"name": g.Name, "agents": len(g.Edges.Agents), "connected_agents": live, "forced": force,
				"upstreams": len(upIDs), "tools": len(toolIDs), "change_requests": len(crIDs)}})
	})
	if err != nil {
		return 0, err
	}
	// The policy service finds the gateway gone and signals its streams,
	// which close when they see their agent removed.
	return len(live), s.notify.GatewayChanged(ctx, g.ID)
}

// EnrollmentTokens lists a gateway's enrollment tokens, newest first.
func (s *Service) EnrollmentTokens(ctx context.Context, tenantID, gatewayID uuid.UUID) ([]*ent.EnrollmentToken, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	if _, err := s.Gateway(ctx, tenantID, gatewayID); err != nil {
		return nil, err
	}
	return s.db.EnrollmentToken.Query().Where(enrollmenttoken.TenantID(tenantID), enrollmenttoken.GatewayID(gatewayID)).
		Order(ent.Desc(enrollmenttoken.FieldCreatedAt)).Limit(500).All(ctx)
}

// RevokeEnrollmentToken deletes a token so that it enrolls no more agents;
// the agents it enrolled stay.
func (s *Service) RevokeEnrollmentToken(ctx context.Context, tenantID, tokenID uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	tok, err := s.db.EnrollmentToken.Query().Where(enrollmenttoken.TenantID(tenantID), enrollmenttoken.ID(tokenID)).WithGateway().Only(ctx)
	if err != nil {
		return authz.DBError("enrollment token "+tokenID.String(), err)
	}
	return audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		if err := tx.EnrollmentToken.DeleteOneID(tok.ID).Exec(ctx); err != nil {
			return authz.DBError("revoking enrollment token", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "enrollment_token.revoke", TargetType: "gateway",
			TargetID: tok.GatewayID.String(), TargetName: tok.Edges.Gateway.Name,
			Before: map[string]any{"token_id": tok.ID, "expires_at": tok.ExpiresAt, "max_uses": tok.MaxUses, "uses": tok.Uses}})
	})
}

// RevokeAgent refuses an agent for good: its streams are cut on every
// replica and its certificate is refused from then on, for syncing,
// telemetry and renewal. Revoking twice is harmless.
func (s *Service) RevokeAgent(ctx context.Context, tenantID, agentID uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	a, err := s.db.Agent.Query().Where(agent.TenantID(tenantID), agent.ID(agentID)).WithGateway().Only(ctx)
	if err != nil {
		return authz.DBError("agent "+agentID.String(), err)
	}
	if a.Revoked {
		return nil
	}
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		if err := tx.Agent.UpdateOneID(a.ID).SetRevoked(true).SetRevokedAt(time.Now()).Exec(ctx); err != nil {
			return authz.DBError("revoking agent", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "agent.revoke", TargetType: "agent",
			TargetID: a.ID.String(), TargetName: a.Hostname + " (gateway " + a.Edges.Gateway.Name + ")",
			Before: map[string]any{"gateway": a.Edges.Gateway.Name, "hostname": a.Hostname, "connected": a.Connected}})
	})
	if err != nil {
		return err
	}
	return s.notify.AgentsChanged(ctx, a.GatewayID)
}
