package adminapi

import (
	"context"

	"connectrpc.com/connect"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/access"
	"github.com/portcullis-mcp/portcullis/ent"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
)

func clientKeyToProto(k *ent.ClientKey) *adminv1.ClientKey {
	return &adminv1.ClientKey{Id: k.ID.String(), Name: k.Name, Groups: k.Groups, CreatedAt: ts(k.CreatedAt), Revoked: k.RevokedAt != nil}
}

// AccessRuleToProto converts a rule.
func AccessRuleToProto(r *ent.AccessRule) *adminv1.AccessRule {
	return &adminv1.AccessRule{Id: r.ID.String(), GatewayId: r.GatewayID.String(), Principal: r.Principal, VirtualServer: r.VirtualServer,
		ToolPattern: r.ToolPattern, Effect: r.Effect.String(), Condition: r.Condition, Description: r.Description, Position: int32(r.Position)}
}

// ListClientKeys implements adminv1connect.PolicyServiceHandler.
func (s *Server) ListClientKeys(ctx context.Context, _ *connect.Request[adminv1.ListClientKeysRequest]) (*connect.Response[adminv1.ListClientKeysResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	ks, err := s.cfg.Access.ClientKeys(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListClientKeysResponse{}
	for _, k := range ks {
		out.Keys = append(out.Keys, clientKeyToProto(k))
	}
	return connect.NewResponse(out), nil
}

// CreateClientKey implements adminv1connect.PolicyServiceHandler.
func (s *Server) CreateClientKey(ctx context.Context, req *connect.Request[adminv1.CreateClientKeyRequest]) (*connect.Response[adminv1.CreateClientKeyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	secret, k, err := s.cfg.Access.CreateClientKey(ctx, tid, req.Msg.GetName(), req.Msg.GetGroups())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.CreateClientKeyResponse{Key: clientKeyToProto(k), Secret: secret}), nil
}

// RevokeClientKey implements adminv1connect.PolicyServiceHandler.
func (s *Server) RevokeClientKey(ctx context.Context, req *connect.Request[adminv1.RevokeClientKeyRequest]) (*connect.Response[adminv1.RevokeClientKeyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Access.RevokeClientKey(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.RevokeClientKeyResponse{}), nil
}

// SetClientAuth implements adminv1connect.PolicyServiceHandler.
func (s *Server) SetClientAuth(ctx context.Context, req *connect.Request[adminv1.SetClientAuthRequest]) (*connect.Response[adminv1.SetClientAuthResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetGatewayId(), "gateway_id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Access.SetClientAuth(ctx, tid, id, req.Msg.GetRequired()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.SetClientAuthResponse{}), nil
}

// ListAccessRules implements adminv1connect.PolicyServiceHandler.
func (s *Server) ListAccessRules(ctx context.Context, req *connect.Request[adminv1.ListAccessRulesRequest]) (*connect.Response[adminv1.ListAccessRulesResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetGatewayId(), "gateway_id")
	if err != nil {
		return nil, err
	}
	rs, err := s.cfg.Access.Rules(ctx, tid, id)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListAccessRulesResponse{}
	for _, r := range rs {
		out.Rules = append(out.Rules, AccessRuleToProto(r))
	}
	return connect.NewResponse(out), nil
}

// CreateAccessRule implements adminv1connect.PolicyServiceHandler.
func (s *Server) CreateAccessRule(ctx context.Context, req *connect.Request[adminv1.CreateAccessRuleRequest]) (*connect.Response[adminv1.CreateAccessRuleResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	r := req.Msg.GetRule()
	id, err := parseID(r.GetGatewayId(), "rule.gateway_id")
	if err != nil {
		return nil, err
	}
	out, err := s.cfg.Access.CreateRule(ctx, tid, id, access.Rule{Principal: r.GetPrincipal(), VirtualServer: r.GetVirtualServer(),
		ToolPattern: r.GetToolPattern(), Effect: r.GetEffect(), Condition: r.GetCondition(), Description: r.GetDescription()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.CreateAccessRuleResponse{Rule: AccessRuleToProto(out)}), nil
}

// DeleteAccessRule implements adminv1connect.PolicyServiceHandler.
func (s *Server) DeleteAccessRule(ctx context.Context, req *connect.Request[adminv1.DeleteAccessRuleRequest]) (*connect.Response[adminv1.DeleteAccessRuleResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Access.DeleteRule(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.DeleteAccessRuleResponse{}), nil
}

// SetRateLimits implements adminv1connect.PolicyServiceHandler.
func (s *Server) SetRateLimits(ctx context.Context, req *connect.Request[adminv1.SetRateLimitsRequest]) (*connect.Response[adminv1.SetRateLimitsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetGatewayId(), "gateway_id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Access.SetRateLimits(ctx, tid, id, int(min(req.Msg.GetPrincipalPerMinute(), maxRate+1)), int(min(req.Msg.GetToolPerMinute(), maxRate+1))); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.SetRateLimitsResponse{}), nil
}

// maxRate caps what is passed on, so a huge uint32 is refused rather than wrapped.
const maxRate = 1000000

// GetClientIdentityProvider implements adminv1connect.PolicyServiceHandler.
func (s *Server) GetClientIdentityProvider(ctx context.Context, _ *connect.Request[adminv1.GetClientIdentityProviderRequest]) (*connect.Response[adminv1.GetClientIdentityProviderResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	iss, claim, err := s.cfg.Access.ClientIdentityProvider(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.GetClientIdentityProviderResponse{Issuer: iss, GroupClaim: claim}), nil
}

// SetClientIdentityProvider implements adminv1connect.PolicyServiceHandler.
func (s *Server) SetClientIdentityProvider(ctx context.Context, req *connect.Request[adminv1.SetClientIdentityProviderRequest]) (*connect.Response[adminv1.SetClientIdentityProviderResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Access.SetClientIdentityProvider(ctx, tid, req.Msg.GetIssuer(), req.Msg.GetGroupClaim()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.SetClientIdentityProviderResponse{}), nil
}
