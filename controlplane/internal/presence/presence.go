// Package presence keeps which gateway agents hold a Sync stream, in Redis,
// for control-plane replicas that share one database.
//
// The Agent row's connected flag is written when a stream opens and closes,
// so a replica that dies leaves its agents "connected" forever. With Redis,
// the replica holding a stream refreshes a key with a TTL on every keepalive
// instead, and an ent interceptor answers Agent.connected and Agent.last_seen
// from those keys: an agent whose replica is gone drops offline within the
// TTL, and keepalives cost no database writes.
package presence

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/portcullis-mcp/portcullis/ent"
)

// Redis records agent presence.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a presence store whose marks expire after ttl without a refresh
// (three keepalive intervals is a good choice).
func New(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Redis {
	return &Redis{rdb: rdb, prefix: prefix, ttl: ttl}
}

const timeout = time.Second

// Seen marks the agent connected now.
func (p *Redis) Seen(ctx context.Context, agentID uuid.UUID) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return p.rdb.Set(ctx, p.prefix+agentID.String(), strconv.FormatInt(time.Now().UnixMilli(), 10), p.ttl).Err()
}

// Gone marks the agent disconnected.
func (p *Redis) Gone(ctx context.Context, agentID uuid.UUID) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return p.rdb.Del(ctx, p.prefix+agentID.String()).Err()
}

// lastSeen returns when each connected agent last showed up; absent means offline.
func (p *Redis) lastSeen(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]time.Time, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = p.prefix + id.String()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	vals, err := p.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]time.Time, len(ids))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			out[ids[i]] = time.UnixMilli(ms)
		}
	}
	return out, nil
}

// Interceptor overlays presence on every Agent query, eager loads included.
// When Redis cannot be read, the database's flags stand.
func (p *Redis) Interceptor() ent.Interceptor {
	return ent.InterceptFunc(func(next ent.Querier) ent.Querier {
		return ent.QuerierFunc(func(ctx context.Context, q ent.Query) (ent.Value, error) {
			v, err := next.Query(ctx, q)
			agents, ok := v.([]*ent.Agent)
			if err != nil || !ok || len(agents) == 0 {
				return v, err
			}
			ids := make([]uuid.UUID, len(agents))
			for i, a := range agents {
				ids[i] = a.ID
			}
			seen, rerr := p.lastSeen(ctx, ids)
			if rerr != nil {
				return v, nil
			}
			for _, a := range agents {
				at, ok := seen[a.ID]
				a.Connected = ok
				if ok && (a.LastSeen == nil || at.After(*a.LastSeen)) {
					a.LastSeen = &at
				}
			}
			return v, nil
		})
	})
}
