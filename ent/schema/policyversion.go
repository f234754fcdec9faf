package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// PolicyVersion is one compiled, signed bundle of a gateway.
type PolicyVersion struct{ ent.Schema }

// Mixin of the PolicyVersion.
func (PolicyVersion) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}}
}

// Fields of the PolicyVersion.
func (PolicyVersion) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		field.Uint64("version").Immutable(),
		// SHA-256 of the bundle content without version and time, to skip no-op compiles.
		field.String("content_sha256").Immutable(),
		field.Bytes("payload").Immutable(),
		field.Bytes("signature").Immutable(),
		field.String("key_id").Immutable(),
	}
}

// Edges of the PolicyVersion.
func (PolicyVersion) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("gateway", Gateway.Type).Ref("policy_versions").Field("gateway_id").Unique().Required().Immutable(),
	}
}

// Indexes of the PolicyVersion.
func (PolicyVersion) Indexes() []ent.Index {
	return []ent.Index{index.Fields("gateway_id", "version").Unique()}
}
