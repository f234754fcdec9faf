package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"

	"github.com/portcullis-mcp/portcullis/ent/privacy"
	"github.com/portcullis-mcp/portcullis/ent/schema/rule"
)

// Tenant is an isolated customer organisation.
type Tenant struct{ ent.Schema }

// Mixin of the Tenant.
func (Tenant) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}} }

// Fields of the Tenant.
func (Tenant) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().MaxLen(200),
		field.String("slug").NotEmpty().MaxLen(63).Unique(),
		// ed25519 key that signs this tenant's policy bundles.
		field.Bytes("signing_private_key").Sensitive(),
		field.Bytes("signing_public_key"),
		// The key a rotation will move to, announced in bundles signed by
		// the current one until the rotation completes.
		field.Bytes("next_signing_private_key").Optional().Nillable().Sensitive(),
		field.Bytes("next_signing_public_key").Optional().Nillable(),
		// Approvals a change request needs before it takes effect.
		field.Int("approvals_required").Default(1).Min(1).Max(10),
		// Upstreams may only be added from (and changed to) approved catalog entries.
		field.Bool("catalog_only").Default(false),
		// What gateways do with tool results and resource contents that hold
		// secrets or text aimed at the model.
		field.Enum("result_action").Values("annotate", "redact", "block").Default("redact"),
		// The identity provider whose bearer JWTs the gateways accept from MCP clients.
		field.String("client_oidc_issuer").Default("").MaxLen(512),
		field.String("client_group_claim").Default("groups").MaxLen(128),
	}
}

// Policy of the Tenant: a viewer sees only its own tenant. Tenants are
// created by the identity service under viewer.System.
func (Tenant) Policy() ent.Policy {
	return privacy.Policy{
		Mutation: privacy.MutationPolicy{rule.DenyViewerMutations(), rule.FilterTenantIDRule()},
		Query:    privacy.QueryPolicy{rule.FilterTenantIDRule()},
	}
}
