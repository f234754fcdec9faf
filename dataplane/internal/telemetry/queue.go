// Package telemetry buffers the gateway's call events until the control plane
// has stored them. With a spool directory the buffer is on disk as well, so
// events survive a control-plane outage and a gateway restart.
package telemetry

import (
	"sync"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Queue is a bounded FIFO of call events. When full, new events are dropped
// and counted; the count is reported with the next batch. Taken events stay
// in flight until Ack (stored by the control plane) or Requeue (not).
type Queue struct {
	mu       sync.Mutex
	events   []entry
	inflight []entry
	max      int
	dropped  uint64
	ready    chan struct{}
	spool    *spool // nil: memory only
	seq      uint64 // last sequence number given
}

type entry struct {
	seq uint64
	ev  *agentv1.CallEvent
}

// NewQueue returns an in-memory Queue holding at most max events.
func NewQueue(max int) *Queue {
	if max <= 0 {
		max = 100_000
	}
	return &Queue{max: max, ready: make(chan struct{}, 1)}
}

// Add enqueues an event, or counts it as dropped when the queue (or the
// spool's disk budget) is full.
func (q *Queue) Add(e *agentv1.CallEvent) {
	var rec []byte
	ok := true
	if q.spool != nil { // encoded before the lock all calls share
		rec, ok = record(e)
	}
	q.mu.Lock()
	if len(q.events)+len(q.inflight) >= q.max {
		q.dropped++
	} else {
		q.seq++
		if q.spool != nil && (!ok || !q.spool.append(q.seq, rec)) {
			q.dropped++
		} else {
			q.events = append(q.events, entry{q.seq, e})
		}
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled after Add.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Take moves up to n events in flight and returns them with the dropped count.
// Call Ack once the control plane stored them, or Requeue if it did not.
func (q *Queue) Take(n int) ([]*agentv1.CallEvent, uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.events))
	q.inflight = append(q.inflight, q.events[:n]...)
	clear(q.events[:n]) // the array below the new start would keep them alive
	q.events = q.events[n:]
	batch := make([]*agentv1.CallEvent, len(q.inflight))
	for i, e := range q.inflight {
		batch[i] = e.ev
	}
	d := q.dropped
	q.dropped = 0
	return batch, d
}

// Ack forgets the events in flight: the control plane stored them. The spool
// records it without holding the queue, so Add does not wait for the disk.
func (q *Queue) Ack() {
	q.mu.Lock()
	if len(q.inflight) == 0 {
		q.mu.Unlock()
		return
	}
	last := q.inflight[len(q.inflight)-1].seq
	clear(q.inflight) // the array is reused; it must not keep the events alive
	q.inflight = q.inflight[:0]
	q.mu.Unlock()
	if q.spool != nil {
		q.spool.ack(last)
	}
}

// Requeue puts the events in flight back at the front, with the dropped count.
func (q *Queue) Requeue(dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.events = append(q.inflight, q.events...)
	q.inflight = nil
	q.dropped += dropped
}

// Len is the number of queued events, in flight included.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events) + len(q.inflight)
}

// Dropped is the number of events dropped and not yet reported.
func (q *Queue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
