package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Gateway is a deployment group of agents, e.g. one VPC.
type Gateway struct{ ent.Schema }

// Mixin of the Gateway.
func (Gateway) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the Gateway.
func (Gateway) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().MaxLen(63),
		// MCP clients must present a credential (client key or token).
		field.Bool("client_auth_required").Default(false),
		// tools/call limits in calls per minute; 0 means unlimited.
		field.Int("rate_principal_per_minute").Default(0).Min(0).Max(1000000),
		field.Int("rate_tool_per_minute").Default(0).Min(0).Max(1000000),
	}
}

// Edges of the Gateway.
func (Gateway) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("agents", Agent.Type),
		edge.To("upstreams", Upstream.Type),
		edge.To("virtual_servers", VirtualServer.Type),
		edge.To("enrollment_tokens", EnrollmentToken.Type),
		edge.To("policy_versions", PolicyVersion.Type),
	}
}

// Indexes of the Gateway.
func (Gateway) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "name").Unique()}
}
