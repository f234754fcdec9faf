package telemetry

import (
	"testing"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

func TestQueueBoundsAndCountsDrops(t *testing.T) {
	q := NewQueue(3)
	for i := range 5 {
		q.Add(&agentv1.CallEvent{Id: string(rune('a' + i))})
	}
	batch, dropped := q.Take(2)
	if len(batch) != 2 || batch[0].GetId() != "a" || dropped != 2 {
		t.Fatalf("Take = %v, dropped %d", batch, dropped)
	}
	q.Add(&agentv1.CallEvent{Id: "f"})
	q.Add(&agentv1.CallEvent{Id: "g"})
	q.Requeue(batch, dropped) // 3 queued, no room: both count as dropped again
	rest, dropped := q.Take(10)
	if len(rest) != 3 || rest[0].GetId() != "c" || dropped != 4 {
		t.Fatalf("after requeue: %v, dropped %d", rest, dropped)
	}
}
