// Package telemetry stores the call events gateways ship.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"entgo.io/ent/dialect/sql"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/bound"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/metrics"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/callevent"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// MaxBatch is the largest batch accepted in one message.
const MaxBatch = 5000

// Service ingests call events.
type Service struct {
	db  *ent.Client
	log *slog.Logger
}

// New returns a Service.
func New(db *ent.Client, log *slog.Logger) (*Service, error) {
	if db == nil {
		return nil, errors.New("telemetry.New: db is required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, log: log.With("component", "telemetry")}, nil
}

// Ingest stores a batch from an agent. Events already stored (same id) are
// skipped, so a batch re-sent after a lost acknowledgement is harmless.
func (s *Service) Ingest(ctx context.Context, agent *ent.Agent, events []*agentv1.CallEvent, dropped uint64) (int, error) {
	if len(events) > MaxBatch {
		return 0, fmt.Errorf("batch of %d events exceeds the limit of %d", len(events), MaxBatch)
	}
	if dropped > 0 {
		s.log.Warn("agent dropped call events", "agent", agent.ID, "dropped", dropped)
		metrics.EventsDropped.Add(float64(dropped))
	}
	builders := make([]*ent.CallEventCreate, 0, len(events))
	for _, e := range events {
		if e.GetId() == "" || len(e.GetId()) > 64 || e.GetMethod() == "" {
			continue
		}
		decision := callevent.DecisionAllow
		if e.GetDecision() == agentv1.Decision_DECISION_DENY {
			decision = callevent.DecisionDeny
		}
		t := e.GetTime().AsTime()
		if !e.GetTime().IsValid() {
			t = time.Now()
		}
		builders = append(builders, s.db.CallEvent.Create().SetID(e.GetId()).SetTenantID(agent.TenantID).
			SetGatewayID(agent.GatewayID).SetAgentID(agent.ID).SetTime(t).
			SetPrincipal(bound.String(e.GetPrincipal(), 256)).SetVirtualServer(bound.String(e.GetVirtualServer(), 63)).
			SetUpstream(bound.String(e.GetUpstream(), 48)).SetMethod(bound.String(e.GetMethod(), 64)).SetTool(bound.String(e.GetTool(), 128)).
			SetDecision(decision).SetReason(bound.String(e.GetReason(), 512)).SetLatencyMicros(e.GetLatencyMicros()).
			SetRequestBytes(e.GetRequestBytes()).SetResponseBytes(e.GetResponseBytes()).SetError(bound.String(e.GetError(), 1024)))
	}
	for start := 0; start < len(builders); start += 500 {
		end := min(start+500, len(builders))
		err := s.db.CallEvent.CreateBulk(builders[start:end]...).
			OnConflict(sql.ConflictColumns(callevent.FieldID)).DoNothing().Exec(ctx)
		if err != nil {
			return start, fmt.Errorf("storing call events: %w", err)
		}
		metrics.EventsIngested.Add(float64(end - start))
	}
	return len(builders), nil
}
