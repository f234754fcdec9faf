package telemetry_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// BenchmarkIngest stores batches of 1,000 call events into PostgreSQL, as
// gateways ship them, and reports events per second.
func BenchmarkIngest(b *testing.B) {
	if os.Getenv("PORTCULLIS_TEST_POSTGRES_URL") == "" {
		b.Fatal("PORTCULLIS_TEST_POSTGRES_URL is not set: run with `make bench` (it starts PostgreSQL)")
	}
	ctx := viewer.System(context.Background())
	db, err := store.Open(ctx, testutil.StartPostgres(b), testutil.Logger())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	gw := testutil.NewGateway(b, db)
	ag, err := db.Agent.Create().SetTenantID(gw.TenantID).SetGatewayID(gw.ID).SetCertFingerprint(uuid.NewString()).Save(ctx)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := telemetry.New(db, testutil.Logger())
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	mk := func(i int) []*agentv1.CallEvent {
		evs := make([]*agentv1.CallEvent, batch)
		now := timestamppb.New(time.Now())
		for j := range evs {
			evs[j] = &agentv1.CallEvent{Id: fmt.Sprintf("%s-%d-%d", uuid.NewString()[:8], i, j), Time: now, Principal: "apikey:bench",
				VirtualServer: "main", Upstream: "demo", Method: "tools/call", Tool: "echo", Decision: agentv1.Decision_DECISION_ALLOW,
				LatencyMicros: 1234, RequestBytes: 100, ResponseBytes: 200}
		}
		return evs
	}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		evs := mk(i)
		b.StartTimer()
		if n, err := svc.Ingest(ctx, ag, evs, 0); err != nil || n != batch {
			b.Fatalf("ingest: %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}
