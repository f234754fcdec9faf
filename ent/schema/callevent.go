package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// CallEvent is one MCP request handled by a gateway (telemetry).
type CallEvent struct{ ent.Schema }

// Mixin of the CallEvent.
func (CallEvent) Mixin() []ent.Mixin { return []ent.Mixin{TenantMixin{}} }

// Fields of the CallEvent.
func (CallEvent) Fields() []ent.Field {
	return []ent.Field{
		// Agent-generated id; duplicates from re-sent batches are ignored.
		field.String("id").NotEmpty().MaxLen(64).Immutable(),
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		field.UUID("agent_id", uuid.UUID{}).Immutable(),
		field.Time("time").Immutable(),
		field.String("principal").Default("").MaxLen(256).Immutable(),
		field.String("virtual_server").Default("").MaxLen(63).Immutable(),
		field.String("upstream").Default("").MaxLen(48).Immutable(),
		field.String("method").MaxLen(64).Immutable(),
		field.String("tool").Default("").MaxLen(128).Immutable(),
		field.Enum("decision").Values("allow", "deny").Immutable(),
		field.String("reason").Default("").MaxLen(512).Immutable(),
		field.Int64("latency_micros").Immutable(),
		field.Int64("request_bytes").Immutable(),
		field.Int64("response_bytes").Immutable(),
		field.String("error").Default("").MaxLen(1024).Immutable(),
		// The subject the upstream saw, with per-person authorization.
		field.String("upstream_identity").Default("").MaxLen(256).Immutable(),
	}
}

// Indexes of the CallEvent.
func (CallEvent) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "time"), index.Fields("gateway_id", "time")}
}
