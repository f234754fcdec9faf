package access

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/bound"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/connection"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// maxConnections bounds a listing.
const maxConnections = 1000

// Connections lists people's authorizations at upstreams that act as each
// person, newest change first; gatewayID narrows it (uuid.Nil: all).
func (s *Service) Connections(ctx context.Context, tenantID, gatewayID uuid.UUID) ([]*ent.Connection, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	q := s.db.Connection.Query().Where(connection.TenantID(tenantID))
	if gatewayID != uuid.Nil {
		q = q.Where(connection.GatewayID(gatewayID))
	}
	return q.Order(ent.Desc(connection.FieldChangedAt)).Limit(maxConnections).All(ctx)
}

var errNotYours = fmt.Errorf("%w: revoking another person's connection needs the admin role", authz.ErrPermissionDenied)

// RevokeConnection revokes a person's authorization at an upstream: the
// gateway deletes the grant when its next bundle arrives, and the person
// is asked to consent again.
//
// Admins revoke anyone's; a member revokes their own (OwnPrincipal).
func (s *Service) RevokeConnection(ctx context.Context, tenantID, id uuid.UUID) (*ent.Connection, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	// A member may revoke their own connection (checked below, on the row
	// read in the transaction); the privacy rules let viewers change
	// nothing, so their write bypasses them.
	wctx, own := ctx, ""
	if authz.Require(ctx, tenantID, viewer.RoleAdmin) != nil {
		if own = s.OwnPrincipal(ctx, tenantID); own == "" {
			return nil, errNotYours
		}
		wctx = viewer.System(ctx)
	}
	var after *ent.Connection
	err := audit.WithTx(wctx, s.db, func(tx *ent.Client) error {
		c, err := tx.Connection.Query().Where(connection.TenantID(tenantID), connection.ID(id)).Only(wctx)
		if err != nil {
			return authz.DBError("connection "+id.String(), err)
		}
		if own != "" && c.Principal != own {
			return errNotYours
		}
		now := s.now()
		if after, err = tx.Connection.UpdateOne(c).SetState(connection.StateRevoked).SetRevokedAt(now).
			SetRevokedBy(bound.String(authz.Actor(ctx), 320)).SetChangedAt(now).Save(wctx); err != nil {
			return err
		}
		return audit.Record(wctx, tx, audit.Event{TenantID: tenantID, Action: "connection.revoke", TargetType: "connection",
			TargetID: c.ID.String(), TargetName: c.Upstream + " " + c.Principal, Before: c, After: after})
	})
	if err != nil {
		return nil, err
	}
	return after, s.notify.GatewayChanged(ctx, after.GatewayID)
}

// OwnPrincipal is the principal gateways know the signed-in person by:
// "user:<subject>" when the person signed in to the console with the
// identity provider the tenant's gateways authenticate clients with; ""
// otherwise (an API key, another provider).
func (s *Service) OwnPrincipal(ctx context.Context, tenantID uuid.UUID) string {
	v, ok := viewer.FromContext(ctx)
	if !ok || v.UserID == uuid.Nil || v.TenantID != tenantID {
		return ""
	}
	sys := viewer.System(ctx) // the person's own record, and the tenant's provider
	u, err := s.db.User.Get(sys, v.UserID)
	if err != nil {
		return ""
	}
	t, err := s.db.Tenant.Get(sys, tenantID)
	if err != nil || t.ClientOidcIssuer == "" || strings.TrimSuffix(t.ClientOidcIssuer, "/") != strings.TrimSuffix(u.Issuer, "/") {
		return ""
	}
	return "user:" + u.Subject
}
