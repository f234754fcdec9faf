package policy

import (
	"sync"

	"github.com/google/uuid"
)

// Broker fans out "gateway policy changed" signals to the streams holding that
// gateway's agents. LocalBroker serves a single replica; a Redis broker serves several.
type Broker interface {
	Publish(gatewayID uuid.UUID)
	// Subscribe returns a channel that receives a value after every Publish
	// for the gateway (coalesced: a slow reader sees at least one).
	Subscribe(gatewayID uuid.UUID) (<-chan struct{}, func())
}

// LocalBroker is an in-process Broker.
type LocalBroker struct {
	mu   sync.Mutex
	subs map[uuid.UUID]map[chan struct{}]struct{}
}

// NewLocalBroker returns an empty LocalBroker.
func NewLocalBroker() *LocalBroker {
	return &LocalBroker{subs: map[uuid.UUID]map[chan struct{}]struct{}{}}
}

// Publish signals every subscriber of the gateway.
func (b *LocalBroker) Publish(gatewayID uuid.UUID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[gatewayID] {
		select {
		case ch <- struct{}{}:
		default: // already signalled
		}
	}
}

// Subscribe registers for a gateway's signals.
func (b *LocalBroker) Subscribe(gatewayID uuid.UUID) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.subs[gatewayID] == nil {
		b.subs[gatewayID] = map[chan struct{}]struct{}{}
	}
	b.subs[gatewayID][ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs[gatewayID], ch)
		if len(b.subs[gatewayID]) == 0 {
			delete(b.subs, gatewayID)
		}
		b.mu.Unlock()
	}
}

// publishAll signals every subscriber.
func (b *LocalBroker) publishAll() {
	b.mu.Lock()
	ids := make([]uuid.UUID, 0, len(b.subs))
	for id := range b.subs {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	for _, id := range ids {
		b.Publish(id)
	}
}
