// Package metrics holds the control plane's Prometheus metrics. No label
// carries a tenant or any user input.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/changerequest"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

var (
	// PolicyCompiles counts new policy versions.
	PolicyCompiles = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_policy_versions_compiled_total", Help: "Policy bundles compiled (new versions only).",
	})
	// EventsIngested counts call events stored.
	EventsIngested = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_telemetry_events_ingested_total", Help: "Call events received from gateways and stored.",
	})
	// EventsDropped counts events gateways reported as dropped.
	EventsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_telemetry_events_dropped_total", Help: "Call events gateways dropped before shipping (their queue was full).",
	})
)

// Handler serves /metrics; gauges that need the database are read at scrape time.
func Handler(db *ent.Client) http.Handler {
	count := func(q func(ctx context.Context) (int, error)) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(viewer.System(context.Background()), 5*time.Second) // an operator's view across tenants
			defer cancel()
			n, err := q(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(PolicyCompiles, EventsIngested, EventsDropped, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_agents_connected", Help: "Gateway agents with an open Sync stream (-1: database error)."},
			count(func(ctx context.Context) (int, error) {
				// Loaded, not counted in SQL: with Redis, presence overrides
				// the stored flag in an ent interceptor that a COUNT bypasses.
				agents, err := db.Agent.Query().Select(agent.FieldID, agent.FieldConnected, agent.FieldLastSeen).All(ctx)
				n := 0
				for _, a := range agents {
					if a.Connected {
						n++
					}
				}
				return n, err
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_change_requests_pending", Help: "Change requests awaiting a decision (-1: database error)."},
			count(func(ctx context.Context) (int, error) {
				return db.ChangeRequest.Query().Where(changerequest.StatusEQ(changerequest.StatusPending)).Count(ctx)
			})),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
