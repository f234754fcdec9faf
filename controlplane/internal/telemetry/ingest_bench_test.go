package telemetry_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// BenchmarkIngest stores batches of call events into PostgreSQL and into
// the embedded SQLite as gateways ship them (1,000 events at saturation, 50
// in a 250 ms window of a lightly used gateway; IDs made as gateways make
// them), and reports events per second.
func BenchmarkIngest(b *testing.B) {
	if os.Getenv("PORTCULLIS_TEST_POSTGRES_URL") == "" {
		b.Fatal("PORTCULLIS_TEST_POSTGRES_URL is not set: run with `make bench` (it starts PostgreSQL)")
	}
	for _, dbName := range []string{"postgres", "sqlite"} {
		for _, batch := range []int{1000, 50} {
			b.Run(fmt.Sprintf("%s/batch=%d", dbName, batch), func(b *testing.B) {
				url := "sqlite://" + filepath.Join(b.TempDir(), "t.db")
				if dbName == "postgres" {
					url = testutil.StartPostgres(b)
				}
				benchIngest(b, url, batch)
			})
		}
	}
}

func benchIngest(b *testing.B, url string, batch int) {
	ctx := viewer.System(context.Background())
	svc, _, _, ag := ingestSetup(b, url)
	mk := func() []*agentv1.CallEvent {
		evs := make([]*agentv1.CallEvent, batch)
		now := timestamppb.New(time.Now())
		for j := range evs {
			evs[j] = &agentv1.CallEvent{Id: eventID(), Time: now, Principal: "apikey:bench",
				VirtualServer: "main", Upstream: "demo", Method: "tools/call", Tool: "echo", Decision: agentv1.Decision_DECISION_ALLOW,
				LatencyMicros: 1234, RequestBytes: 100, ResponseBytes: 200}
		}
		return evs
	}
	for b.Loop() {
		b.StopTimer()
		evs := mk()
		b.StartTimer()
		if n, err := svc.Ingest(ctx, ag, evs, 0); err != nil || n != batch {
			b.Fatalf("ingest: %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// eventID is an ID as gateways make them: a UUIDv7 in hex.
func eventID() string {
	u := uuid.Must(uuid.NewV7())
	return hex.EncodeToString(u[:])
}
