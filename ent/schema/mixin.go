// Package schema defines the control plane's entities.
package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"entgo.io/ent/schema/mixin"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent/privacy"
	"github.com/portcullis-mcp/portcullis/ent/schema/rule"
)

// IDMixin gives an entity a random UUID primary key.
type IDMixin struct{ mixin.Schema }

// Fields of the IDMixin.
func (IDMixin) Fields() []ent.Field {
	return []ent.Field{field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable()}
}

// TimeMixin records creation and update times.
type TimeMixin struct{ mixin.Schema }

// Fields of the TimeMixin.
func (TimeMixin) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").Default(time.Now).Immutable(),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now),
	}
}

// TenantMixin scopes an entity to a tenant. Every tenant-owned entity uses it.
type TenantMixin struct{ mixin.Schema }

// Fields of the TenantMixin.
func (TenantMixin) Fields() []ent.Field {
	return []ent.Field{field.UUID("tenant_id", uuid.UUID{}).Immutable()}
}

// Edges of the TenantMixin.
func (TenantMixin) Edges() []ent.Edge {
	return []ent.Edge{edge.To("tenant", Tenant.Type).Field("tenant_id").Unique().Required().Immutable()}
}

// Indexes of the TenantMixin.
func (TenantMixin) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id")}
}

// Policy of the TenantMixin: every query and mutation is narrowed to the
// viewer's tenant; without a viewer it is denied. System jobs bypass it
// explicitly with viewer.System.
func (TenantMixin) Policy() ent.Policy {
	return privacy.Policy{
		Mutation: privacy.MutationPolicy{
			rule.DenyViewerMutations(),
			rule.DenyMismatchedTenant(),
			rule.FilterTenantRule(),
		},
		Query: privacy.QueryPolicy{rule.FilterTenantRule()},
	}
}
