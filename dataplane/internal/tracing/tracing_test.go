package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// relay is a gateway in miniature: an inbound handler that calls an upstream
// through Transport with the request's context; it returns the traceparent
// the upstream saw.
func relay(t *testing.T, traceparent string) string {
	t.Helper()
	var seen string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Get("traceparent") }))
	defer up.Close()
	client := &http.Client{Transport: Transport(http.DefaultTransport)}
	gw := httptest.NewServer(Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, up.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	}), "test"))
	defer gw.Close()
	req, _ := http.NewRequest(http.MethodGet, gw.URL, nil)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return seen
}

const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// The tests share the package's global state: propagation first, then recording.

func TestPropagationOnlyWithoutExporter(t *testing.T) {
	if _, err := Setup(context.Background(), "", "test"); err != nil {
		t.Fatal(err)
	}
	if got := relay(t, parent); got != parent {
		t.Fatalf("upstream saw traceparent %q, want the client's %q unchanged", got, parent)
	}
	if got := relay(t, ""); got != "" {
		t.Fatalf("upstream saw traceparent %q for a client that sent none", got)
	}
}

func TestSpansWithExporter(t *testing.T) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer collector.Close()
	shutdown, err := Setup(context.Background(), collector.URL, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	got := relay(t, parent)
	if !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || got == parent {
		t.Fatalf("upstream saw traceparent %q, want the client's trace with the gateway's own span", got)
	}
}
