package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Connection is a person's authorization of a gateway at an upstream that
// acts as each person (oauth_user), as the gateway reported it in its call
// events. The tokens stay in the gateway; an admin's revocation reaches it
// in the bundle.
type Connection struct{ ent.Schema }

// Mixin of the Connection.
func (Connection) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the Connection.
func (Connection) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		field.String("upstream").NotEmpty().MaxLen(48).Immutable(),
		field.String("principal").NotEmpty().MaxLen(256).Immutable(),
		field.String("upstream_identity").Default("").MaxLen(256),
		field.Time("connected_at"),
		field.Enum("state").Values("connected", "disconnected", "revoked").Default("connected"),
		// When the state last changed, by the gateway's clock for its events.
		field.Time("changed_at"),
		// An admin's revocation: when, by whom. The gateway deletes grants
		// made at or before revoked_at.
		field.Time("revoked_at").Optional().Nillable(),
		field.String("revoked_by").Default("").MaxLen(320),
	}
}

// Indexes of the Connection.
func (Connection) Indexes() []ent.Index {
	return []ent.Index{index.Fields("gateway_id", "upstream", "principal").Unique(), index.Fields("tenant_id", "changed_at")}
}
