package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/access"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/app"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/demoupstream"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/devidp"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/callevent"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// TestRateLimitsAcrossReplicas runs two gateway replicas of one gateway that
// share Redis: a per-tool limit of 5 calls a minute holds across both, and
// the refusal tells the model when to try again.
func TestRateLimitsAcrossReplicas(t *testing.T) {
	redisURL := testRedisURL(t)
	ctx := viewer.System(context.Background())
	cp := startControlPlane(t, t.TempDir(), freeAddr(t))
	defer cp.stop()
	d := newDemoTenant(t, cp)
	ten, gw := d.ten, d.gw
	// Counters are keyed by the gateway's (random) id, so runs sharing a Redis do not mix.
	if err := cp.Access.SetRateLimits(ctx, ten, gw, 0, 5); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for range 2 {
		tok, err := cp.EnrollmentToken(ctx, ten, gw, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		startGateway(t, cp.AgentEndpoint(), t.TempDir(), addr, "PORTCULLIS_ENROLL_TOKEN="+tok, "PORTCULLIS_REDIS_URL="+redisURL)
		urls = append(urls, "http://"+addr+"/mcp/main")
	}
	pinWhenDiscovered(t, cp, ten, "demo", "echo")
	for _, u := range urls {
		waitForTools(t, "echo on every replica", u, []string{"demo__echo"})
	}
	// One session per replica, made before the clock starts; the calls go
	// through the go-sdk client, not a process per call.
	var sessions []*mcp.ClientSession
	for _, u := range urls {
		s, err := mcpConnect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sessions = append(sessions, s)
	}
	allowed, refused := 0, 0
	start := time.Now()
	for i := range 8 {
		res, err := sessions[i%2].CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "hi"}})
		if err != nil {
			t.Fatal(err)
		}
		text := ""
		if len(res.Content) > 0 {
			if tc, ok := res.Content[0].(*mcp.TextContent); ok {
				text = tc.Text
			}
		}
		switch {
		case !res.IsError:
			allowed++
		case strings.Contains(text, "rate limit") && strings.Contains(text, "try again in"):
			refused++
		default:
			t.Fatalf("unexpected refusal: %q", text)
		}
	}
	// A budget of 5 a minute regains one call every 12 s: however slow the
	// machine was, at most that many more calls may have been allowed.
	most := min(8, 5+int(time.Since(start)/(12*time.Second)))
	if allowed < 5 || allowed > most || allowed+refused != 8 {
		t.Fatalf("across two replicas: %d calls allowed, %d refused; want 5 to %d allowed and the rest refused", allowed, refused, most)
	}
}

// TestUpstreamCredentials registers an upstream that requires a bearer token
// by reference: the gateway reads it from its own environment and sends it
// upstream; the client's credential is never forwarded, and the secret never
// reaches the control plane.
func TestUpstreamCredentials(t *testing.T) {
	ctx := viewer.System(context.Background())
	cp := startControlPlane(t, t.TempDir(), freeAddr(t))
	defer cp.stop()
	const secret = "upstream-s3cret-token"
	var seen, traces atomic.Value // the Authorization and traceparent headers the upstream received
	seen.Store([]string{})
	traces.Store([]string{})
	demo := demoupstream.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(append(seen.Load().([]string), r.Header.Get("Authorization")))
		traces.Store(append(traces.Load().([]string), r.Header.Get("traceparent")))
		if r.Header.Get("Authorization") != "Bearer "+secret {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		demo.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { up.CloseClientConnections(); up.Close() })
	ten, err := cp.Tenants.CreateTenant(ctx, "Creds", "creds", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := cp.Tenants.CreateGateway(ctx, ten.ID, "vpc")
	if err != nil {
		t.Fatal(err)
	}
	spec := tenantSpec("demo", "streamable_http", up.URL+"/mcp", "")
	for _, bad := range []string{"plain-secret", "env:", "file:relative", "vault:x"} {
		spec.CredentialRef = bad
		if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, spec); err == nil {
			t.Fatalf("credential reference %q accepted", bad)
		}
	}
	spec.CredentialRef = "env:MCP_CREDENTIAL_DEMO"
	if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, spec); err != nil {
		t.Fatal(err)
	}
	// A tenant admin's reference to the gateway's own secret is refused on
	// the gateway, readably, and nothing is sent.
	thief := tenantSpec("thief", "streamable_http", up.URL+"/mcp", "")
	thief.CredentialRef = "env:PORTCULLIS_ENROLL_TOKEN"
	if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, thief); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Tenants.CreateVirtualServer(ctx, ten.ID, gw.ID, "main", []string{"demo"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := cp.Access.CreateClientKey(ctx, ten.ID, "client", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cp.EnrollmentToken(ctx, ten.ID, gw.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startGateway(t, cp.AgentEndpoint(), t.TempDir(), addr, "PORTCULLIS_ENROLL_TOKEN="+tok, "MCP_CREDENTIAL_DEMO="+secret)
	pinWhenDiscovered(t, cp, ten.ID, "demo", "echo")
	mcpURL := "http://" + addr + "/mcp/main"
	eventually(t, "echo callable with the client's key", func() error {
		out, err := mcpClientAs(t, key, mcpURL, "call", "demo__echo", `{"message":"with credentials"}`)
		if err != nil {
			return err
		}
		if !strings.Contains(fmt.Sprint(out["content"]), "with credentials") {
			return fmt.Errorf("echo: %v", out)
		}
		return nil
	})
	// W3C trace context: a client's trace continues to the upstream.
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	if out, err := mcpClientEnv(t, []string{"MCP_BEARER=" + key, "MCP_TRACEPARENT=00-" + traceID + "-00f067aa0ba902b7-01"}, mcpURL,
		"call", "demo__echo", `{"message":"traced"}`); err != nil || !strings.Contains(fmt.Sprint(out["content"]), "traced") {
		t.Fatalf("traced call: %v %v", out, err)
	}
	if !slices.ContainsFunc(traces.Load().([]string), func(tp string) bool { return strings.Contains(tp, "-"+traceID+"-") }) {
		t.Fatalf("the upstream never saw trace %s; traceparents: %q", traceID, traces.Load())
	}
	for _, h := range seen.Load().([]string) {
		if strings.Contains(h, key) || (h != "" && h != "Bearer "+secret) {
			t.Fatalf("the upstream received Authorization %q", h)
		}
	}
	// The secret exists only in the gateway's environment.
	ups, err := cp.Tenants.Upstreams(ctx, ten.ID)
	if err != nil || len(ups) != 2 || !slices.ContainsFunc(ups, func(u *ent.Upstream) bool { return u.CredentialRef == "env:MCP_CREDENTIAL_DEMO" }) {
		t.Fatalf("upstreams: %+v %v", ups, err)
	}
	eventually(t, "the refused reference shown on the upstream", func() error {
		ups, err := cp.Tenants.Upstreams(ctx, ten.ID)
		if err != nil {
			return err
		}
		for _, u := range ups {
			if u.Name == "thief" && (u.Reachable || !strings.Contains(u.LastError, "credential env:PORTCULLIS_ENROLL_TOKEN is not allowed on this gateway")) {
				return fmt.Errorf("thief: reachable %v, last error %q", u.Reachable, u.LastError)
			}
		}
		return nil
	})
	for _, h := range seen.Load().([]string) {
		if strings.Contains(h, tok) {
			t.Fatal("the upstream received the gateway's enrollment token")
		}
	}
}

// TestClientJWT authenticates MCP clients with access tokens from the
// tenant's identity provider (the embedded zitadel OpenID Provider, client
// credentials grant, RS256 JWTs): the gateway verifies them with go-oidc,
// requires its own resource URL as audience, and maps the groups claim into
// access rules.
func TestClientJWT(t *testing.T) {
	ctx := viewer.System(context.Background())
	gwAddr := freeAddr(t)
	resource := "http://" + gwAddr + "/mcp/main"
	idp, err := devidp.Start(ctx, devidp.Config{ClientID: "console", ClientSecret: "unused", RedirectURIs: []string{"http://127.0.0.1/cb"},
		Users: []devidp.User{alice}, Logger: testutil.Logger(),
		Services: []devidp.Service{
			{ID: "agent-1", Secret: "agent-secret", Audience: []string{resource}, Groups: []string{"builders"}},
			{ID: "agent-2", Secret: "agent-secret", Audience: []string{resource}, Groups: []string{"visitors"}},
			{ID: "elsewhere", Secret: "agent-secret", Audience: []string{"https://other.example/mcp/main"}, Groups: []string{"builders"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	cp := startControlPlane(t, t.TempDir(), freeAddr(t))
	defer cp.stop()
	up := httptest.NewServer(demoupstream.Handler())
	t.Cleanup(func() { up.CloseClientConnections(); up.Close() })
	ten, err := cp.Tenants.CreateTenant(ctx, "JWT", "jwt", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := cp.Tenants.CreateGateway(ctx, ten.ID, "vpc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, tenantSpec("demo", "streamable_http", up.URL+"/mcp", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Tenants.CreateVirtualServer(ctx, ten.ID, gw.ID, "main", []string{"demo"}); err != nil {
		t.Fatal(err)
	}
	if err := cp.Access.SetClientIdentityProvider(ctx, ten.ID, "http://idp.example.com", ""); err == nil {
		t.Fatal("a plain-http issuer off loopback was accepted")
	}
	if err := cp.Access.SetClientIdentityProvider(ctx, ten.ID, idp.Issuer(), "groups"); err != nil {
		t.Fatal(err)
	}
	if err := cp.Access.SetClientAuth(ctx, ten.ID, gw.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Access.CreateRule(ctx, ten.ID, gw.ID, access.Rule{Principal: "group:builders", VirtualServer: "main", ToolPattern: "demo__*", Effect: "allow"}); err != nil {
		t.Fatal(err)
	}
	tok, err := cp.EnrollmentToken(ctx, ten.ID, gw.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	startGateway(t, cp.AgentEndpoint(), t.TempDir(), gwAddr, "PORTCULLIS_ENROLL_TOKEN="+tok)
	pinWhenDiscovered(t, cp, ten.ID, "demo", "echo")

	token := func(id string) string { return serviceToken(t, idp, id, "agent-secret") }
	builder := token("agent-1")
	eventually(t, "a builder's token to list the approved tool", func() error {
		out, err := mcpClientAs(t, builder, resource, "list")
		if err != nil {
			return err
		}
		if got := fmt.Sprint(out["tools"]); got != "[demo__echo]" {
			return fmt.Errorf("tools %s", got)
		}
		return nil
	})
	if out, err := mcpClientAs(t, builder, resource, "call", "demo__echo", `{"message":"signed by the IdP"}`); err != nil || !strings.Contains(fmt.Sprint(out["content"]), "signed by the IdP") {
		t.Fatalf("builder call: %v %v", out, err)
	}
	// A visitor is authenticated but no rule lets it call anything.
	if out, err := mcpClientAs(t, token("agent-2"), resource, "list"); err != nil || fmt.Sprint(out["tools"]) != "[]" {
		t.Fatalf("visitor list: %v %v", out, err)
	}
	// Tokens for another resource, with a broken signature, or made up: refused.
	parts := strings.Split(builder, ".")
	sig := []byte(parts[2])
	sig[len(sig)/2] ^= 1
	forged := parts[0] + "." + parts[1] + "." + string(sig)
	for name, bad := range map[string]string{"another audience": token("elsewhere"), "forged signature": forged, "not a token": "eyJhbGciOiJub25lIn0.e30."} {
		if _, err := mcpClientAs(t, bad, resource, "list"); err == nil || !strings.Contains(err.Error(), "invalid token") {
			t.Errorf("%s: %v, want a 401", name, err)
		}
	}
	eventually(t, "call events naming the IdP subject", func() error {
		n, err := cp.DB.CallEvent.Query().Where(callevent.Principal("user:agent-1")).Count(ctx)
		if err != nil || n == 0 {
			return fmt.Errorf("%d events, %v", n, err)
		}
		return nil
	})
}

// TestMetrics scrapes Prometheus /metrics from the gateway and the control
// plane after real traffic.
func TestMetrics(t *testing.T) {
	cp := runControlPlane(t, app.Config{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0"})
	defer cp.stop()
	g, url := newDemoTenant(t, cp).serveEcho(t, cp, cp.AgentEndpoint())
	addr := g.addr
	if _, _, err := callText(t, url, "demo__echo", `{"message":"m"}`); err != nil {
		t.Fatal(err)
	}
	refusedCall(t, url, "demo__add", `{"a":1,"b":2}`, "is not approved")
	scrape := func(u string) string {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	eventually(t, "gateway and control-plane metrics", func() error {
		g := scrape("http://" + addr + "/metrics")
		c := scrape("http://" + cp.MetricsAddr() + "/metrics")
		for _, want := range []string{
			`portcullis_gateway_tool_calls_total{decision="allow",upstream="demo",virtual_server="main"} 1`,
			`portcullis_gateway_upstream_call_seconds_count{upstream="demo"} 1`,
			// The TypeScript SDK client's call took the fast path.
			`portcullis_gateway_tool_calls_raw_total{upstream="demo"} 1`,
			"portcullis_gateway_control_plane_connected 1",
			"portcullis_gateway_policy_version ",
		} {
			if !strings.Contains(g, want) {
				return fmt.Errorf("gateway metrics lack %q", want)
			}
		}
		// Control-plane counters are process-wide and other tests in this package add to them.
		for _, want := range []string{`(?m)^portcullis_agents_connected 1$`, `(?m)^portcullis_telemetry_events_ingested_total [1-9]`, `(?m)^portcullis_policy_versions_compiled_total [1-9]`} {
			if !regexp.MustCompile(want).MatchString(c) {
				return fmt.Errorf("control-plane metrics lack %s", want)
			}
		}
		return nil
	})
}

// The gateway binary refuses a GC target that is not a percentage, before
// it does anything else.
func TestGatewayGCPercentFlag(t *testing.T) {
	out, err := exec.Command(gatewayBin, "--control-plane", "127.0.0.1:1", "--data-dir", t.TempDir(), "--gc-percent", "0").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "--gc-percent 0: use a positive percentage") {
		t.Fatalf("--gc-percent 0: %v\n%s", err, out)
	}
}

// TestTelemetryZeroLoss makes calls while the control plane is up, under
// load while it restarts, while it is down, and after the gateway restarted
// with it still down: once it is back, every call event is stored exactly once.
func TestTelemetryZeroLoss(t *testing.T) {
	ctx := viewer.System(context.Background())
	cpDir, grpcAddr := t.TempDir(), freeAddr(t)
	cp := startControlPlane(t, cpDir, grpcAddr)
	d := newDemoTenant(t, cp)
	g, url := d.serveEcho(t, cp, cp.AgentEndpoint())
	calls := func(n int) {
		t.Helper()
		var batch [][2]any
		for i := range n {
			batch = append(batch, [2]any{"demo__echo", map[string]string{"message": fmt.Sprint(i)}})
		}
		b, _ := json.Marshal(batch)
		out, err := mcpClient(t, url, "session", string(b))
		if err != nil || len(out["results"].([]any)) != n {
			t.Fatalf("calls: %v %v", out, err)
		}
	}
	calls(10)
	waitEvents(t, cp.DB, 10, "the first events stored")
	// Load through the gateway while the control plane goes down and comes back.
	l := startLoad(t, url, 4, 5*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	cp.stop()
	time.Sleep(time.Second) // calls go on; their events wait in the gateway's spool
	cp = startControlPlane(t, cpDir, grpcAddr)
	time.Sleep(time.Second)
	ok, failed, firstErr := l.stop()
	if failed != 0 {
		t.Fatalf("%d calls under load failed (%s)", failed, firstErr)
	}
	loaded := int(ok)
	if loaded < 20 {
		t.Fatalf("only %d calls under load", loaded)
	}
	waitEvents(t, cp.DB, int64(10+loaded), "the events made under load stored")
	cp.stop()
	calls(10) // control plane down
	g.stopGracefully(t)
	startGateway(t, grpcAddr, g.dataDir, g.addr) // restarts from its cached bundle and its spool
	waitForTools(t, "echo served from the cached bundle", url, []string{"demo__echo"})
	calls(10)
	cp = startControlPlane(t, cpDir, grpcAddr)
	defer cp.stop()
	waitEvents(t, cp.DB, int64(30+loaded), "every event stored exactly once")
	// The per-minute rollups count each call once too.
	points, err := cp.Telemetry.Series(ctx, d.ten, time.Now().Add(-59*time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range points {
		total += p.Calls
	}
	if total != int64(30+loaded) {
		t.Fatalf("rollups count %d calls, want %d", total, 30+loaded)
	}
}

// TestReplicasShareChanges runs two control-plane replicas on one PostgreSQL
// and one Redis. The gateway holds its stream on replica B; an approval made
// on replica A reaches it through Redis pub/sub.
func TestReplicasShareChanges(t *testing.T) {
	redisURL := testRedisURL(t)
	sys := viewer.System(context.Background())
	dbURL := testutil.StartPostgres(t)
	rs := replicas(t, 2, dbURL, redisURL)
	a, b := rs[0], rs[1]
	d := newDemoTenant(t, a)
	ten, gw := d.ten, d.gw
	tok, err := b.EnrollmentToken(sys, ten, gw, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	g := startGateway(t, b.AgentEndpoint(), t.TempDir(), addr, "PORTCULLIS_ENROLL_TOKEN="+tok) // held by replica B
	eventually(t, "echo in the inventory", func() error {
		_, err := a.DB.Tool.Query().Where(tool.Name("echo"), tool.LiveSha256NEQ("")).Only(sys)
		return err
	})
	url := "http://" + addr + "/mcp/main"
	waitForTools(t, "nothing approved yet", url, nil)
	start := time.Now()
	if err := a.Inventory.PinLive(sys, ten, toolOf(t, a.DB, "demo", "echo").ID); err != nil { // on replica A
		t.Fatal(err)
	}
	waitEnforced(t, a, ten, gw, addr, "the approval on replica A enforced by the gateway on replica B")
	t.Logf("approval on replica A enforced through replica B after %v", time.Since(start).Round(time.Millisecond))
	waitForTools(t, "echo listed", url, []string{"demo__echo"})

	// Presence: replica A sees the agent that replica B holds, and sees it go.
	connected := func(cp *controlPlane) bool {
		ag, err := cp.DB.Agent.Query().Where(agent.GatewayID(gw)).Only(sys)
		if err != nil {
			t.Fatal(err)
		}
		return ag.Connected
	}
	if !connected(a) || !connected(b) {
		t.Fatal("the agent held by replica B is not shown connected on both replicas")
	}

	// Console sessions: a login on A is known to B; a tenant switch on B is
	// seen by A; a logout on A ends it on B.
	u, err := a.IDs.Login(sys, identity.Claims{Issuer: "https://idp.test", Subject: "s1", Email: "ops@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.DB.Membership.Create().SetTenantID(ten).SetUserID(u.ID).SetRole("admin").Save(sys); err != nil {
		t.Fatal(err)
	}
	tok, err = a.IDs.CreateSession(sys, u.ID, uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	se, err := b.IDs.Session(sys, tok)
	if err != nil || se.UserID != u.ID || se.TenantID != uuid.Nil {
		t.Fatalf("replica B reading A's session: %+v %v", se, err)
	}
	if err := b.IDs.SetSessionTenant(sys, se, ten); err != nil {
		t.Fatal(err)
	}
	if se, err := a.IDs.Session(sys, tok); err != nil || se.TenantID != ten {
		t.Fatalf("replica A after the switch on B: %+v %v", se, err)
	}
	if n := a.DB.Session.Query().CountX(sys); n != 0 {
		t.Fatalf("%d console sessions in the database; with Redis they live there", n)
	}
	if err := a.IDs.EndSession(sys, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := b.IDs.Session(sys, tok); err == nil {
		t.Fatal("replica B still accepts a session that was logged out on A")
	}

	g.stopGracefully(t)
	eventually(t, "the agent offline on replica A", func() error {
		if connected(a) {
			return fmt.Errorf("still connected")
		}
		return nil
	})
}

// TestFaults: a hung upstream costs its own calls an upstream timeout and
// nothing else; with Redis unreachable, rate limits are still enforced in
// process.
func TestFaults(t *testing.T) {
	ctx := viewer.System(context.Background())
	cp := startControlPlane(t, t.TempDir(), freeAddr(t))
	defer cp.stop()
	demo := httptest.NewServer(demoupstream.Handler())
	t.Cleanup(func() { demo.CloseClientConnections(); demo.Close() })
	// An upstream that lists a tool, then hangs on every call.
	hangSrv := mcp.NewServer(&mcp.Implementation{Name: "hang", Version: "1"}, nil)
	release := make(chan struct{})
	mcp.AddTool(hangSrv, &mcp.Tool{Name: "slow", Description: "Never answers."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil, ctx.Err()
		})
	hang := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return hangSrv }, nil))
	t.Cleanup(func() { close(release); hang.CloseClientConnections(); hang.Close() })

	ten, err := cp.Tenants.CreateTenant(ctx, "Faults", "faults", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := cp.Tenants.CreateGateway(ctx, ten.ID, "vpc")
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range map[string]string{"demo": demo.URL + "/mcp", "hang": hang.URL} {
		if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, tenantSpec(name, "streamable_http", u, "")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cp.Tenants.CreateVirtualServer(ctx, ten.ID, gw.ID, "main", []string{"demo", "hang"}); err != nil {
		t.Fatal(err)
	}
	if err := cp.Access.SetRateLimits(ctx, ten.ID, gw.ID, 0, 3); err != nil {
		t.Fatal(err)
	}
	tok, err := cp.EnrollmentToken(ctx, ten.ID, gw.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startGateway(t, cp.AgentEndpoint(), t.TempDir(), addr, "PORTCULLIS_ENROLL_TOKEN="+tok,
		"PORTCULLIS_UPSTREAM_TIMEOUT=2s", "PORTCULLIS_REDIS_URL=redis://127.0.0.1:1/0") // nothing listens there
	for _, n := range [][2]string{{"demo", "echo"}, {"hang", "slow"}} {
		pinWhenDiscovered(t, cp, ten.ID, n[0], n[1])
	}
	url := "http://" + addr + "/mcp/main"
	waitForTools(t, "both tools listed", url, []string{"demo__echo", "hang__slow"})

	// The hung call fails after the upstream timeout; meanwhile echo answers.
	slow := make(chan error, 1)
	go func() {
		_, err := mcpClient(t, url, "call", "hang__slow", `{}`)
		slow <- err
	}()
	if text, isErr, err := callText(t, url, "demo__echo", `{"message":"still responsive"}`); err != nil || isErr || !strings.Contains(text, "still responsive") {
		t.Fatalf("echo next to a hung upstream: %q %v %v", text, isErr, err)
	}
	select {
	case err := <-slow:
		if err == nil {
			t.Fatal("the hung call succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the hung call was not cut off by the upstream timeout")
	}
	// Redis is unreachable: the per-tool limit of 3 is counted in process.
	allowed := 0
	for range 5 {
		text, isErr, err := callText(t, url, "demo__echo", `{"message":"x"}`)
		if err != nil {
			t.Fatal(err)
		}
		if !isErr {
			allowed++
		} else if !strings.Contains(text, "rate limit") {
			t.Fatalf("unexpected refusal: %q", text)
		}
	}
	if allowed != 2 { // one of the 3 was spent above
		t.Fatalf("%d of 5 calls allowed with Redis down; want the limit (2 left of 3) enforced in process", allowed)
	}
}

// TestGatewayConnectionLimits runs the built gateway with its session and
// timeout flags set (as environment variables, as the charts do): a second
// session of one client is refused with the reason, and a request body
// that stalls is given up on.
func TestGatewayConnectionLimits(t *testing.T) {
	ctx := viewer.System(context.Background())
	cp := startControlPlane(t, t.TempDir(), freeAddr(t))
	defer cp.stop()
	d := newDemoTenant(t, cp)
	tok, err := cp.EnrollmentToken(ctx, d.ten, d.gw, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startGateway(t, cp.AgentEndpoint(), t.TempDir(), addr, "PORTCULLIS_ENROLL_TOKEN="+tok,
		"PORTCULLIS_MAX_CLIENT_SESSIONS=1", "PORTCULLIS_READ_TIMEOUT=1s")
	pinWhenDiscovered(t, cp, d.ten, "demo", "echo")
	mcpURL := "http://" + addr + "/mcp/main"
	var first *mcp.ClientSession
	eventually(t, "a first session", func() error {
		cs, err := mcpConnect(ctx, mcpURL)
		first = cs
		return err
	})
	defer first.Close()
	if res, err := first.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "hi"}}); err != nil || res.IsError {
		t.Fatalf("echo: %v %v", res, err)
	}
	req, _ := http.NewRequest(http.MethodPost, mcpURL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "the anonymous client at 127.0.0.1 has 1 sessions open, the most one client may (--max-client-sessions)") {
		t.Fatalf("a second session: %d %s", resp.StatusCode, body)
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /mcp/main HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{", addr)
	_ = conn.SetReadDeadline(time.Now().Add(45 * time.Second)) // only so that a broken gateway fails rather than hangs
	stalled, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	if stalled.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("a stalled body: %d", stalled.StatusCode)
	}
}

// serviceToken gets a dev IdP service's JWT access token with the client
// credentials grant.
func serviceToken(t *testing.T, idp *devidp.IdP, id, secret string) string {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: idp.Issuer() + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}
	tk, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatalf("token for %s: %v", id, err)
	}
	if strings.Count(tk.AccessToken, ".") != 2 {
		t.Fatalf("token for %s is not a JWT: %q", id, tk.AccessToken)
	}
	return tk.AccessToken
}
