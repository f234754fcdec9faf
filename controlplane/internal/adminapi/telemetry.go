package adminapi

import (
	"context"
	"time"

	"connectrpc.com/connect"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
)

// ListCallEvents implements adminv1connect.TelemetryServiceHandler.
func (s *Server) ListCallEvents(ctx context.Context, req *connect.Request[adminv1.ListCallEventsRequest]) (*connect.Response[adminv1.ListCallEventsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	evs, err := s.cfg.Telemetry.Events(ctx, tid, telemetry.Filter{Decision: m.GetDecision(), Tool: m.GetTool(), Principal: m.GetPrincipal(),
		Upstream: m.GetUpstream(), Limit: int(m.GetLimit())})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListCallEventsResponse{}
	for _, e := range evs {
		out.Events = append(out.Events, &adminv1.CallEvent{Id: e.ID, Time: ts(e.Time), GatewayId: e.GatewayID.String(), Principal: e.Principal,
			VirtualServer: e.VirtualServer, Upstream: e.Upstream, Method: e.Method, Tool: e.Tool, Decision: e.Decision.String(),
			Reason: e.Reason, LatencyMicros: e.LatencyMicros, Error: e.Error, UpstreamIdentity: e.UpstreamIdentity})
	}
	return connect.NewResponse(out), nil
}

// GetTraffic implements adminv1connect.TelemetryServiceHandler.
func (s *Server) GetTraffic(ctx context.Context, req *connect.Request[adminv1.GetTrafficRequest]) (*connect.Response[adminv1.GetTrafficResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	until, since := time.Now(), time.Now().Add(-59*time.Minute)
	if req.Msg.GetUntil().IsValid() {
		until = req.Msg.GetUntil().AsTime()
	}
	if req.Msg.GetSince().IsValid() {
		since = req.Msg.GetSince().AsTime()
	}
	points, err := s.cfg.Telemetry.Series(ctx, tid, since, until)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.GetTrafficResponse{}
	for _, p := range points {
		out.Points = append(out.Points, &adminv1.TrafficPoint{Minute: ts(p.Minute), Calls: p.Calls, Denies: p.Denies, Errors: p.Errors, P95Micros: p.P95Micros})
	}
	return connect.NewResponse(out), nil
}
