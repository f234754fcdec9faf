// Package telemetry buffers the gateway's call events until they are shipped.
package telemetry

import (
	"sync"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Queue is a bounded FIFO of call events. When full, new events are dropped
// and counted; the count is reported with the next batch.
type Queue struct {
	mu      sync.Mutex
	events  []*agentv1.CallEvent
	max     int
	dropped uint64
	ready   chan struct{}
}

// NewQueue returns a Queue holding at most max events.
func NewQueue(max int) *Queue {
	if max <= 0 {
		max = 100_000
	}
	return &Queue{max: max, ready: make(chan struct{}, 1)}
}

// Add enqueues an event, or counts it as dropped when the queue is full.
func (q *Queue) Add(e *agentv1.CallEvent) {
	q.mu.Lock()
	if len(q.events) >= q.max {
		q.dropped++
	} else {
		q.events = append(q.events, e)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled after Add.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Take removes up to n events and the dropped count.
func (q *Queue) Take(n int) ([]*agentv1.CallEvent, uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.events))
	batch := append([]*agentv1.CallEvent(nil), q.events[:n]...)
	q.events = q.events[n:]
	d := q.dropped
	q.dropped = 0
	return batch, d
}

// Requeue puts an unshipped batch back at the front, dropping what does not fit.
func (q *Queue) Requeue(batch []*agentv1.CallEvent, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	room := q.max - len(q.events)
	if room < len(batch) {
		q.dropped += uint64(len(batch) - room)
		batch = batch[:max(room, 0)]
	}
	q.events = append(batch, q.events...)
	q.dropped += dropped
}

// Len is the number of queued events.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}
