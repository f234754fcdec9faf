package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent/schematype"
)

// Tool is something an upstream offers that a model reads — a tool, a prompt,
// a resource or a resource template — as discovered by the gateways. Each is
// pinned by the hash of its canonical definition.
type Tool struct{ ent.Schema }

// Mixin of the Tool.
func (Tool) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the Tool.
func (Tool) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("upstream_id", uuid.UUID{}).Immutable(),
		field.Enum("kind").Values("tool", "prompt", "resource", "resource_template", "package").Default("tool").Immutable(),
		// Tool or prompt name, resource URI or URI template.
		field.String("name").NotEmpty().MaxLen(1024),
		// Hash of the definition last reported live ("" once removed).
		field.String("live_sha256").Default(""),
		// Hash of the approved definition ("" when not pinned).
		field.String("pinned_sha256").Default(""),
		// Data-flow labels: private_data, untrusted_content, external_sink.
		field.Strings("flow_labels").Optional(),
		field.Time("first_seen").Default(time.Now).Immutable(),
		field.Time("last_seen").Default(time.Now),
	}
}

// Edges of the Tool.
func (Tool) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("upstream", Upstream.Type).Ref("tools").Field("upstream_id").Unique().Required().Immutable(),
		edge.To("versions", ToolVersion.Type),
		edge.To("change_requests", ChangeRequest.Type),
	}
}

// Indexes of the Tool.
func (Tool) Indexes() []ent.Index {
	return []ent.Index{index.Fields("upstream_id", "kind", "name").Unique()}
}

// ToolVersion is one distinct definition of a tool, by canonical hash.
type ToolVersion struct{ ent.Schema }

// Mixin of the ToolVersion.
func (ToolVersion) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TenantMixin{}} }

// Fields of the ToolVersion.
func (ToolVersion) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("tool_id", uuid.UUID{}).Immutable(),
		field.String("sha256").NotEmpty().Immutable(),
		// RFC 8785 canonical JSON.
		field.Bytes("definition").Immutable().MaxLen(1 << 20),
		// What the description scanner found in this definition.
		field.JSON("findings", []schematype.Finding{}).Optional(),
		field.Time("first_seen").Default(time.Now).Immutable(),
		field.Time("last_seen").Default(time.Now),
	}
}

// Edges of the ToolVersion.
func (ToolVersion) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tool", Tool.Type).Ref("versions").Field("tool_id").Unique().Required().Immutable(),
	}
}

// Indexes of the ToolVersion.
func (ToolVersion) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tool_id", "sha256").Unique()}
}
