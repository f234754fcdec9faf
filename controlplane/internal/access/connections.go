package access

import (
	"context"

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

// RevokeConnection revokes a person's authorization at an upstream: the
// gateway deletes the grant when its next bundle arrives, and the person
// is asked to consent again.
func (s *Service) RevokeConnection(ctx context.Context, tenantID, id uuid.UUID) (*ent.Connection, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	var after *ent.Connection
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		c, err := tx.Connection.Query().Where(connection.TenantID(tenantID), connection.ID(id)).Only(ctx)
		if err != nil {
			return authz.DBError("connection "+id.String(), err)
		}
		now := s.now()
		if after, err = tx.Connection.UpdateOne(c).SetState(connection.StateRevoked).SetRevokedAt(now).
			SetRevokedBy(bound.String(authz.Actor(ctx), 320)).SetChangedAt(now).Save(ctx); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "connection.revoke", TargetType: "connection",
			TargetID: c.ID.String(), TargetName: c.Upstream + " " + c.Principal, Before: c, After: after})
	})
	if err != nil {
		return nil, err
	}
	return after, s.notify.GatewayChanged(ctx, after.GatewayID)
}
