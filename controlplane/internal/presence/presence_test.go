package presence_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/metrics"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/presence"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// TestPresenceOverridesStaleFlags: an agent whose replica died keeps
// connected=true in the database; presence in Redis says otherwise once the
// mark expires, on plain queries and eager loads alike.
func TestPresenceOverridesStaleFlags(t *testing.T) {
	url := os.Getenv("PORTCULLIS_TEST_REDIS_URL")
	if url == "" {
		t.Fatal("PORTCULLIS_TEST_REDIS_URL is not set: run the tests with `make test` (it starts Redis)")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := viewer.System(context.Background())
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "p.db"), testutil.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := presence.New(rdb, "portcullis:test-presence:"+uuid.NewString()+":", time.Second)
	db.Agent.Intercept(p.Interceptor())

	gw := testutil.NewGateway(t, db)
	stale := db.Agent.Create().SetTenantID(gw.TenantID).SetGatewayID(gw.ID).SetCertFingerprint(uuid.NewString()).SetConnected(true).SaveX(ctx)
	db.Agent.Create().SetTenantID(gw.TenantID).SetGatewayID(gw.ID).SetCertFingerprint(uuid.NewString()).SetConnected(true).SaveX(ctx) // another stale one
	live := db.Agent.Create().SetTenantID(gw.TenantID).SetGatewayID(gw.ID).SetCertFingerprint(uuid.NewString()).SaveX(ctx)

	if err := p.Seen(ctx, live.ID); err != nil {
		t.Fatal(err)
	}
	online := func() map[uuid.UUID]bool {
		out := map[uuid.UUID]bool{}
		for _, a := range db.Gateway.Query().WithAgents().OnlyX(ctx).Edges.Agents {
			out[a.ID] = a.Connected
		}
		return out
	}
	if got := online(); got[stale.ID] || !got[live.ID] {
		t.Fatalf("eager load: stale agent connected=%v, live agent connected=%v", got[stale.ID], got[live.ID])
	}
	if a := db.Agent.Query().Where(agent.ID(live.ID)).OnlyX(ctx); !a.Connected || a.LastSeen == nil {
		t.Fatalf("plain query: %+v", a)
	}
	// The Prometheus gauge counts by presence too, not by the stale flag.
	rec := httptest.NewRecorder()
	metrics.Handler(db).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "\nportcullis_agents_connected 1\n") {
		t.Fatalf("portcullis_agents_connected should be 1:\n%s", rec.Body.String())
	}
	// No refresh: the mark expires, as when the replica holding the stream dies.
	deadline := time.Now().Add(10 * time.Second)
	for online()[live.ID] {
		if time.Now().After(deadline) {
			t.Fatal("the presence mark did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.Seen(ctx, live.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.Gone(ctx, live.ID); err != nil {
		t.Fatal(err)
	}
	if online()[live.ID] {
		t.Fatal("Gone did not take the agent offline")
	}
}
