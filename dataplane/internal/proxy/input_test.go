package proxy

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/telemetry"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// newTestProxy serves one virtual server whose upstream is unreachable.
func newTestProxy(t testing.TB) http.Handler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p, err := New(ctx, Config{Telemetry: telemetry.NewQueue(16), PublicURL: "http://gw.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(&agentv1.PolicyBundle{Version: 1, GatewayId: "g",
		Upstreams:      []*agentv1.Upstream{{Name: "up", Transport: agentv1.Transport_TRANSPORT_STREAMABLE_HTTP, Url: "http://127.0.0.1:1/mcp"}},
		VirtualServers: []*agentv1.VirtualServer{{Name: "main", Upstreams: []string{"up"}}},
	}); err != nil {
		t.Fatal(err)
	}
	return p.Handler()
}

func post(h http.Handler, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/mcp/main", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

func TestBadInput(t *testing.T) {
	h := newTestProxy(t)
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"malformed JSON", []byte(`{"jsonrpc":"2.0",`), http.StatusBadRequest, ""},
		{"not JSON-RPC", []byte(`[1,2,3]`), http.StatusBadRequest, ""},
		{"oversized", append([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"`), bytes.Repeat([]byte("a"), MaxRequestBytes+1)...), http.StatusRequestEntityTooLarge, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := post(h, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body.String())
			}
		})
	}
	// Inside a session, an unknown method and a call with bad arguments get JSON-RPC errors.
	w := post(h, []byte(initialize))
	sid := w.Header().Get("Mcp-Session-Id")
	if w.Code != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %q %s", w.Code, sid, w.Body.String())
	}
	inSession := func(body string) (int, string) {
		r := httptest.NewRequest("POST", "/mcp/main", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	inSession(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	// The SDK refuses an unknown method before dispatch, with a 400 that names it.
	if code, out := inSession(`{"jsonrpc":"2.0","id":7,"method":"no/such/method"}`); code != http.StatusBadRequest || !strings.Contains(out, "unsupported") {
		t.Fatalf("unknown method: %d %s", code, out)
	}
	// An unknown tool is a readable refusal the model can read, not the SDK's -32602.
	if code, out := inSession(`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"up__missing","arguments":{}}}`); code != http.StatusOK ||
		!strings.Contains(out, `"isError":true`) || !strings.Contains(out, `Portcullis refused this call: tool \"up__missing\" is not offered`) {
		t.Fatalf("call of an unknown tool: %d %s", code, out)
	}

	// An unknown virtual server is a clear 404.
	r := httptest.NewRequest("POST", "/mcp/nope", strings.NewReader(initialize))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `no virtual server "nope"`) {
		t.Fatalf("unknown virtual server: %d %s", w.Code, w.Body.String())
	}
}

// FuzzHandler sends arbitrary bodies to an MCP endpoint: whatever comes in,
// the gateway answers with an HTTP status and never panics.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{initialize, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"up__x","arguments":{"a":1}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"no/such/method"}`, `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, `{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}`, "\xff\xfe", ``} {
		f.Add([]byte(s))
	}
	h := newTestProxy(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := post(h, body)
		if w.Code < 200 || w.Code >= 600 {
			t.Fatalf("status %d", w.Code)
		}
		if w.Code >= 500 {
			t.Fatalf("server error %d for %q: %s", w.Code, body, w.Body.String())
		}
	})
}
