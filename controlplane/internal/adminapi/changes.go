package adminapi

import (
	"context"

	"connectrpc.com/connect"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/change"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
)

// ChangeRequestToProto converts a change request summary.
func ChangeRequestToProto(sm change.Summary) *adminv1.ChangeRequest {
	cr := sm.ChangeRequest
	out := &adminv1.ChangeRequest{
		Id: cr.ID.String(), ToolId: cr.ToolID.String(), Tool: sm.ToolName, Upstream: sm.UpstreamName,
		GatewayId: cr.GatewayID.String(), Gateway: sm.GatewayName, Kind: cr.Kind.String(), Status: cr.Status.String(),
		FromSha256: cr.FromSha256, ToSha256: cr.ToSha256, RequestedBy: cr.RequestedBy, Comment: cr.Comment,
		ApprovalsRequired: int32(cr.ApprovalsRequired), Approvals: int32(sm.Approvals), Findings: int32(sm.Findings),
		CreatedAt: ts(cr.CreatedAt), DecidedAt: tsp(cr.DecidedAt), DecidedBy: cr.DecidedBy, PolicyVersion: cr.PolicyVersion,
		ItemKind: sm.ToolKind,
	}
	if cr.SupersededBy != nil {
		out.SupersededBy = cr.SupersededBy.String()
	}
	return out
}

func findingsToProto(fs []schematype.Finding) []*adminv1.Finding {
	out := make([]*adminv1.Finding, len(fs))
	for i, f := range fs {
		out[i] = &adminv1.Finding{Kind: f.Kind, Severity: f.Severity, Path: f.Path, Excerpt: f.Excerpt}
	}
	return out
}

// ListChangeRequests implements adminv1connect.ChangeServiceHandler.
func (s *Server) ListChangeRequests(ctx context.Context, req *connect.Request[adminv1.ListChangeRequestsRequest]) (*connect.Response[adminv1.ListChangeRequestsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	crs, err := s.cfg.Changes.List(ctx, tid, req.Msg.GetStatus(), 0)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListChangeRequestsResponse{}
	for _, cr := range crs {
		out.ChangeRequests = append(out.ChangeRequests, ChangeRequestToProto(cr))
	}
	return connect.NewResponse(out), nil
}

// GetChangeRequest implements adminv1connect.ChangeServiceHandler.
func (s *Server) GetChangeRequest(ctx context.Context, req *connect.Request[adminv1.GetChangeRequestRequest]) (*connect.Response[adminv1.GetChangeRequestResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	d, err := s.cfg.Changes.Get(ctx, tid, id)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.GetChangeRequestResponse{
		ChangeRequest: ChangeRequestToProto(d.Summary), FromDefinition: string(d.From), ToDefinition: string(d.To),
		Findings: findingsToProto(d.Findings), FromFindings: findingsToProto(d.FromFindings),
	}
	for _, l := range d.Diff {
		out.Diff = append(out.Diff, &adminv1.DiffLine{Op: l.Op, Left: l.Left, Right: l.Right, LeftNo: int32(l.LeftNo), RightNo: int32(l.RightNo)})
	}
	for _, a := range d.Decisions {
		out.Decisions = append(out.Decisions, &adminv1.Decision{Decision: a.Decision.String(), Actor: a.Actor, Comment: a.Comment, At: ts(a.CreatedAt)})
	}
	for _, a := range d.Agents {
		out.Agents = append(out.Agents, &adminv1.AgentProgress{AgentId: a.ID.String(), Hostname: a.Hostname, Connected: a.Connected,
			AppliedVersion: a.AppliedVersion, AppliedAt: tsp(a.AppliedAt)})
	}
	return connect.NewResponse(out), nil
}

func (s *Server) summary(ctx context.Context, cr *ent.ChangeRequest) *adminv1.ChangeRequest {
	d, err := s.cfg.Changes.Get(ctx, cr.TenantID, cr.ID)
	if err != nil {
		return ChangeRequestToProto(change.Summary{ChangeRequest: cr})
	}
	return ChangeRequestToProto(d.Summary)
}

// ProposeChange implements adminv1connect.ChangeServiceHandler.
func (s *Server) ProposeChange(ctx context.Context, req *connect.Request[adminv1.ProposeChangeRequest]) (*connect.Response[adminv1.ProposeChangeResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetToolId(), "tool_id")
	if err != nil {
		return nil, err
	}
	cr, err := s.cfg.Changes.Propose(ctx, tid, id, req.Msg.GetSha256(), req.Msg.GetComment())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.ProposeChangeResponse{ChangeRequest: s.summary(ctx, cr)}), nil
}

// ApproveChange implements adminv1connect.ChangeServiceHandler.
func (s *Server) ApproveChange(ctx context.Context, req *connect.Request[adminv1.ApproveChangeRequest]) (*connect.Response[adminv1.ApproveChangeResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	d, err := s.cfg.Changes.Approve(ctx, tid, id, req.Msg.GetComment())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.ApproveChangeResponse{ChangeRequest: s.summary(ctx, d.Request), Applied: d.Applied}), nil
}

// RejectChange implements adminv1connect.ChangeServiceHandler.
func (s *Server) RejectChange(ctx context.Context, req *connect.Request[adminv1.RejectChangeRequest]) (*connect.Response[adminv1.RejectChangeResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	d, err := s.cfg.Changes.Reject(ctx, tid, id, req.Msg.GetComment())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.RejectChangeResponse{ChangeRequest: s.summary(ctx, d.Request)}), nil
}

// GetApprovalPolicy implements adminv1connect.ChangeServiceHandler.
func (s *Server) GetApprovalPolicy(ctx context.Context, _ *connect.Request[adminv1.GetApprovalPolicyRequest]) (*connect.Response[adminv1.GetApprovalPolicyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.cfg.Changes.ApprovalsRequired(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.GetApprovalPolicyResponse{ApprovalsRequired: int32(n)}), nil
}

// SetApprovalPolicy implements adminv1connect.ChangeServiceHandler.
func (s *Server) SetApprovalPolicy(ctx context.Context, req *connect.Request[adminv1.SetApprovalPolicyRequest]) (*connect.Response[adminv1.SetApprovalPolicyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Changes.SetApprovalsRequired(ctx, tid, int(req.Msg.GetApprovalsRequired())); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.SetApprovalPolicyResponse{}), nil
}

// ExportPins implements adminv1connect.ChangeServiceHandler.
func (s *Server) ExportPins(ctx context.Context, _ *connect.Request[adminv1.ExportPinsRequest]) (*connect.Response[adminv1.ExportPinsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.cfg.Changes.ExportPins(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.ExportPinsResponse{Manifest: m}), nil
}

// ImportPins implements adminv1connect.ChangeServiceHandler.
func (s *Server) ImportPins(ctx context.Context, req *connect.Request[adminv1.ImportPinsRequest]) (*connect.Response[adminv1.ImportPinsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.Changes.ImportPins(ctx, tid, req.Msg.GetManifest())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.ImportPinsResponse{Pinned: int32(res.Pinned), Unpinned: int32(res.Unpinned), Unchanged: int32(res.Unchanged)}), nil
}

// --- PolicyService

var resultActionNames = map[adminv1.ResultAction]string{
	adminv1.ResultAction_RESULT_ACTION_ANNOTATE: "annotate",
	adminv1.ResultAction_RESULT_ACTION_REDACT:   "redact",
	adminv1.ResultAction_RESULT_ACTION_BLOCK:    "block",
}

// GetResultScanning implements adminv1connect.PolicyServiceHandler.
func (s *Server) GetResultScanning(ctx context.Context, _ *connect.Request[adminv1.GetResultScanningRequest]) (*connect.Response[adminv1.GetResultScanningResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.cfg.Tenants.ResultAction(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.GetResultScanningResponse{}
	for k, v := range resultActionNames {
		if v == a.String() {
			out.Action = k
		}
	}
	return connect.NewResponse(out), nil
}

// SetResultScanning implements adminv1connect.PolicyServiceHandler.
func (s *Server) SetResultScanning(ctx context.Context, req *connect.Request[adminv1.SetResultScanningRequest]) (*connect.Response[adminv1.SetResultScanningResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	name, ok := resultActionNames[req.Msg.GetAction()]
	if !ok {
		name = req.Msg.GetAction().String() // refused below with a clear message
	}
	if err := s.cfg.Tenants.SetResultAction(ctx, tid, name); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.SetResultScanningResponse{}), nil
}
