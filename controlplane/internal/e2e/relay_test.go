package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// pinAll approves everything the gateway discovered that is not pinned yet.
func pinAll(t *testing.T, cp *controlPlane, tenantID, gatewayID uuid.UUID) {
	t.Helper()
	ctx := viewer.System(context.Background())
	all, err := cp.DB.Tool.Query().Where(tool.HasUpstreamWith(upstream.GatewayID(gatewayID)), tool.LiveSha256NEQ(""), tool.PinnedSha256EQ("")).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range all {
		if err := cp.Inventory.PinLive(ctx, tenantID, tl.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// waitListening waits until something accepts connections at addr.
func waitListening(t testing.TB, addr, what string) {
	t.Helper()
	eventually(t, what+" listening", func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// serveUnprefixed starts a control plane and an enrolled gateway binary with,
// for each upstream (name, Streamable HTTP URL), a virtual server of the same
// name exposing its tools and prompts unprefixed. Once the gateway has
// discovered the named items of each upstream, it approves everything
// discovered and waits until the gateway enforces it.
func serveUnprefixed(t *testing.T, slug string, upstreams [][2]string, discovered map[string][]string) *gatewayProc {
	t.Helper()
	ctx := viewer.System(context.Background())
	cp := startControlPlane(t, t.TempDir(), freeAddr(t))
	ten, err := cp.Tenants.CreateTenant(ctx, slug, slug, uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := cp.Tenants.CreateGateway(ctx, ten.ID, "vpc")
	if err != nil {
		t.Fatal(err)
	}
	for _, up := range upstreams {
		if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, tenantSpec(up[0], "streamable_http", up[1], "")); err != nil {
			t.Fatal(err)
		}
		if _, err := cp.Tenants.CreateVirtualServerSpec(ctx, ten.ID, gw.ID, tenant.VirtualServerSpec{Name: up[0], Upstreams: []string{up[0]}, Unprefixed: true}); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := cp.EnrollmentToken(ctx, ten.ID, gw.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cp.AgentEndpoint(), t.TempDir(), freeAddr(t), "PORTCULLIS_ENROLL_TOKEN="+tok)
	for up, names := range discovered {
		for _, name := range names {
			pinWhenDiscovered(t, cp, ten.ID, up, name)
		}
	}
	pinAll(t, cp, ten.ID, gw.ID)
	waitEnforced(t, cp, ten.ID, gw.ID, g.addr, "everything approved")
	return g
}

// TestRelayWithServerEverything drives server-everything (stateful, over
// Streamable HTTP) through the gateway with the TypeScript SDK client, which
// declares sampling, elicitation and roots: every client feature must work
// through the hop, and two clients must each have their own upstream session.
func TestRelayWithServerEverything(t *testing.T) {
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	srv := exec.Command("node", everythingJS(t), "streamableHttp")
	srv.Env = append(os.Environ(), "PORT="+port)
	out := &syncBuffer{}
	srv.Stdout, srv.Stderr = out, out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	waitListening(t, addr, "server-everything")

	// The tools server-everything offers only to clients that can sample,
	// elicit or list roots are discovered too.
	g := serveUnprefixed(t, "relay", [][2]string{{"everything", "http://127.0.0.1:" + port + "/mcp"}}, map[string][]string{
		"everything": {"trigger-sampling-request", "trigger-elicitation-request", "get-roots-list", "toggle-simulated-logging", "completable-prompt"},
	})
	url := "http://" + g.addr + "/mcp/everything"

	res, err := mcpClient(t, url, "features")
	if err != nil {
		t.Fatalf("%v\ngateway log:\n%s", err, g.out.String())
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("through the gateway:\n%s", b)
	str := func(k string) string { s, _ := res[k].(string); return s }
	var tools []string
	for _, n := range res["tools"].([]any) {
		tools = append(tools, n.(string))
	}
	for _, want := range []string{"trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"} {
		if !slices.Contains(tools, want) {
			t.Errorf("tools/list lacks %s: %v", want, tools)
		}
	}
	if s := str("sampling"); !strings.Contains(s, "sampled(") || !strings.Contains(s, "hello sampling") {
		t.Errorf("sampling through the gateway: %q", s)
	}
	if s := str("elicitation"); !strings.Contains(s, "Ada Lovelace") {
		t.Errorf("elicitation through the gateway: %q", s)
	}
	if s := str("roots"); !strings.Contains(s, "file:///e2e/root") {
		t.Errorf("roots through the gateway: %q", s)
	}
	if vals, _ := res["completion"].([]any); !slices.Contains(vals, any("Engineering")) {
		t.Errorf("completion through the gateway: %v", res["completion"])
	}
	if res["subscribed"] != true {
		t.Errorf("subscribe/unsubscribe through the gateway: %v", res["subscribed"])
	}
	seen, _ := res["seen"].(map[string]any)
	if logs, _ := seen["logs"].([]any); len(logs) == 0 {
		t.Errorf("no log message reached the client after setLevel and toggle-simulated-logging (%q)", str("logging"))
	}

	// Isolation: server-everything keeps simulated logging per session. Each
	// client's first toggle starts it for its own session; with a shared
	// upstream session the second client's toggle would stop the first's.
	started := regexp.MustCompile(`Started simulated, random-leveled logging for session (\S+) `)
	var sessions []string
	for i := range 2 {
		text, isErr, err := callText(t, url, "toggle-simulated-logging", `{}`)
		if err != nil || isErr {
			t.Fatalf("client %d: %q, %v", i, text, err)
		}
		m := started.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("client %d's first toggle says %q: it shares an upstream session with another client", i, text)
		}
		sessions = append(sessions, m[1])
	}
	if sessions[0] == sessions[1] {
		t.Errorf("two clients share upstream session %s", sessions[0])
	}
}
