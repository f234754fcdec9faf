package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Upstream is an MCP server reachable from a gateway. Credentials are never
// stored here: they are resolved inside the VPC by the gateway.
type Upstream struct{ ent.Schema }

// Mixin of the Upstream.
func (Upstream) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the Upstream.
func (Upstream) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		field.String("name").NotEmpty().MaxLen(48).Match(nameRE),
		field.Enum("transport").Values("streamable_http", "stdio", "package"),
		field.String("url").Default("").MaxLen(2048),
		field.String("command").Default("").MaxLen(1024),
		field.Strings("args").Optional(),
		field.JSON("labels", map[string]string{}).Optional(),
		// The package a "package" upstream runs: ecosystem ("npm"), name,
		// exact version, archive integrity ("sha512-<base64>"), executable.
		field.String("package_ecosystem").Default("").MaxLen(16),
		field.String("package_name").Default("").MaxLen(214),
		field.String("package_version").Default("").MaxLen(128),
		field.String("package_integrity").Default("").MaxLen(256),
		field.String("package_bin").Default("").MaxLen(214),
		// The catalog entry (name@version) the upstream was added from, if any.
		field.String("catalog_entry").Default("").MaxLen(460),
		// Where gateways find the credential ("env:NAME" or "file:/path"), and its header.
		field.String("credential_ref").Default("").MaxLen(1024),
		field.String("credential_header").Default("").MaxLen(128),
		// Whose credential requests for a client carry: "static" (credential_ref
		// for everybody), "none", "oauth_user" or "token_exchange"; with a
		// per-person mode the gateway's OAuth client and what it asks for.
		field.Enum("auth_mode").Values("static", "none", "oauth_user", "token_exchange").Default("static"),
		field.String("oauth_client_id").Default("").MaxLen(256),
		field.String("oauth_client_secret_ref").Default("").MaxLen(1024),
		field.Strings("oauth_scopes").Optional(),
		field.String("oauth_issuer").Default("").MaxLen(1024),
		field.String("oauth_resource").Default("").MaxLen(1024),
		// What the upstream may not ask of clients (default: everything allowed).
		field.Bool("deny_sampling").Default(false),
		field.Bool("deny_elicitation").Default(false),
		field.Bool("deny_roots").Default(false),
		// Reachability as last reported by an agent.
		field.Bool("reachable").Default(false),
		field.String("last_error").Default("").MaxLen(4096),
	}
}

// Edges of the Upstream.
func (Upstream) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("gateway", Gateway.Type).Ref("upstreams").Field("gateway_id").Unique().Required().Immutable(),
		edge.To("tools", Tool.Type),
	}
}

// Indexes of the Upstream.
func (Upstream) Indexes() []ent.Index {
	return []ent.Index{index.Fields("gateway_id", "name").Unique()}
}
