package policy

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// redisChannel carries gateway ids whose policy changed, between replicas.
const redisChannel = "portcullis:policy"

// RedisBroker fans signals out to every control-plane replica through Redis
// pub/sub; each replica signals the streams it holds. After Redis comes back
// every local subscriber is signalled, since messages may have been missed
// (a stream pushes only when the version changed, so this is harmless).
type RedisBroker struct {
	local  *LocalBroker
	client *redis.Client
	log    *slog.Logger
}

// NewRedisBroker relays through client until ctx ends.
func NewRedisBroker(ctx context.Context, client *redis.Client, log *slog.Logger) *RedisBroker {
	b := &RedisBroker{local: NewLocalBroker(), client: client, log: log.With("component", "redis-broker")}
	go b.relay(ctx)
	return b
}

// Publish signals this replica's streams at once and the others through Redis.
func (b *RedisBroker) Publish(gatewayID uuid.UUID) {
	b.local.Publish(gatewayID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.client.Publish(ctx, redisChannel, gatewayID.String()).Err(); err != nil {
		b.log.Warn("publishing a policy change to other replicas failed; their agents get it on reconnect", "gateway", gatewayID, "err", err)
	}
}

// Subscribe implements Broker.
func (b *RedisBroker) Subscribe(gatewayID uuid.UUID) (<-chan struct{}, func()) {
	return b.local.Subscribe(gatewayID)
}

func (b *RedisBroker) relay(ctx context.Context) {
	ps := b.client.Subscribe(ctx, redisChannel)
	defer ps.Close()
	defer b.client.Close()
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			b.log.Warn("Redis subscription interrupted; retrying", "err", err)
			time.Sleep(time.Second)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" { // first subscription or after a reconnect
				b.local.publishAll()
			}
		case *redis.Message:
			if id, err := uuid.Parse(m.Payload); err == nil {
				b.local.Publish(id)
			}
		}
	}
}
