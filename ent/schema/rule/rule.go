// Package rule holds the ent privacy rules that enforce tenant isolation in
// the data layer.
package rule

import (
	"context"

	"entgo.io/ent"
	"entgo.io/ent/entql"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent/privacy"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// FilterTenantRule narrows every query and mutation of a tenant-owned entity
// to the viewer's tenant, and denies when the context carries no viewer.
func FilterTenantRule() privacy.QueryMutationRule {
	type tenantFilter interface{ WhereTenantID(entql.ValueP) }
	return privacy.FilterFunc(func(ctx context.Context, f privacy.Filter) error {
		v, ok := viewer.FromContext(ctx)
		if !ok || v.TenantID == uuid.Nil {
			return privacy.Denyf("no viewer in context")
		}
		tf, ok := f.(tenantFilter)
		if !ok {
			return privacy.Denyf("unexpected filter type %T", f)
		}
		tf.WhereTenantID(entql.ValueEQ(v.TenantID))
		return privacy.Skip
	})
}

// FilterTenantIDRule is FilterTenantRule for the Tenant entity itself.
func FilterTenantIDRule() privacy.QueryMutationRule {
	type idFilter interface{ WhereID(entql.ValueP) }
	return privacy.FilterFunc(func(ctx context.Context, f privacy.Filter) error {
		v, ok := viewer.FromContext(ctx)
		if !ok || v.TenantID == uuid.Nil {
			return privacy.Denyf("no viewer in context")
		}
		tf, ok := f.(idFilter)
		if !ok {
			return privacy.Denyf("unexpected filter type %T", f)
		}
		tf.WhereID(entql.ValueEQ(v.TenantID))
		return privacy.Skip
	})
}

// DenyMismatchedTenant refuses to create an entity in another tenant than
// the viewer's.
func DenyMismatchedTenant() privacy.MutationRule {
	type tenantMutation interface{ TenantID() (uuid.UUID, bool) }
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		tm, ok := m.(tenantMutation)
		if !ok {
			return privacy.Denyf("unexpected mutation type %T", m)
		}
		id, set := tm.TenantID()
		if !set {
			return privacy.Skip
		}
		v, ok := viewer.FromContext(ctx)
		if !ok || v.TenantID != id {
			return privacy.Denyf("tenant mismatch")
		}
		return privacy.Skip
	})
}

// DenyViewerMutations refuses every write by a read-only member, whatever the
// service layer above does.
func DenyViewerMutations() privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		v, ok := viewer.FromContext(ctx)
		if !ok || v.Role <= viewer.RoleViewer {
			return privacy.Denyf("read-only viewer")
		}
		return privacy.Skip
	})
}
