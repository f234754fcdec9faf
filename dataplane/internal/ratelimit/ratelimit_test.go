package ratelimit

import (
	"context"
	"testing"
	"time"
)

func TestLocal(t *testing.T) {
	l := NewLocal()
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	ctx := context.Background()
	for i := range 3 {
		if ok, _ := l.Allow(ctx, "k", 3); !ok {
			t.Fatalf("call %d of a burst of 3 refused", i+1)
		}
	}
	ok, retry := l.Allow(ctx, "k", 3)
	if ok || retry <= 0 || retry > 20*time.Second {
		t.Fatalf("4th call: ok=%v retry=%v; want refused, retry about 20s", ok, retry)
	}
	if ok, _ := l.Allow(ctx, "other", 3); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(20 * time.Second) // one token back (3 per minute)
	if ok, _ := l.Allow(ctx, "k", 3); !ok {
		t.Fatal("refilled token refused")
	}
	if ok, _ := l.Allow(ctx, "k", 0); !ok {
		t.Fatal("0 means unlimited")
	}
}
