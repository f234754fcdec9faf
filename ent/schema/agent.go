package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"github.com/google/uuid"
)

// Agent is one running gateway instance.
type Agent struct{ ent.Schema }

// Mixin of the Agent.
func (Agent) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the Agent.
func (Agent) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		field.String("hostname").Default("").MaxLen(255),
		field.String("version").Default("").MaxLen(64),
		// SHA-256 of the agent's current client certificate (from enrollment
		// or its latest renewal).
		field.String("cert_fingerprint").Unique(),
		// The certificate a renewal replaced, still accepted until the agent
		// first uses the new one (a renewal whose answer was lost is retried
		// with it) or it expires.
		field.String("previous_cert_fingerprint").Optional().Nillable(),
		field.Time("cert_expires_at").Optional().Nillable(),
		field.Time("renewed_at").Optional().Nillable(),
		field.Time("revoked_at").Optional().Nillable(),
		field.Bool("connected").Default(false),
		field.Time("last_seen").Optional().Nillable(),
		field.Uint64("applied_version").Default(0),
		// When the agent ACKed applied_version.
		field.Time("applied_at").Optional().Nillable(),
		field.String("last_nack").Default("").MaxLen(4096),
		field.Bool("revoked").Default(false),
	}
}

// Edges of the Agent.
func (Agent) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("gateway", Gateway.Type).Ref("agents").Field("gateway_id").Unique().Required().Immutable(),
	}
}
