package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent/schematype"
)

// CallRollup aggregates call events per minute, gateway, virtual server,
// upstream, tool and decision for dashboards; raw events expire sooner.
type CallRollup struct{ ent.Schema }

// Mixin of the CallRollup.
func (CallRollup) Mixin() []ent.Mixin { return []ent.Mixin{IDMixin{}, TenantMixin{}} }

// Fields of the CallRollup.
func (CallRollup) Fields() []ent.Field {
	fs := []ent.Field{
		field.UUID("gateway_id", uuid.UUID{}).Immutable(),
		field.Time("minute").Immutable(),
		field.String("virtual_server").Default("").MaxLen(63).Immutable(),
		field.String("upstream").Default("").MaxLen(48).Immutable(),
		field.String("tool").Default("").MaxLen(128).Immutable(),
		field.Int64("calls").Default(0),
		field.Int64("denies").Default(0),
		field.Int64("errors").Default(0),
		field.Int64("latency_sum_micros").Default(0),
	}
	for i := range len(schematype.LatencyBucketsMicros) + 1 {
		fs = append(fs, field.Int64(bucketField(i)).Default(0))
	}
	return fs
}

func bucketField(i int) string { return "latency_bucket_" + string(rune('a'+i)) }

// Indexes of the CallRollup.
func (CallRollup) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("gateway_id", "minute", "virtual_server", "upstream", "tool").Unique(),
		index.Fields("tenant_id", "minute"),
	}
}
