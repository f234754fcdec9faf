package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/metrics"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

func rawCalls() float64 { return testutil.ToFloat64(metrics.RawCalls.WithLabelValues("up")) }

// Every relayed feature of a tools/call works on the fast path too, and the
// calls did take it: sampling, elicitation and roots asked of the client on
// the call's stream, logs scanned, per-session upstream state.
func TestFastPathRelaysEveryFeature(t *testing.T) {
	url, q := relayGateway(t, relayUpstream(t, false).URL, &agentv1.VirtualServer{Unprefixed: true}, &agentv1.Upstream{})
	a := connectRelayClient(t, url)
	before := rawCalls()
	if got := callText(t, a.cs, "sample"); !strings.HasPrefix(got, "sampled: saw summarize") || strings.Contains(got, "AKIAIOSFODNN7EXAMPLE") {
		t.Errorf("sampling = %q, want the client's answer to the scanned request", got)
	}
	if got := callText(t, a.cs, "ask"); !strings.HasPrefix(got, "elicited: accept msg=Your name?") || strings.Contains(got, "\u200b") {
		t.Errorf("elicitation = %q, want the client's answer to the scanned message", got)
	}
	if got := callText(t, a.cs, "roots"); got != "roots: file:///work/front" {
		t.Errorf("roots = %q, want the client's own root", got)
	}
	if err := a.cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	callText(t, a.cs, "log")
	select {
	case msg := <-a.logs:
		if strings.Contains(msg, "ghp_abcdefghijklmnopqrstuvwxyz0123456789") {
			t.Errorf("log message = %q, want the secret redacted", msg)
		}
	case <-time.After(10 * time.Second):
		t.Error("the upstream's log message never reached the client")
	}
	for i := 1; i <= 3; i++ {
		if got := callText(t, a.cs, "incr"); got != string(rune('0'+i)) {
			t.Errorf("incr %d = %q: the client's own upstream session", i, got)
		}
	}
	if n := rawCalls() - before; n != 7 {
		t.Errorf("%v of 7 calls took the fast path", n)
	}
	relayed := func(ev *agentv1.CallEvent) bool {
		return ev.Method == "sampling/createMessage" || ev.Method == "elicitation/create" || ev.Method == "roots/list"
	}
	var asked int
	for _, ev := range eventsUntil(q, func(evs []*agentv1.CallEvent) bool {
		n := 0
		for _, ev := range evs {
			if relayed(ev) {
				n++
			}
		}
		return n >= 3
	}) {
		if relayed(ev) {
			asked++
			if ev.Decision != agentv1.Decision_DECISION_ALLOW || ev.Upstream != "up" || ev.Tool != "front" {
				t.Errorf("relayed request event %+v", ev)
			}
		}
	}
	if asked != 3 {
		t.Errorf("%d events for requests relayed to the client, want 3", asked)
	}
}

// A client that cancels a call on the fast path cancels it upstream.
func TestFastPathCancels(t *testing.T) {
	cancelled := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "slow"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		started <- struct{}{}
		<-ctx.Done()
		close(cancelled)
		return nil, nil, ctx.Err()
	})
	up := serveUpstream(t, srv)
	url, _ := relayGateway(t, up.URL, &agentv1.VirtualServer{Unprefixed: true}, &agentv1.Upstream{})
	a := connectRelayClient(t, url)
	before := rawCalls()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	if _, err := a.cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream never saw the cancellation")
	}
	for deadline := time.Now().Add(10 * time.Second); rawCalls() == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the call did not take the fast path")
		}
	}
}

// A session that only makes fast calls outlives the idle timeout: the SDK,
// which ends sessions it has not seen, sees one request per half of it.
func TestFastPathKeepsSessionAlive(t *testing.T) {
	url, _ := relayGatewayIdle(t, relayUpstream(t, false).URL, time.Second)
	a := connectRelayClient(t, url)
	start := time.Now()
	for i := 0; time.Since(start) < 3*time.Second; i++ {
		if got := callText(t, a.cs, "up__incr"); got == "" {
			t.Fatalf("call %d after %v failed", i, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With a client key required and a rule with a condition, calls take the
// fast path as the key's principal, and the rule sees the arguments that are
// forwarded.
func TestFastPathWithClientKeyAndRules(t *testing.T) {
	const secret = "pcck_fast-path-test-key"
	url, q := relayGateway(t, relayUpstream(t, false).URL, &agentv1.VirtualServer{Unprefixed: true}, &agentv1.Upstream{}, func(b *agentv1.PolicyBundle) {
		k := key(secret, "builders")
		k.Principal = "apikey:fast"
		b.ClientAuth = &agentv1.ClientAuth{Required: true, Keys: []*agentv1.ClientKey{k}}
		b.AccessRules = []*agentv1.AccessRule{rule("r1", "group:builders", "main", "up__*", true, `!has(args.stop)`)}
	})
	c := mcp.NewClient(&mcp.Implementation{Name: "front", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url,
		HTTPClient: &http.Client{Transport: bearer{secret}}}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	before := rawCalls()
	if got := callText(t, cs, "incr"); got != "1" {
		t.Errorf("incr = %q", got)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "incr", Arguments: map[string]any{"stop": true}})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, `no access rule lets apikey:fast call "up__incr"`) {
		t.Errorf("a call the rule's condition refuses = %+v, %v", res.Content[0], err)
	}
	if n := rawCalls() - before; n != 1 {
		t.Errorf("%v calls took the fast path, want the allowed one", n)
	}
	var allowed, denied bool
	eventsUntil(q, func(evs []*agentv1.CallEvent) bool {
		for _, ev := range evs {
			if ev.Method == "tools/call" && ev.Principal == "apikey:fast" {
				allowed = allowed || ev.Decision == agentv1.Decision_DECISION_ALLOW
				denied = denied || ev.Decision == agentv1.Decision_DECISION_DENY
			}
		}
		return allowed && denied
	})
	if !allowed || !denied {
		t.Errorf("events for the key's principal: allowed %v, denied %v", allowed, denied)
	}
}

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// What an upstream sends outside any request reaches a client that has its
// own standalone stream, scanned; the upstream's stream is opened for it.
func TestStandaloneStreamRelayed(t *testing.T) {
	url, _ := relayGateway(t, relayUpstream(t, false).URL, &agentv1.VirtualServer{Unprefixed: true}, &agentv1.Upstream{})
	a := connectRelayClient(t, url)
	if err := a.cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	callText(t, a.cs, "later")
	select {
	case msg := <-a.logs:
		if !strings.HasPrefix(msg, "later") || strings.Contains(msg, "ghp_abcdefghijklmnopqrstuvwxyz0123456789") {
			t.Errorf("log message = %q, want it relayed with the secret redacted", msg)
		}
	case <-time.After(20 * time.Second):
		t.Error("the upstream's log message outside a request never reached the client")
	}
}

func TestReadEvents(t *testing.T) {
	long := strings.Repeat("x", 40<<10)
	block := strings.Repeat("0123456789abcdef", 1<<12) // 64 KiB
	for _, tc := range []struct {
		name, in string
		want     []string
		err      error
	}{
		{"one", "event: message\ndata: {\"a\":1}\n\n", []string{`{"a":1}`}, io.ErrUnexpectedEOF},
		{"crlf and no name", "id: 1\r\ndata: a\r\n\r\ndata:b\r\n\r\n", []string{"a", "b"}, io.ErrUnexpectedEOF},
		{"lines joined", "data: a\ndata: b\n\n", []string{"a\nb"}, io.ErrUnexpectedEOF},
		{"other events skipped", "event: ping\ndata: x\n\n: comment\ndata: y\n\n", []string{"y"}, io.ErrUnexpectedEOF},
		{"longer than the buffer", "data: " + long + "\n\n", []string{long}, io.ErrUnexpectedEOF},
		// Lines ending where a block of the gathered data does (64 KiB).
		{"over several blocks", "data: " + block + "\r\ndata: " + strings.Repeat("y", 1<<16-1) + "\r\ndata:\r\n\r\ndata: z\n\n",
			[]string{block + "\n" + strings.Repeat("y", 1<<16-1), "z"}, io.ErrUnexpectedEOF},
		{"cut short", "data: a", nil, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := readEvents(strings.NewReader(tc.in), DefaultMaxMessageBytes, func(d []byte) bool { got = append(got, string(d)); return true })
			if !slices.Equal(got, tc.want) || !errors.Is(err, tc.err) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
	// Stops when f says so, and bounds an event.
	n := 0
	if err := readEvents(strings.NewReader("data: a\n\ndata: b\n\n"), DefaultMaxMessageBytes, func([]byte) bool { n++; return false }); err != nil || n != 1 {
		t.Errorf("stop: %d events, %v", n, err)
	}
	big := io.MultiReader(strings.NewReader("data: "), io.LimitReader(zeros{}, DefaultMaxMessageBytes+1))
	if err := readEvents(big, DefaultMaxMessageBytes, func([]byte) bool { return true }); !errors.Is(err, errEventTooLarge) {
		t.Errorf("an event over the bound: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = '0'
	}
	return len(b), nil
}

// Log messages on a fast call's stream follow the client's level, as the
// SDK's do: none before it set one, none below it.
func TestFastPathLogLevel(t *testing.T) {
	url, _ := relayGateway(t, relayUpstream(t, false).URL, &agentv1.VirtualServer{Unprefixed: true}, &agentv1.Upstream{})
	a := connectRelayClient(t, url)
	// The upstream has no level either, so set one there without the client's.
	callText(t, a.cs, "log")
	if err := a.cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "error"}); err != nil {
		t.Fatal(err)
	}
	callText(t, a.cs, "log") // logs at info
	if err := a.cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	callText(t, a.cs, "log")
	select {
	case <-a.logs:
	case <-time.After(10 * time.Second):
		t.Fatal("the log message at the client's level never came")
	}
	select {
	case msg := <-a.logs:
		t.Errorf("a log message below the client's level or before it set one came: %q", msg)
	case <-time.After(200 * time.Millisecond):
	}
}

// A session's request that reaches the gateway's loopback address under
// another host name (DNS rebinding) is refused, on the fast path too.
func TestFastPathRefusesReboundHost(t *testing.T) {
	url, _ := relayGateway(t, relayUpstream(t, false).URL, &agentv1.VirtualServer{Unprefixed: true}, &agentv1.Upstream{})
	a := connectRelayClient(t, url)
	callText(t, a.cs, "incr")
	before := rawCalls()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"incr","arguments":{}}}`))
	req.Host = "attacker.example"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", a.cs.ID())
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || rawCalls() != before {
		t.Errorf("a rebound request: HTTP %d, %v fast calls; want 403 and none", resp.StatusCode, rawCalls()-before)
	}
	// The same request under the gateway's own host name is served.
	req.Host = ""
	req.Body = io.NopCloser(strings.NewReader(`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"incr","arguments":{}}}`))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || rawCalls() != before+1 {
		t.Errorf("the same request to the gateway's host: HTTP %d, %v fast calls; want 200 and one", resp.StatusCode, rawCalls()-before)
	}
}

// Session-less calls (2026-07-28) to an upstream of the same revision take
// the fast path: results, results that ask for input (screened; the answer
// comes back on the SDK path), telemetry; a Mcp-Name header that does not
// match the body is left to the SDK, which refuses it; an upstream that
// does not speak the revision is reached through the SDK for a client that
// declared capabilities, on the fast path with a pooled session otherwise.
func TestFastPathSessionless(t *testing.T) {
	url, q := relayGateway(t, relayUpstream(t, true).URL, &agentv1.VirtualServer{Unprefixed: true}, &agentv1.Upstream{})
	c := connectRelayClientVersion(t, url, "2026-07-28")
	before := rawCalls()
	if got := callText(t, c.cs, "incr"); got != "1" {
		t.Errorf("incr = %q", got)
	}
	if got := callText(t, c.cs, "mrtr"); !strings.HasPrefix(got, "mrtr: accept msg=Name?") || strings.Contains(got, "\u200b") {
		t.Errorf("mrtr = %q, want the answer to the screened input request", got)
	}
	if n := rawCalls() - before; n != 2 {
		t.Errorf("%v calls took the fast path, want 2 (incr and mrtr's first round)", n)
	}
	var fast int
	eventsUntil(q, func(evs []*agentv1.CallEvent) bool {
		fast = 0
		for _, ev := range evs {
			if ev.Method == "tools/call" && ev.Tool == "incr" && ev.VirtualServer == "main" && ev.Decision == agentv1.Decision_DECISION_ALLOW {
				fast++
			}
		}
		return fast > 0
	})
	if fast != 1 {
		t.Errorf("%d call events for incr, want 1", fast)
	}

	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"incr","arguments":{},`+
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "ask")
	before = rawCalls()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "does not match") || rawCalls() != before {
		t.Errorf("mismatched Mcp-Name: HTTP %d %s, want the SDK's 400", resp.StatusCode, body)
	}

	legacy, _ := relayGateway(t, relayUpstream(t, false).URL, &agentv1.VirtualServer{Unprefixed: true}, &agentv1.Upstream{})
	lc := connectRelayClientVersion(t, legacy, "2026-07-28")
	before = rawCalls()
	if got := callText(t, lc.cs, "ask"); !strings.HasPrefix(got, "elicited: accept") {
		t.Errorf("ask through a legacy upstream = %q", got)
	}
	if rawCalls() != before {
		t.Error("a call to a legacy upstream from a client with capabilities took the session-less fast path")
	}
	// A client that declared no capability reaches a legacy upstream on the
	// fast path too, on a pooled session: nothing can be asked of it.
	bare, err := mcp.NewClient(&mcp.Implementation{Name: "bare", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: legacy}, &mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	before = rawCalls()
	if got := callText(t, bare, "log"); got != "logged" {
		t.Errorf("log through a legacy upstream = %q", got)
	}
	res, err := bare.CallTool(context.Background(), &mcp.CallToolParams{Name: "sample", Arguments: map[string]any{}})
	if err == nil && !res.IsError {
		t.Errorf("sampling of a client that declared none = %+v, want an error", res)
	}
	if n := rawCalls() - before; n != 2 {
		t.Errorf("%v of 2 calls of a client without capabilities to a legacy upstream took the fast path", n)
	}
}

// The fast calls in flight of a session: the first needs no map, more do,
// and a session with none holds neither.
func TestFastCallsInFlight(t *testing.T) {
	var f fast
	var got []string
	cancel := func(key string) context.CancelFunc { return func() { got = append(got, key) } }
	for _, k := range []string{"1", "2", "3"} {
		if !f.addCall(k, cancel(k)) {
			t.Fatalf("call %s refused", k)
		}
	}
	if f.addCall("2", cancel("2 again")) {
		t.Error("a duplicate ID was taken")
	}
	f.dropCall("1")
	if f.cancelOf("1") != nil {
		t.Error("a call dropped is still in flight")
	}
	f.cancelOf("2")()
	f.cancelOf("3")()
	if !f.addCall("1", cancel("1 again")) {
		t.Error("an ID used before was refused")
	}
	f.cancelOf("1")()
	if !slices.Equal(got, []string{"2", "3", "1 again"}) {
		t.Errorf("cancelled %q", got)
	}
	for _, k := range []string{"2", "3", "1"} {
		f.dropCall(k)
	}
	if f.call.cancel != nil || f.calls != nil {
		t.Errorf("an idle session holds %+v, %v", f.call, f.calls)
	}
}
