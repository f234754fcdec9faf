package adminapi

import (
	"context"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
)

// ConnectionToProto converts a connection.
func ConnectionToProto(c *ent.Connection) *adminv1.Connection {
	return &adminv1.Connection{Id: c.ID.String(), GatewayId: c.GatewayID.String(), Upstream: c.Upstream, Principal: c.Principal,
		UpstreamIdentity: c.UpstreamIdentity, ConnectedAt: ts(c.ConnectedAt), State: c.State.String(), ChangedAt: ts(c.ChangedAt)}
}

// ListConnections implements adminv1connect.ConnectionServiceHandler.
func (s *Server) ListConnections(ctx context.Context, req *connect.Request[adminv1.ListConnectionsRequest]) (*connect.Response[adminv1.ListConnectionsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	gid := uuid.Nil
	if g := req.Msg.GetGatewayId(); g != "" {
		if gid, err = parseID(g, "gateway_id"); err != nil {
			return nil, err
		}
	}
	cs, err := s.cfg.Access.Connections(ctx, tid, gid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListConnectionsResponse{}
	for _, c := range cs {
		out.Connections = append(out.Connections, ConnectionToProto(c))
	}
	return connect.NewResponse(out), nil
}

// RevokeConnection implements adminv1connect.ConnectionServiceHandler.
func (s *Server) RevokeConnection(ctx context.Context, req *connect.Request[adminv1.RevokeConnectionRequest]) (*connect.Response[adminv1.RevokeConnectionResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	c, err := s.cfg.Access.RevokeConnection(ctx, tid, id)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.RevokeConnectionResponse{Connection: ConnectionToProto(c)}), nil
}
