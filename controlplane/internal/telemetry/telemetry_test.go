package telemetry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/callevent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// ingestSetup opens the database at url (closed when t ends) with a
// gateway and one of its agents, and the telemetry service on it.
func ingestSetup(t testing.TB, url string) (*telemetry.Service, *ent.Client, *ent.Gateway, *ent.Agent) {
	t.Helper()
	ctx := viewer.System(context.Background())
	drv, err := store.OpenDriver(ctx, url, testutil.Logger())
	if err != nil {
		t.Fatal(err)
	}
	db := ent.NewClient(ent.Driver(drv))
	t.Cleanup(func() { _ = db.Close() })
	gw := testutil.NewGateway(t, db)
	ag, err := db.Agent.Create().SetTenantID(gw.TenantID).SetGatewayID(gw.ID).SetCertFingerprint(uuid.NewString()).Save(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := telemetry.New(drv, testutil.Logger())
	if err != nil {
		t.Fatal(err)
	}
	return svc, db, gw, ag
}

func TestIngestRollsUpOnce(t *testing.T) {
	for name, url := range testutil.Databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := viewer.System(context.Background())
			svc, _, gw, ag := ingestSetup(t, url)
			minute := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Minute)
			ev := func(id string, lat int64, deny bool) *agentv1.CallEvent {
				d := agentv1.Decision_DECISION_ALLOW
				if deny {
					d = agentv1.Decision_DECISION_DENY
				}
				return &agentv1.CallEvent{Id: id, Time: timestamppb.New(minute.Add(10 * time.Second)), Method: "tools/call", Tool: "echo",
					Upstream: "demo", VirtualServer: "main", Decision: d, LatencyMicros: lat, Principal: "apikey:ci"}
			}
			batch := []*agentv1.CallEvent{ev("a", 500, false), ev("b", 3000, false), ev("c", 100, true)}
			for range 2 { // a resent batch is stored and counted once
				if _, err := svc.Ingest(ctx, ag, batch, 0); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := svc.Ingest(ctx, ag, []*agentv1.CallEvent{ev("a", 500, false), ev("d", 40000, false)}, 0); err != nil {
				t.Fatal(err)
			}
			series, err := svc.Series(ctx, gw.TenantID, minute.Add(-time.Minute), minute.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if len(series) != 3 || series[1].Calls != 4 || series[1].Denies != 1 || series[0].Calls != 0 {
				t.Fatalf("series = %+v", series)
			}
			if series[1].P95Micros != 50000 { // 4 calls; the 95th percentile is in the 20–50 ms bucket
				t.Fatalf("p95 = %d µs", series[1].P95Micros)
			}
			denied, err := svc.Events(ctx, gw.TenantID, telemetry.Filter{Decision: "deny"})
			if err != nil || len(denied) != 1 || denied[0].ID != "c" {
				t.Fatalf("denied events: %v %v", denied, err)
			}
			if _, err := svc.Events(ctx, gw.TenantID, telemetry.Filter{Decision: "maybe"}); err == nil {
				t.Fatal("a bad decision filter was accepted")
			}
			n, err := svc.Expire(ctx, time.Minute, time.Hour)
			if err != nil || n != 4 {
				t.Fatalf("expired %d, %v; want the 4 raw events older than a minute", n, err)
			}
			if series, _ := svc.Series(ctx, gw.TenantID, minute, minute.Add(time.Minute)); series[0].Calls != 4 {
				t.Fatal("rollups must outlive raw events")
			}
		})
	}
}

// TestIngestLargeBatch stores batches larger than one prepared INSERT, with
// a remainder, re-sent in part: every event once, every column as sent.
func TestIngestLargeBatch(t *testing.T) {
	for name, url := range testutil.Databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := viewer.System(context.Background())
			svc, db, gw, ag := ingestSetup(t, url)
			at := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute + 7*time.Second)
			var batch []*agentv1.CallEvent
			for i := range 250 {
				batch = append(batch, &agentv1.CallEvent{Id: fmt.Sprintf("ev-%03d", i), Time: timestamppb.New(at), Method: "tools/call",
					Tool: "echo", Upstream: "demo", VirtualServer: "main", Decision: agentv1.Decision_DECISION_DENY, Reason: "no",
					LatencyMicros: int64(i), RequestBytes: 10, ResponseBytes: 20, Principal: "apikey:ci", Error: "boom"})
			}
			if n, err := svc.Ingest(ctx, ag, batch[:237], 0); err != nil || n != 237 {
				t.Fatalf("first batch: stored %d, %v", n, err)
			}
			if n, err := svc.Ingest(ctx, ag, batch, 0); err != nil || n != 13 {
				t.Fatalf("the batch again with 13 more: stored %d, %v; want the 13", n, err)
			}
			if n, err := db.CallEvent.Query().Count(ctx); err != nil || n != 250 {
				t.Fatalf("%d events stored, %v", n, err)
			}
			e, err := db.CallEvent.Get(ctx, "ev-236")
			if err != nil {
				t.Fatal(err)
			}
			if e.TenantID != gw.TenantID || e.GatewayID != gw.ID || e.AgentID != ag.ID || !e.Time.Equal(at) || e.Principal != "apikey:ci" ||
				e.VirtualServer != "main" || e.Upstream != "demo" || e.Method != "tools/call" || e.Tool != "echo" || e.Decision != callevent.DecisionDeny ||
				e.Reason != "no" || e.LatencyMicros != 236 || e.RequestBytes != 10 || e.ResponseBytes != 20 || e.Error != "boom" {
				t.Fatalf("stored %+v", e)
			}
			m := at.Truncate(time.Minute)
			series, err := svc.Series(ctx, gw.TenantID, m.Add(-time.Minute), m.Add(time.Minute))
			if err != nil || len(series) != 3 || series[1].Calls != 250 || series[1].Denies != 250 || series[1].Errors != 250 {
				t.Fatalf("series %+v, %v", series, err)
			}
		})
	}
}
