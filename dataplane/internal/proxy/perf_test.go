package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/telemetry"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// benchProtocol is what BenchmarkProxyCall's clients speak: sessions, as most
// clients do today (set to 2026-07-28 to profile the session-less path).
const benchProtocol = "2025-11-25"

// BenchmarkProxyCall runs tools/call through an in-process gateway to an
// in-process upstream with 1 and 16 concurrent clients, for profiling the proxy
// path: go test -run '^$' -bench ProxyCall -cpuprofile cpu.out ./internal/proxy/
func BenchmarkProxyCall(b *testing.B) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	type in struct {
		Message string `json:"message"`
	}
	echo := &mcp.Tool{Name: "echo", Description: "Echoes."}
	mcp.AddTool(srv, echo, func(_ context.Context, _ *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Message}}}, nil, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer up.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := telemetry.NewQueue(1 << 20)
	p, err := New(ctx, Config{Telemetry: q, PublicURL: "http://gw"})
	if err != nil {
		b.Fatal(err)
	}
	bundle := &agentv1.PolicyBundle{Version: 1, GatewayId: "g",
		Upstreams:      []*agentv1.Upstream{{Name: "up", Transport: agentv1.Transport_TRANSPORT_STREAMABLE_HTTP, Url: up.URL}},
		VirtualServers: []*agentv1.VirtualServer{{Name: "main", Upstreams: []string{"up"}}}}
	if err := p.Apply(bundle); err != nil {
		b.Fatal(err)
	}
	gw := httptest.NewServer(p.Handler())
	defer gw.Close()
	// Pin the live definition once discovered.
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := p.upstream("up")
		if lt, ok := u.liveTool("echo"); ok {
			bundle.ToolPins = []*agentv1.ToolPin{{Upstream: "up", Tool: "echo", Sha256: lt.sha}}
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("echo not discovered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.Apply(bundle); err != nil {
		b.Fatal(err)
	}
	// One caller (unloaded latency, what a person waiting on an agent feels)
	// and sixteen (saturation); then with every check on: a client key, a
	// rule with a CEL condition, rate limits, a flow label, result scanning
	// that blocks.
	const secret = "pcck_benchmark-key"
	var hc *http.Client
	for _, name := range []string{"c=1", "c=16", "every-check/c=1", "every-check/c=16"} {
		if name == "every-check/c=1" {
			k := key(secret, "builders")
			k.Principal = "apikey:bench"
			bundle.Version++
			bundle.ClientAuth = &agentv1.ClientAuth{Required: true, Keys: []*agentv1.ClientKey{k}}
			bundle.AccessRules = []*agentv1.AccessRule{rule("r1", "*", "*", "*__shell*", false, ""),
				rule("r2", "group:builders", "main", "up__*", true, `size(string(args.message)) < 1000`)}
			bundle.RateLimits = &agentv1.RateLimits{PrincipalPerMinute: 1 << 30, ToolPerMinute: 1 << 30}
			bundle.ToolPins[0].FlowLabels = []string{"untrusted_content"}
			bundle.ResultScanning = &agentv1.ResultScanning{Action: agentv1.ResultAction_RESULT_ACTION_BLOCK}
			if err := p.Apply(bundle); err != nil {
				b.Fatal(err)
			}
			hc = &http.Client{Transport: bearer{secret}}
		}
		clients := 1
		if strings.HasSuffix(name, "16") {
			clients = 16
		}
		b.Run(name, func(b *testing.B) {
			sessions := make([]*mcp.ClientSession, clients)
			for i := range sessions {
				c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
				s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: gw.URL + "/mcp/main", DisableStandaloneSSE: true, HTTPClient: hc},
					&mcp.ClientSessionOptions{ProtocolVersion: benchProtocol})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				sessions[i] = s
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, s := range sessions {
				wg.Go(func() {
					params := &mcp.CallToolParams{Name: "up__echo", Arguments: map[string]any{"message": "benchmark payload"}}
					for next.Add(1) <= int64(b.N) {
						res, err := s.CallTool(ctx, params)
						if err != nil || res.IsError {
							b.Errorf("call: %v %v", res, err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// BenchmarkIdleSession reports the gateway's memory per idle client session
// that has made one call, so holds its own upstream session (the relay's
// cost per client): heap, goroutine stacks, and goroutines.
// go test -run '^$' -bench IdleSession ./internal/proxy/
func BenchmarkIdleSession(b *testing.B) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer up.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := telemetry.NewQueue(1 << 20)
	p, err := New(ctx, Config{Telemetry: events, PublicURL: "http://gw",
		MaxClientSessions: 1000}) // every session here comes from one address
	if err != nil {
		b.Fatal(err)
	}
	bundle := &agentv1.PolicyBundle{Version: 1, GatewayId: "g",
		Upstreams:      []*agentv1.Upstream{{Name: "up", Transport: agentv1.Transport_TRANSPORT_STREAMABLE_HTTP, Url: up.URL}},
		VirtualServers: []*agentv1.VirtualServer{{Name: "main", Upstreams: []string{"up"}}}}
	if err := p.Apply(bundle); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if lt, ok := p.upstream("up").liveTool("echo"); ok {
			bundle.ToolPins = []*agentv1.ToolPin{{Upstream: "up", Tool: "echo", Sha256: lt.sha}}
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("echo not discovered")
		}
	}
	if err := p.Apply(bundle); err != nil {
		b.Fatal(err)
	}
	gw := httptest.NewServer(p.Handler())
	defer gw.Close()
	// Memory per idle session that made one call, clients and upstream in
	// this process too: directly to the upstream, then through the gateway.
	// The difference is what the gateway holds per client session: its
	// session with the client and the client's own upstream session. The
	// calls' telemetry events, which a gateway ships within its window,
	// are taken from the queue as its shipper would.
	type cost struct{ heap, stack, goroutines float64 }
	shipped := func() {
		for events.Len() > 0 {
			events.Take(1 << 20)
			events.Ack()
		}
	}
	perSession := func(url, tool string) cost {
		const n = 200
		var before, after runtime.MemStats
		shipped()
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		sessions := make([]*mcp.ClientSession, 0, n)
		for range n {
			c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
			s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, DisableStandaloneSSE: true}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}}); err != nil {
				b.Fatal(err)
			}
			sessions = append(sessions, s)
		}
		shipped()
		runtime.GC()
		runtime.ReadMemStats(&after)
		g := runtime.NumGoroutine() - g0
		for _, s := range sessions {
			_ = s.Close()
		}
		return cost{(float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n,
			(float64(after.StackInuse) - float64(before.StackInuse)) / n, float64(g) / n}
	}
	for range b.N {
		direct := perSession(up.URL, "echo")
		via := perSession(gw.URL+"/mcp/main", "up__echo")
		b.ReportMetric(direct.heap, "direct-B/session")
		b.ReportMetric(via.heap-direct.heap, "gateway-B/session")
		b.ReportMetric(via.stack-direct.stack, "gateway-stack-B/session")
		b.ReportMetric(via.goroutines-direct.goroutines, "gateway-goroutines/session")
	}
}

// BenchmarkLargeResult relays a 1 MiB tool result, directly and through an
// in-process gateway, one caller: B/op beyond direct is what the gateway
// allocates for it (read, decode for scanning, write).
// go test -run '^$' -bench LargeResult -benchmem ./internal/proxy/
func BenchmarkLargeResult(b *testing.B) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	mcp.AddTool(srv, &mcp.Tool{Name: "big"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: big}}}, nil, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer up.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := New(ctx, Config{Telemetry: telemetry.NewQueue(1 << 20), PublicURL: "http://gw"})
	if err != nil {
		b.Fatal(err)
	}
	bundle := &agentv1.PolicyBundle{Version: 1, GatewayId: "g",
		Upstreams:      []*agentv1.Upstream{{Name: "up", Transport: agentv1.Transport_TRANSPORT_STREAMABLE_HTTP, Url: up.URL}},
		VirtualServers: []*agentv1.VirtualServer{{Name: "main", Upstreams: []string{"up"}}}}
	if err := p.Apply(bundle); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if lt, ok := p.upstream("up").liveTool("big"); ok {
			bundle.ToolPins = []*agentv1.ToolPin{{Upstream: "up", Tool: "big", Sha256: lt.sha}}
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("big not discovered")
		}
	}
	if err := p.Apply(bundle); err != nil {
		b.Fatal(err)
	}
	gw := httptest.NewServer(p.Handler())
	defer gw.Close()
	for _, path := range []struct{ name, url, tool string }{{"direct", up.URL, "big"}, {"gateway", gw.URL + "/mcp/main", "up__big"}} {
		b.Run(path.name, func(b *testing.B) {
			c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
			s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: path.url, DisableStandaloneSSE: true}, &mcp.ClientSessionOptions{ProtocolVersion: benchProtocol})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: path.tool, Arguments: map[string]any{}})
				if err != nil || res.IsError || len(res.Content[0].(*mcp.TextContent).Text) != len(big) {
					b.Fatalf("call: %v", err)
				}
			}
		})
	}
}
