package e2e

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/demoupstream"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// TestRateLimitsAcrossReplicas runs two gateway replicas of one gateway that
// share Redis: a per-tool limit of 5 calls a minute holds across both, and
// the refusal tells the model when to try again.
func TestRateLimitsAcrossReplicas(t *testing.T) {
	redisURL := os.Getenv("PORTCULLIS_TEST_REDIS_URL")
	if redisURL == "" {
		t.Fatal("PORTCULLIS_TEST_REDIS_URL is not set: run the tests with `make test` (it starts Redis)")
	}
	ctx := viewer.System(context.Background())
	cp := startControlPlane(t, t.TempDir(), freeAddr(t))
	defer cp.stop()
	up := httptest.NewServer(demoupstream.Handler())
	t.Cleanup(func() { up.CloseClientConnections(); up.Close() })
	ten, err := cp.Tenants.CreateTenant(ctx, "Limits", "limits", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := cp.Tenants.CreateGateway(ctx, ten.ID, "replicated")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, tenantSpec("demo", "streamable_http", up.URL+"/mcp", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Tenants.CreateVirtualServer(ctx, ten.ID, gw.ID, "main", []string{"demo"}); err != nil {
		t.Fatal(err)
	}
	// Counters are keyed by the gateway's (random) id, so runs sharing a Redis do not mix.
	if err := cp.Access.SetRateLimits(ctx, ten.ID, gw.ID, 0, 5); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for range 2 {
		tok, err := cp.EnrollmentToken(ctx, ten.ID, gw.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		startGateway(t, cp.AgentEndpoint(), t.TempDir(), addr, "PORTCULLIS_ENROLL_TOKEN="+tok, "PORTCULLIS_REDIS_URL="+redisURL)
		urls = append(urls, "http://"+addr+"/mcp/main")
	}
	eventually(t, "echo in the inventory", func() error {
		_, err := cp.DB.Tool.Query().Where(tool.Name("echo"), tool.LiveSha256NEQ("")).Only(ctx)
		return err
	})
	if err := cp.Inventory.PinLive(ctx, ten.ID, toolOf(t, cp.DB, "demo", "echo").ID); err != nil {
		t.Fatal(err)
	}
	for _, u := range urls {
		waitForTools(t, "echo on every replica", u, []string{"demo__echo"})
	}
	allowed, refused := 0, 0
	for i := range 8 {
		text, isErr, err := callText(t, urls[i%2], "demo__echo", `{"message":"hi"}`)
		switch {
		case err != nil:
			t.Fatal(err)
		case !isErr:
			allowed++
		case strings.Contains(text, "rate limit") && strings.Contains(text, "try again in"):
			refused++
		default:
			t.Fatalf("unexpected refusal: %q", text)
		}
	}
	if allowed != 5 || refused != 3 {
		t.Fatalf("across two replicas: %d calls allowed, %d refused; want 5 and 3", allowed, refused)
	}
}
