package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// ChangeRequest asks for a tool's definition to be approved (or its removal
// acknowledged). Gateways open them when discovery sees a new, changed or
// removed tool; approvers may also propose one by hand.
type ChangeRequest struct{ ent.Schema }

// Mixin of the ChangeRequest.
func (ChangeRequest) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the ChangeRequest.
func (ChangeRequest) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("tool_id", uuid.UUID{}).Immutable(),
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		// package_* are about a package upstream's dependency tree.
		field.Enum("kind").Values("tool_added", "tool_changed", "tool_removed", "package_added", "package_changed", "package_removed").Immutable(),
		field.Enum("status").Values("pending", "approved", "rejected", "superseded").Default("pending"),
		// The pinned definition when the request was opened ("" if none).
		field.String("from_sha256").Default("").Immutable(),
		// The definition to approve ("" for a removal).
		field.String("to_sha256").Default("").Immutable(),
		// Who asked: "gateway:<agent>" for discovery, a user or key otherwise.
		field.String("requested_by").NotEmpty().MaxLen(320).Immutable(),
		// Principal key of a human requester, who may not approve.
		field.String("requester_key").Default("").MaxLen(80).Immutable(),
		field.String("comment").Default("").MaxLen(2000).Immutable(),
		field.Int("approvals_required").Min(1).Max(10).Immutable(),
		field.Time("decided_at").Optional().Nillable(),
		field.String("decided_by").Default("").MaxLen(320),
		// Policy version compiled when the decision took effect.
		field.Uint64("policy_version").Default(0),
		field.UUID("superseded_by", uuid.UUID{}).Optional().Nillable(),
	}
}

// Edges of the ChangeRequest.
func (ChangeRequest) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("tool", Tool.Type).Ref("change_requests").Field("tool_id").Unique().Required().Immutable(),
		edge.To("approvals", Approval.Type),
	}
}

// Indexes of the ChangeRequest.
func (ChangeRequest) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "status"), index.Fields("tool_id", "status")}
}

// Approval is one person's decision on a change request.
type Approval struct{ ent.Schema }

// Mixin of the Approval.
func (Approval) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TimeMixin{}, TenantMixin{}} }

// Fields of the Approval.
func (Approval) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("change_request_id", uuid.UUID{}).Immutable(),
		field.Enum("decision").Values("approve", "reject").Immutable(),
		// Stable principal key ("user:<id>" or "apikey:<id>") and its display name.
		field.String("actor_key").NotEmpty().MaxLen(80).Immutable(),
		field.String("actor").NotEmpty().MaxLen(320).Immutable(),
		field.String("comment").Default("").MaxLen(2000).Immutable(),
	}
}

// Edges of the Approval.
func (Approval) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("change_request", ChangeRequest.Type).Ref("approvals").Field("change_request_id").Unique().Required().Immutable(),
	}
}

// Indexes of the Approval.
func (Approval) Indexes() []ent.Index {
	return []ent.Index{index.Fields("change_request_id", "actor_key").Unique()}
}
