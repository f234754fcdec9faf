package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"github.com/google/uuid"
)

// EnrollmentToken is a secret an agent redeems to join a gateway, once by
// default; replicas of one gateway (a StatefulSet) can share a token issued
// for several uses. Only its SHA-256 is stored.
type EnrollmentToken struct{ ent.Schema }

// Mixin of the EnrollmentToken.
func (EnrollmentToken) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}}
}

// Fields of the EnrollmentToken.
func (EnrollmentToken) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		field.Bytes("secret_hash").Unique().Sensitive(),
		field.Time("expires_at"),
		field.Time("used_at").Optional().Nillable().Comment("last redemption"),
		field.Int("max_uses").Default(1).Positive(),
		field.Int("uses").Default(0).NonNegative(),
	}
}

// Edges of the EnrollmentToken.
func (EnrollmentToken) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("gateway", Gateway.Type).Ref("enrollment_tokens").Field("gateway_id").Unique().Required().Immutable(),
	}
}
