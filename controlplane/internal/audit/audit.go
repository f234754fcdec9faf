// Package audit records every admin action as an AuditEvent, in the same
// transaction as the action, and lists them.
package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/bound"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/auditevent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// Event is one action to record.
type Event struct {
	TenantID   uuid.UUID
	Action     string // e.g. "gateway.create"
	TargetType string // e.g. "gateway"
	TargetID   string
	TargetName string
	// Before and After are the object's state; ent entities marshal without
	// their sensitive fields. Either may be nil.
	Before, After any
}

// Record writes e with the caller as actor using db, which should be the
// transaction of the action itself.
func Record(ctx context.Context, db *ent.Client, e Event) error {
	before, err := toMap(e.Before)
	if err != nil {
		return err
	}
	after, err := toMap(e.After)
	if err != nil {
		return err
	}
	_, err = db.AuditEvent.Create().SetTenantID(e.TenantID).SetActor(bound.String(authz.Actor(ctx), 400)).
		SetAction(e.Action).SetTargetType(e.TargetType).SetTargetID(e.TargetID).
		SetTargetName(bound.String(e.TargetName, 200)).SetBefore(before).SetAfter(after).Save(ctx)
	if err != nil {
		return fmt.Errorf("recording audit event: %w", err)
	}
	return nil
}

func toMap(v any) (map[string]any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("audit: encoding state: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("audit: decoding state: %w", err)
	}
	delete(m, "edges")
	return m, nil
}

// List returns the newest events of the tenant, at most limit.
func List(ctx context.Context, db *ent.Client, tenantID uuid.UUID, limit int) ([]*ent.AuditEvent, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	return db.AuditEvent.Query().Where(auditevent.TenantID(tenantID)).
		Order(ent.Desc(auditevent.FieldCreatedAt)).Limit(limit).All(ctx)
}

// WithTx runs fn in a transaction and commits it, or rolls back on error.
func WithTx(ctx context.Context, db *ent.Client, fn func(tx *ent.Client) error) error {
	tx, err := db.Tx(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx.Client()); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
