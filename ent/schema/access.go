package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// ClientKey authenticates an MCP client at the tenant's gateways. Only its
// hash is stored and sent to gateways.
type ClientKey struct{ ent.Schema }

// Mixin of the ClientKey.
func (ClientKey) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the ClientKey.
func (ClientKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().MaxLen(63),
		field.Strings("groups").Optional(),
		field.String("secret_hash").NotEmpty().Unique().Immutable().Sensitive(),
		field.Time("revoked_at").Optional().Nillable(),
	}
}

// Indexes of the ClientKey.
func (ClientKey) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "name").Unique()}
}

// AccessRule lets or stops a principal calling tools on a gateway's virtual
// servers, optionally depending on the call's arguments (CEL).
type AccessRule struct{ ent.Schema }

// Mixin of the AccessRule.
func (AccessRule) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the AccessRule.
func (AccessRule) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		// Evaluation order within the gateway.
		field.Int("position"),
		field.String("principal").NotEmpty().MaxLen(200),
		field.String("virtual_server").NotEmpty().MaxLen(63),
		field.String("tool_pattern").NotEmpty().MaxLen(200),
		field.Enum("effect").Values("allow", "deny"),
		field.String("condition").Default("").MaxLen(2000),
		field.String("description").Default("").MaxLen(500),
	}
}

// Indexes of the AccessRule.
func (AccessRule) Indexes() []ent.Index {
	return []ent.Index{index.Fields("gateway_id", "position")}
}
