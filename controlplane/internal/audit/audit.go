// Package audit records every admin action as an AuditEvent, in the same
// transaction as the action, and lists them.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

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
	return Search(ctx, db, tenantID, Query{Limit: limit})
}

// Query narrows and pages the audit log.
type Query struct {
	// Action matches an action or, ending in ".", every action it starts
	// ("upstream." for upstream.create, upstream.update, …).
	Action string
	// Actor matches who acted, in part ("alice", "api_key:ci").
	Actor string
	Limit int
	// Before pages: only events older than this one (time, then id).
	Before *Cursor
}

// Cursor is the last event of a page.
type Cursor struct {
	Time time.Time
	ID   uuid.UUID
}

// Search returns the tenant's newest events matching q.
func Search(ctx context.Context, db *ent.Client, tenantID uuid.UUID, q Query) ([]*ent.AuditEvent, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 100
	}
	sel := db.AuditEvent.Query().Where(auditevent.TenantID(tenantID))
	switch a := bound.String(q.Action, 100); {
	case a == "":
	case strings.HasSuffix(a, "."):
		sel.Where(auditevent.ActionHasPrefix(a))
	default:
		sel.Where(auditevent.Action(a))
	}
	if q.Actor != "" {
		sel.Where(auditevent.ActorContainsFold(bound.String(q.Actor, 200)))
	}
	if c := q.Before; c != nil {
		sel.Where(auditevent.Or(auditevent.CreatedAtLT(c.Time), auditevent.And(auditevent.CreatedAtEQ(c.Time), auditevent.IDLT(c.ID))))
	}
	return sel.Order(ent.Desc(auditevent.FieldCreatedAt), ent.Desc(auditevent.FieldID)).Limit(q.Limit).All(ctx)
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
