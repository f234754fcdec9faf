// Package ratelimit limits calls per key (a principal, a tool) with token
// buckets: in process by default, or shared by every gateway replica through
// Redis (GCRA, github.com/go-redis/redis_rate) when one is configured.
package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Limiter decides whether one more call under key fits perMinute.
type Limiter interface {
	Allow(ctx context.Context, key string, perMinute int) (ok bool, retryAfter time.Duration)
}

// maxKeys bounds the in-process buckets; idle ones are dropped first.
const maxKeys = 100000

// Local keeps token buckets in memory (burst = the per-minute limit).
type Local struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	lim      *rate.Limiter
	perMin   int
	lastUsed time.Time
}

// NewLocal returns an in-process limiter.
func NewLocal() *Local { return &Local{buckets: map[string]*bucket{}, now: time.Now} }

// Allow implements Limiter.
func (l *Local) Allow(_ context.Context, key string, perMinute int) (bool, time.Duration) {
	if perMinute <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil || b.perMin != perMinute {
		if len(l.buckets) >= maxKeys {
			l.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute), perMin: perMinute}
		l.buckets[key] = b
	}
	b.lastUsed = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict drops buckets idle for a minute (they are full again), or all if none are.
func (l *Local) evict(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.lastUsed) > time.Minute {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxKeys {
		clear(l.buckets)
	}
}

// Redis shares the limits between replicas; if Redis fails, it falls back to
// the in-process limiter so an outage neither blocks nor unlimits the gateway.
type Redis struct {
	limiter  *redis_rate.Limiter
	fallback *Local
	log      *slog.Logger
	prefix   string
}

// NewRedis connects to url (redis://…) and returns a shared limiter.
func NewRedis(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(rdb), fallback: NewLocal(), log: log, prefix: prefix}
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, perMinute int) (bool, time.Duration) {
	if perMinute <= 0 {
		return true, 0
	}
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	res, err := r.limiter.Allow(ctx, r.prefix+key, redis_rate.PerMinute(perMinute))
	if err != nil {
		r.log.Warn("rate limit: Redis unavailable, limiting in process", "err", err)
		return r.fallback.Allow(ctx, key, perMinute)
	}
	return res.Allowed > 0, res.RetryAfter
}
