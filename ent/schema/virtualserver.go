package schema

import (
	"regexp"

	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent/schematype"
)

// nameRE is the shape of names that appear in URLs and tool namespaces.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// VirtualServer is an endpoint clients connect to, aggregating upstreams.
type VirtualServer struct{ ent.Schema }

// Mixin of the VirtualServer.
func (VirtualServer) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}}
}

// Fields of the VirtualServer.
func (VirtualServer) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		field.String("name").NotEmpty().MaxLen(63).Match(nameRE),
		field.Strings("upstreams"),
		// Tool and prompt names as the upstreams name them, without "upstream__".
		field.Bool("unprefixed").Default(false),
		// Per-tool names that replace the default exposed name.
		field.JSON("renames", []schematype.ToolRename{}).Optional(),
	}
}

// Edges of the VirtualServer.
func (VirtualServer) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("gateway", Gateway.Type).Ref("virtual_servers").Field("gateway_id").Unique().Required().Immutable(),
	}
}

// Indexes of the VirtualServer.
func (VirtualServer) Indexes() []ent.Index {
	return []ent.Index{index.Fields("gateway_id", "name").Unique()}
}
