// Package viewer carries who is acting, in which tenant and with which role,
// through a request's context. The ent privacy rules read it to filter every
// tenant-owned query (see ent/schema/rule).
package viewer

import (
	"context"
	"fmt"

	"entgo.io/ent/privacy"
	"github.com/google/uuid"
)

// Role is a member's role in a tenant. Roles are ordered: each one can do
// everything the ones below it can.
type Role int

// Roles, lowest first.
const (
	RoleNone Role = iota
	RoleViewer
	RoleApprover
	RoleAdmin
	RoleOwner
)

var roleNames = map[Role]string{RoleViewer: "viewer", RoleApprover: "approver", RoleAdmin: "admin", RoleOwner: "owner"}

// String returns the role's name as stored and shown.
func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return "none"
}

// ParseRole maps a stored or user-supplied name to a Role.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n == s {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q: use owner, admin, approver or viewer", s)
}

// Viewer is the principal of a request, bound to one tenant.
type Viewer struct {
	TenantID uuid.UUID
	Role     Role
	// UserID is set for people; APIKeyID for API keys.
	UserID   uuid.UUID
	APIKeyID uuid.UUID
	// KeyOwner is, for an API key, the user who created it: what the key
	// does, that person does (one approval per person, not per key).
	KeyOwner uuid.UUID
	// Actor names the principal in the audit log, e.g. "user:alice@example.com".
	Actor string
}

// Can reports whether the viewer holds at least role r.
func (v Viewer) Can(r Role) bool { return v.TenantID != uuid.Nil && v.Role >= r }

type ctxKey struct{}

// NewContext returns ctx carrying v.
func NewContext(ctx context.Context, v Viewer) context.Context {
	return context.WithValue(ctx, ctxKey{}, v)
}

// FromContext returns the viewer in ctx, if any.
func FromContext(ctx context.Context) (Viewer, bool) {
	v, ok := ctx.Value(ctxKey{}).(Viewer)
	return v, ok
}

// System returns a context that bypasses the tenant privacy rules. It is for
// the control plane's own jobs (agent sync, policy compilation, telemetry
// ingest, seeding) and must never wrap a request's context on behalf of a
// user. Grep for viewer.System to audit every bypass.
func System(ctx context.Context) context.Context {
	return privacy.DecisionContext(ctx, privacy.Allow)
}
