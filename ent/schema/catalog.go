package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/portcullis-mcp/portcullis/ent/schematype"
)

// CatalogEntry is one version of a server in the tenant's catalog: a
// package at an exact version with its integrity, or a remote URL, with
// the credentials it needs. Admins add upstreams from approved entries;
// an entry (or a new version of one) is approved like a change request.
type CatalogEntry struct{ ent.Schema }

// Mixin of the CatalogEntry.
func (CatalogEntry) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the CatalogEntry.
func (CatalogEntry) Fields() []ent.Field {
	return []ent.Field{
		// The server's name, as the MCP Registry writes it (io.github.owner/name) or shorter.
		field.String("name").NotEmpty().MaxLen(200).Immutable(),
		field.String("version").NotEmpty().MaxLen(255).Immutable(),
		field.String("title").Default("").MaxLen(100).Immutable(),
		field.String("description").Default("").MaxLen(2000).Immutable(),
		field.Enum("transport").Values("streamable_http", "package").Immutable(),
		field.String("url").Default("").MaxLen(2048).Immutable(),
		field.String("package_ecosystem").Default("").MaxLen(16).Immutable(),
		field.String("package_name").Default("").MaxLen(214).Immutable(),
		field.String("package_version").Default("").MaxLen(128).Immutable(),
		field.String("package_integrity").Default("").MaxLen(256).Immutable(),
		field.String("package_bin").Default("").MaxLen(214).Immutable(),
		field.Strings("args").Optional().Immutable(),
		// What the server needs: environment variables (packages) or headers (remotes).
		field.JSON("credentials", []schematype.CatalogCredential{}).Optional().Immutable(),
		// Where it came from: "server.json".
		field.String("source").Default("").MaxLen(32).Immutable(),
		field.Enum("status").Values("pending", "approved", "rejected", "superseded").Default("pending"),
		field.String("requested_by").NotEmpty().MaxLen(320).Immutable(),
		field.String("requester_key").Default("").MaxLen(80).Immutable(),
		field.Int("approvals_required").Min(1).Max(10).Immutable(),
		field.JSON("decisions", []schematype.CatalogDecision{}).Optional(),
		// Revision counts decisions, so that one made on a stale read is refused.
		field.Int("revision").Default(0),
		field.Time("decided_at").Optional().Nillable(),
	}
}

// Indexes of the CatalogEntry.
func (CatalogEntry) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "name", "version").Unique()}
}
