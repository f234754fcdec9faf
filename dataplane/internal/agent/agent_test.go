package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/testcontrol"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// fakeApplier records applied bundles.
type fakeApplier struct {
	mu      sync.Mutex
	applied []uint64
	changed chan struct{}
}

func (f *fakeApplier) Apply(b *agentv1.PolicyBundle) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, b.GetVersion())
	return nil
}
func (f *fakeApplier) Inventory() *agentv1.InventoryReport { return &agentv1.InventoryReport{} }
func (f *fakeApplier) InventoryChanged() <-chan struct{}   { return f.changed }

func TestEnrollRefusesATokenForAnotherCA(t *testing.T) {
	cp, err := testcontrol.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	other, err := testcontrol.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	a, _ := New(Config{DataDir: t.TempDir(), ControlPlane: cp.Addr, EnrollToken: other.Token(), Applier: &fakeApplier{}})
	err = a.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not match the enrollment token") {
		t.Fatalf("Start = %v, want a CA mismatch error", err)
	}
}

// runAgent starts an agent and runs it until t ends; ctx ends with it.
func runAgent(t *testing.T, cfg Config) (*Agent, context.Context) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx)
	return a, ctx
}

func reply(t *testing.T, s *testcontrol.Server) *agentv1.SyncRequest {
	t.Helper()
	select {
	case m := <-s.Replies:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no ACK or NACK")
		return nil
	}
}

func TestSyncAcksGoodBundlesAndNacksBadOnes(t *testing.T) {
	cp, err := testcontrol.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	dir := t.TempDir()
	fa := &fakeApplier{changed: make(chan struct{})}
	a, ctx := runAgent(t, Config{DataDir: dir, ControlPlane: cp.Addr, EnrollToken: cp.Token(), Applier: fa, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if h := <-cp.Hellos; h.GetAgentId() != "agent-1" || h.GetCapabilityVersion() != CapabilityVersion || h.GetLastAppliedVersion() != 0 {
		t.Fatalf("hello = %v", h)
	}

	cp.Bundles <- cp.Sign(&agentv1.PolicyBundle{Version: 2, GatewayId: cp.GatewayID})
	if m := reply(t, cp); m.GetAck().GetVersion() != 2 {
		t.Fatalf("want ACK of version 2, got %v", m)
	}

	_, wrong, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		sb   *agentv1.SignedBundle
		want string
	}{
		{"bad signature", testcontrol.SignWith(wrong, &agentv1.PolicyBundle{Version: 3, GatewayId: cp.GatewayID}), "signature"},
		{"another gateway", cp.Sign(&agentv1.PolicyBundle{Version: 3, GatewayId: "other"}), "another gateway"},
		{"older version", cp.Sign(&agentv1.PolicyBundle{Version: 1, GatewayId: cp.GatewayID}), "older"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp.Bundles <- tc.sb
			m := reply(t, cp)
			if m.GetNack() == nil || !strings.Contains(m.GetNack().GetError(), tc.want) || m.GetNack().GetAppliedVersion() != 2 {
				t.Fatalf("want NACK containing %q keeping version 2, got %v", tc.want, m)
			}
		})
	}
	if a.AppliedVersion() != 2 {
		t.Fatalf("applied version %d after refusals, want 2", a.AppliedVersion())
	}

	// With the control plane gone, a new agent over the same data dir starts
	// from the cached bundle.
	cp.Close()
	fb := &fakeApplier{changed: make(chan struct{})}
	b, _ := New(Config{DataDir: dir, ControlPlane: cp.Addr, Applier: fb})
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if b.AppliedVersion() != 2 || len(fb.applied) != 1 || fb.applied[0] != 2 {
		t.Fatalf("cached start: version %d, applied %v", b.AppliedVersion(), fb.applied)
	}
}

// TestTelemetryShipsPerWindow: a full batch goes at once; events that
// arrive while it is being stored wait for a window rather than following
// it in small batches of their own.
func TestTelemetryShipsPerWindow(t *testing.T) {
	cp, err := testcontrol.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	q := telemetry.NewQueue(0)
	type shipped struct {
		n    int
		done time.Time // when the control plane acknowledged it, at the latest
	}
	batches := make(chan shipped, 10)
	first := true
	cp.OnTelemetry = func(evs []*agentv1.CallEvent) {
		if first {
			first = false
			for i := range 3 {
				q.Add(&agentv1.CallEvent{Id: fmt.Sprintf("late-%d", i), Method: "tools/call"})
			}
		}
		batches <- shipped{len(evs), time.Now()}
	}
	for i := range 1000 {
		q.Add(&agentv1.CallEvent{Id: fmt.Sprintf("ev-%d", i), Method: "tools/call"})
	}
	runAgent(t, Config{DataDir: t.TempDir(), ControlPlane: cp.Addr, EnrollToken: cp.Token(), Applier: &fakeApplier{changed: make(chan struct{})}, Telemetry: q})
	next := func() shipped {
		t.Helper()
		select {
		case b := <-batches:
			return b
		case <-time.After(30 * time.Second):
			t.Fatal("no telemetry batch")
			return shipped{}
		}
	}
	b1, b2 := next(), next()
	if b1.n != 1000 || b2.n != 3 {
		t.Fatalf("batches of %d and %d events, want 1000 then the 3 that came meanwhile", b1.n, b2.n)
	}
	if gap := b2.done.Sub(b1.done); gap < telemetryWindow {
		t.Fatalf("the 3 late events were shipped %v after the full batch, within the %v window", gap, telemetryWindow)
	}
}
