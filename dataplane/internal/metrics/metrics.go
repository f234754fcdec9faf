// Package metrics holds the gateway's Prometheus metrics. Labels are bounded
// by the bundle (virtual servers, upstreams), never by client input.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var (
	// Calls counts tools/call by outcome.
	Calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_gateway_tool_calls_total",
		Help: "tools/call requests by virtual server, upstream and decision (allow, deny).",
	}, []string{"virtual_server", "upstream", "decision"})
	// RawCalls counts the tools/calls relayed as raw JSON-RPC (the fast path).
	RawCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_gateway_tool_calls_raw_total",
		Help: "tools/call requests relayed as raw JSON-RPC on the client's own upstream session (the fast path), by upstream.",
	}, []string{"upstream"})
	// UpstreamSeconds is the time upstreams take to answer tools/call.
	UpstreamSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "portcullis_gateway_upstream_call_seconds",
		Help:    "Time an upstream took to answer a forwarded tools/call.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"upstream"})
)

// CertRenewalFailures counts failed renewals of the agent certificate.
var CertRenewalFailures = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "portcullis_gateway_certificate_renewal_failures_total",
	Help: "Failed renewals of the gateway's client certificate for the control plane (it renews two thirds into its lifetime).",
})

// State is read at scrape time.
type State struct {
	PolicyVersion func() uint64
	Connected     func() bool
	QueueDepth    func() int
	// CertExpiry is when the client certificate for the control plane expires.
	CertExpiry func() time.Time
}

// Handler serves /metrics with the gateway's metrics, Go runtime and process metrics.
func Handler(s State) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Calls, RawCalls, UpstreamSeconds, CertRenewalFailures, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_gateway_policy_version", Help: "Version of the policy bundle being enforced (0: none)."},
			func() float64 { return float64(s.PolicyVersion()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_gateway_control_plane_connected", Help: "1 while the policy sync stream is up."},
			func() float64 {
				if s.Connected() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_gateway_telemetry_queue_depth", Help: "Call events waiting to be shipped."},
			func() float64 { return float64(s.QueueDepth()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_gateway_certificate_expiry_timestamp_seconds", Help: "When the client certificate for the control plane expires (Unix time; 0 before enrollment)."},
			func() float64 {
				if t := s.CertExpiry(); !t.IsZero() {
					return float64(t.Unix())
				}
				return 0
			}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
