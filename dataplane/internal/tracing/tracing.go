// Package tracing sets up OpenTelemetry for the gateway: W3C trace context is
// taken from MCP clients' requests and passed on to upstreams, and spans are
// exported over OTLP/HTTP when an endpoint is configured.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// recording is set once Setup installs an exporting tracer provider.
var recording atomic.Bool

// Setup installs the global propagator and tracer provider; endpoint is an
// OTLP/HTTP URL such as http://otel-collector:4318 ("" records no spans but
// still propagates trace context). The returned func flushes and stops.
func Setup(ctx context.Context, endpoint, version string) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if endpoint == "" {
		// The default no-op tracer still carries the client's span context
		// through to the upstream request, without recording spans.
		return func(context.Context) error { return nil }, nil
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL,
			semconv.ServiceName("portcullis-gateway"), semconv.ServiceVersion(version))),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	opts = append(opts, sdktrace.WithBatcher(exp))
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	recording.Store(true)
	return tp.Shutdown, nil
}

// Handler wraps an inbound handler. When spans are exported it is otelhttp;
// otherwise it only takes the client's trace context from the headers, which
// costs a header lookup instead of a (no-op) span, response-writer wrapping
// and metric instruments on every request.
func Handler(h http.Handler, operation string, opts ...otelhttp.Option) http.Handler {
	instrumented := otelhttp.NewHandler(h, operation, opts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case recording.Load():
			instrumented.ServeHTTP(w, r)
		case r.Header.Get("traceparent") != "" || r.Header.Get("baggage") != "":
			h.ServeHTTP(w, r.WithContext(otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))))
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// Transport wraps an outbound transport: otelhttp when spans are exported;
// otherwise it passes the caller's trace context on, as otelhttp with a
// no-op tracer would, and nothing else.
func Transport(base http.RoundTripper) http.RoundTripper {
	return transport{base: base, instrumented: otelhttp.NewTransport(base)}
}

type transport struct{ base, instrumented http.RoundTripper }

func (t transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if recording.Load() {
		return t.instrumented.RoundTrip(r)
	}
	if !trace.SpanContextFromContext(r.Context()).IsValid() && baggage.FromContext(r.Context()).Len() == 0 {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	otel.GetTextMapPropagator().Inject(r.Context(), propagation.HeaderCarrier(r.Header))
	return t.base.RoundTrip(r)
}
