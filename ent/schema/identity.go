package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent/privacy"
)

var roles = []string{"owner", "admin", "approver", "viewer"}

// User is a person who logs in to the console through OIDC. Users are global;
// what they may see comes from their memberships.
type User struct{ ent.Schema }

// Mixin of the User.
func (User) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

// Fields of the User.
func (User) Fields() []ent.Field {
	return []ent.Field{
		field.String("issuer").NotEmpty().MaxLen(512).Immutable(),
		field.String("subject").NotEmpty().MaxLen(255).Immutable(),
		field.String("email").Default("").MaxLen(320),
		field.String("name").Default("").MaxLen(200),
		field.Time("last_login_at").Optional().Nillable(),
	}
}

// Edges of the User.
func (User) Edges() []ent.Edge {
	return []ent.Edge{edge.To("memberships", Membership.Type)}
}

// Indexes of the User.
func (User) Indexes() []ent.Index {
	return []ent.Index{index.Fields("issuer", "subject").Unique(), index.Fields("email")}
}

// Policy of the User: users are read and written only by the identity
// service, under viewer.System.
func (User) Policy() ent.Policy { return systemOnly() }

// Membership grants a user a role in a tenant.
type Membership struct{ ent.Schema }

// Mixin of the Membership.
func (Membership) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the Membership.
func (Membership) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("user_id", uuid.UUID{}).Immutable(),
		field.Enum("role").Values(roles...),
	}
}

// Edges of the Membership.
func (Membership) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", User.Type).Ref("memberships").Field("user_id").Unique().Required().Immutable(),
	}
}

// Indexes of the Membership.
func (Membership) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "user_id").Unique()}
}

// Invitation lets the person with this email join a tenant with a role the
// first time they log in.
type Invitation struct{ ent.Schema }

// Mixin of the Invitation.
func (Invitation) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the Invitation.
func (Invitation) Fields() []ent.Field {
	return []ent.Field{
		field.String("email").NotEmpty().MaxLen(320),
		field.Enum("role").Values(roles...),
		field.String("invited_by").MaxLen(400),
		field.Time("expires_at"),
		field.Time("accepted_at").Optional().Nillable(),
	}
}

// Indexes of the Invitation.
func (Invitation) Indexes() []ent.Index {
	return []ent.Index{index.Fields("email")}
}

// APIKey is a tenant-scoped credential for the admin API and the CLI. Only a
// hash of its secret is stored.
type APIKey struct{ ent.Schema }

// Mixin of the APIKey.
func (APIKey) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the APIKey.
func (APIKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().MaxLen(63),
		field.Enum("role").Values(roles...),
		field.Bytes("secret_hash").Sensitive().Unique(),
		// The user who created the key; a tenant created with the key gets
		// this user as its owner.
		field.UUID("created_by", uuid.UUID{}).Immutable(),
		field.Time("last_used_at").Optional().Nillable(),
		field.Time("revoked_at").Optional().Nillable(),
	}
}

// Session is a console login. The cookie holds a random token; only its hash
// is stored.
type Session struct{ ent.Schema }

// Mixin of the Session.
func (Session) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}} }

// Fields of the Session.
func (Session) Fields() []ent.Field {
	return []ent.Field{
		field.Bytes("token_hash").Sensitive().Unique(),
		field.UUID("user_id", uuid.UUID{}),
		// The tenant the console currently shows; nil until chosen.
		field.UUID("tenant_id", uuid.UUID{}).Optional().Nillable(),
		field.String("csrf_token").Sensitive().MaxLen(64),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.Time("expires_at"),
	}
}

// Policy of the Session: system only.
func (Session) Policy() ent.Policy { return systemOnly() }

// AuditEvent records one admin action: who did what to which object, when,
// and the object before and after.
type AuditEvent struct{ ent.Schema }

// Mixin of the AuditEvent.
func (AuditEvent) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TenantMixin{}} }

// Fields of the AuditEvent.
func (AuditEvent) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").Default(time.Now).Immutable(),
		field.String("actor").MaxLen(400).Immutable(),
		field.String("action").MaxLen(100).Immutable(),
		field.String("target_type").MaxLen(50).Immutable(),
		field.String("target_id").MaxLen(100).Immutable(),
		field.String("target_name").Default("").MaxLen(200).Immutable(),
		field.JSON("before", map[string]any{}).Optional().Immutable(),
		field.JSON("after", map[string]any{}).Optional().Immutable(),
	}
}

// Indexes of the AuditEvent.
func (AuditEvent) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "created_at")}
}

// systemOnly denies every query and mutation that is not made under
// viewer.System.
func systemOnly() ent.Policy {
	return privacy.Policy{
		Mutation: privacy.MutationPolicy{privacy.AlwaysDenyRule()},
		Query:    privacy.QueryPolicy{privacy.AlwaysDenyRule()},
	}
}
