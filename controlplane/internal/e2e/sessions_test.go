package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// roundRobin is a load balancer without affinity: each request goes to the
// next backend, so one MCP session's requests alternate between replicas.
type roundRobin struct {
	backends []string // host:port
	next     atomic.Uint64
	served   []atomic.Int64
}

func newRoundRobin(backends ...string) *roundRobin {
	return &roundRobin{backends: backends, served: make([]atomic.Int64, len(backends))}
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(rr.next.Add(1)-1) % len(rr.backends)
	rr.served[i].Add(1)
	(&httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "http", Host: rr.backends[i]}) },
		FlushInterval: -1,
	}).ServeHTTP(w, r)
}

// TestSessionsAcrossReplicas runs two replicas of one gateway sharing Redis
// behind a balancer without affinity. A session started on one replica is
// served by the other; the data-flow state it built on both is enforced on
// either; it survives both replicas restarting; and DELETE ends it everywhere.
func TestSessionsAcrossReplicas(t *testing.T) {
	redisURL := testRedisURL(t)
	ctx := viewer.System(context.Background())
	cp := startControlPlane(t, t.TempDir(), freeAddr(t))
	defer cp.stop()
	d := newDemoTenant(t, cp)
	type replica struct {
		g       *gatewayProc
		dataDir string
	}
	replicas := make([]*replica, 2)
	var addrs []string
	for i := range replicas {
		tok, err := cp.EnrollmentToken(ctx, d.ten, d.gw, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{dataDir: t.TempDir()}
		addr := freeAddr(t)
		r.g = startGateway(t, cp.AgentEndpoint(), r.dataDir, addr, "PORTCULLIS_ENROLL_TOKEN="+tok, "PORTCULLIS_REDIS_URL="+redisURL)
		replicas[i] = r
		addrs = append(addrs, addr)
	}
	// echo stands in for a tool that reads private data, time for one that
	// brings in untrusted content, add for one that sends data out.
	for name, label := range map[string]string{"echo": "private_data", "time": "untrusted_content", "add": "external_sink"} {
		pinWhenDiscovered(t, cp, d.ten, "demo", name)
		if err := cp.Inventory.SetLabels(ctx, d.ten, toolOf(t, cp.DB, "demo", name).ID, []string{label}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range addrs {
		waitEnforced(t, cp, d.ten, d.gw, a, "labels on every replica")
		waitForTools(t, "every tool on every replica", "http://"+a+"/mcp/main", []string{"demo__add", "demo__echo", "demo__time"})
	}
	rr := newRoundRobin(addrs...)
	lb := httptest.NewServer(rr)
	t.Cleanup(func() { lb.CloseClientConnections(); lb.Close() })
	mcpURL := lb.URL + "/mcp/main"
	parent := t

	t.Run("the TypeScript client's session alternates replicas and the data-flow rule holds", func(t *testing.T) {
		out, err := mcpClient(t, mcpURL, "session", `[["demo__echo",{"message":"secret"}],["demo__time",{}],["demo__add",{"a":1,"b":2}]]`)
		if err != nil {
			t.Fatal(err)
		}
		rs := out["results"].([]any)
		if sink := fmt.Sprint(rs[2]); !strings.Contains(sink, "data-flow rule") {
			t.Fatalf("the sink after private data and untrusted content on other replicas was not refused: %s", sink)
		}
		// A fresh session may use the sink: the refusal above is the session's, not the tool's.
		out, err = mcpClient(t, mcpURL, "session", `[["demo__add",{"a":1,"b":2}],["demo__echo",{"message":"x"}]]`)
		if err != nil {
			t.Fatal(err)
		}
		if first := out["results"].([]any)[0].(map[string]any); first["isError"] == true {
			t.Fatalf("a fresh session's sink call was refused: %v", first)
		}
		if rr.served[0].Load() == 0 || rr.served[1].Load() == 0 {
			t.Fatalf("the balancer did not use both replicas: %d and %d requests", rr.served[0].Load(), rr.served[1].Load())
		}
	})

	t.Run("a session survives both replicas restarting, and DELETE ends it everywhere", func(t *testing.T) {
		cs, err := mcpConnect(ctx, mcpURL)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*mcp.CallToolParams{{Name: "demo__echo", Arguments: map[string]any{"message": "m"}}, {Name: "demo__time"}} {
			res, err := cs.CallTool(ctx, p)
			if err != nil || res.IsError {
				t.Fatalf("%s: %v %v", p.Name, res, err)
			}
		}
		for i, r := range replicas {
			start := time.Now()
			r.g.stopGracefully(t)
			r.g = startGateway(parent, cp.AgentEndpoint(), r.dataDir, addrs[i], "PORTCULLIS_REDIS_URL="+redisURL) // lives beyond this subtest
			eventually(t, "the restarted replica ready", func() error {
				if readyVersion(addrs[i]) == 0 {
					return fmt.Errorf("not ready")
				}
				return nil
			})
			t.Logf("replica %d restarted and ready in %v", i, time.Since(start).Round(time.Millisecond))
		}
		// Both processes are new; the session goes on.
		lt, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("tools/list in the session after both replicas restarted: %v", err)
		}
		if len(lt.Tools) != 3 {
			t.Fatalf("tools after restart: %d, want 3", len(lt.Tools))
		}
		for range 2 { // once on each replica
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__add", Arguments: map[string]any{"a": 1, "b": 2}})
			if err != nil {
				t.Fatal(err)
			}
			if !res.IsError || !strings.Contains(fmt.Sprint(res.Content[0].(*mcp.TextContent).Text), "data-flow rule") {
				t.Fatalf("the session's data-flow state did not survive the restart: %v", res.Content)
			}
		}
		if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "still here"}}); err != nil || res.IsError {
			t.Fatalf("echo after restart: %v %v", res, err)
		}
		id := cs.ID()
		if id == "" {
			t.Fatal("no session id")
		}
		if err := cs.Close(); err != nil { // DELETE through the balancer
			t.Fatal(err)
		}
		for _, a := range addrs {
			if code := postWithSession(t, "http://"+a+"/mcp/main", id); code != http.StatusNotFound {
				t.Fatalf("replica %s answered a deleted session with %d, want 404", a, code)
			}
			if code := postWithSession(t, "http://"+a+"/mcp/main", "made-up-session"); code != http.StatusNotFound {
				t.Fatalf("replica %s answered an unknown session with %d, want 404", a, code)
			}
		}
	})

	t.Run("a session is bound to the principal that started it, on every replica", func(t *testing.T) {
		alice, _, err := cp.Access.CreateClientKey(ctx, d.ten, "alice", nil)
		if err != nil {
			t.Fatal(err)
		}
		mallory, _, err := cp.Access.CreateClientKey(ctx, d.ten, "mallory", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := cp.Access.SetClientAuth(ctx, d.ten, d.gw, true); err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			waitEnforced(t, cp, d.ten, d.gw, a, "client keys on every replica")
		}
		cs, err := mcpConnectAs(ctx, mcpURL, alice, sessionProtocol)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		if _, err := cs.ListTools(ctx, nil); err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if code := postWithSessionAs(t, "http://"+a+"/mcp/main", cs.ID(), mallory); code != http.StatusForbidden {
				t.Fatalf("replica %s let another principal into alice's session: %d, want 403", a, code)
			}
			if code := postWithSessionAs(t, "http://"+a+"/mcp/main", cs.ID(), alice); code != http.StatusOK {
				t.Fatalf("replica %s refused alice her own session: %d", a, code)
			}
		}
	})
}

// postWithSession sends tools/list in session id and returns the HTTP status.
func postWithSession(t *testing.T, endpoint, id string) int {
	t.Helper()
	return postWithSessionAs(t, endpoint, id, "")
}

// postWithSessionAs is postWithSession with a bearer credential.
func postWithSessionAs(t *testing.T, endpoint, id, bearer string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", id)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
