package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/access"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/catalog"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/change"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/inventory"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
	"github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1/adminv1connect"
)

// Config wires the API to the domain services.
type Config struct {
	DB        *ent.Client
	IDs       *identity.Service
	Tenants   *tenant.Service
	Inventory *inventory.Service
	Changes   *change.Service
	Access    *access.Service
	Telemetry *telemetry.Service
	Catalog   *catalog.Service
	// EnrollmentToken formats a gateway enrollment token; AgentEndpoint is
	// the address agents dial.
	EnrollmentToken func(ctx context.Context, tenantID, gatewayID uuid.UUID, ttl time.Duration, uses int) (string, error)
	AgentEndpoint   string
	Logger          *slog.Logger
}

// Server implements every admin service.
type Server struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil || cfg.IDs == nil || cfg.Tenants == nil || cfg.Inventory == nil || cfg.Changes == nil || cfg.Access == nil || cfg.Telemetry == nil ||
		cfg.Catalog == nil || cfg.EnrollmentToken == nil {
		return nil, errors.New("adminapi.New: DB, IDs, Tenants, Inventory, Changes, Access, Telemetry, Catalog and EnrollmentToken are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "adminapi")}, nil
}

// Mount registers every service on mux.
func (s *Server) Mount(mux *http.ServeMux) {
	auth := &Authenticator{IDs: s.cfg.IDs}
	opts := []connect.HandlerOption{connect.WithInterceptors(auth.Interceptor()), connect.WithReadMaxBytes(change.MaxManifestBytes + 1<<16)}
	for _, h := range []func() (string, http.Handler){
		func() (string, http.Handler) { return adminv1connect.NewTenantServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewMemberServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewGatewayServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewUpstreamServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewVirtualServerServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewToolServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewAPIKeyServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewAuditServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewChangeServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewPolicyServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewTelemetryServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewCatalogServiceHandler(s, opts...) },
		func() (string, http.Handler) { return adminv1connect.NewConnectionServiceHandler(s, opts...) },
	} {
		path, handler := h()
		mux.Handle(path, handler)
	}
}

// fail maps err for the caller and logs what the caller will not see.
func (s *Server) fail(ctx context.Context, err error) error {
	ce := toConnect(err)
	if connect.CodeOf(ce) == connect.CodeInternal {
		s.log.ErrorContext(ctx, "admin API call failed", "err", err)
	}
	return ce
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tsp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func roleToProto(r viewer.Role) adminv1.Role { return adminv1.Role(r) }

func roleFromProto(r adminv1.Role) viewer.Role {
	if r < adminv1.Role_ROLE_VIEWER || r > adminv1.Role_ROLE_OWNER {
		return viewer.RoleNone
	}
	return viewer.Role(r)
}

func roleName(s string) adminv1.Role {
	r, _ := viewer.ParseRole(s)
	return roleToProto(r)
}

// --- TenantService

// ListTenants implements adminv1connect.TenantServiceHandler.
func (s *Server) ListTenants(ctx context.Context, _ *connect.Request[adminv1.ListTenantsRequest]) (*connect.Response[adminv1.ListTenantsResponse], error) {
	p := principalFrom(ctx)
	out := &adminv1.ListTenantsResponse{}
	if p.apiKey {
		t, err := s.cfg.Tenants.Tenant(ctx, p.viewer.TenantID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out.Tenants = append(out.Tenants, &adminv1.Tenant{Id: t.ID.String(), Slug: t.Slug, Name: t.Name, Role: roleToProto(p.viewer.Role)})
		return connect.NewResponse(out), nil
	}
	ms, err := s.cfg.IDs.Memberships(ctx, p.userID)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	for _, m := range ms {
		out.Tenants = append(out.Tenants, &adminv1.Tenant{Id: m.TenantID.String(), Slug: m.Slug, Name: m.Name, Role: roleToProto(m.Role)})
	}
	return connect.NewResponse(out), nil
}

// CreateTenant implements adminv1connect.TenantServiceHandler.
func (s *Server) CreateTenant(ctx context.Context, req *connect.Request[adminv1.CreateTenantRequest]) (*connect.Response[adminv1.CreateTenantResponse], error) {
	p := principalFrom(ctx)
	owner := p.userID
	if p.apiKey {
		if p.viewer.Role < viewer.RoleOwner {
			return nil, connect.NewError(connect.CodePermissionDenied, errors.New("creating a tenant with an API key needs an owner key"))
		}
		k, err := s.cfg.DB.APIKey.Get(ctx, p.viewer.APIKeyID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		owner = k.CreatedBy
	}
	if owner == uuid.Nil {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("this credential does not belong to a person who could own the tenant"))
	}
	if _, ok := viewer.FromContext(ctx); !ok { // a session with no tenant chosen: still name the actor
		u, err := s.cfg.IDs.User(ctx, owner)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		ctx = viewer.NewContext(ctx, viewer.Viewer{UserID: owner, Actor: "user:" + u.Email})
	}
	t, err := s.cfg.Tenants.CreateTenant(ctx, req.Msg.GetName(), req.Msg.GetSlug(), owner)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.CreateTenantResponse{Tenant: &adminv1.Tenant{Id: t.ID.String(), Slug: t.Slug, Name: t.Name, Role: adminv1.Role_ROLE_OWNER}}), nil
}

// --- MemberService

// ListMembers implements adminv1connect.MemberServiceHandler.
func (s *Server) ListMembers(ctx context.Context, _ *connect.Request[adminv1.ListMembersRequest]) (*connect.Response[adminv1.ListMembersResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := s.cfg.IDs.Members(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListMembersResponse{}
	for _, m := range ms {
		out.Members = append(out.Members, memberToProto(m))
	}
	return connect.NewResponse(out), nil
}

func memberToProto(m identity.Member) *adminv1.Member {
	return &adminv1.Member{Id: m.ID.String(), Email: m.Email, Name: m.Name, Role: roleName(m.Role), Pending: m.Pending, Since: ts(m.Since)}
}

// InviteMember implements adminv1connect.MemberServiceHandler.
func (s *Server) InviteMember(ctx context.Context, req *connect.Request[adminv1.InviteMemberRequest]) (*connect.Response[adminv1.InviteMemberResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	inv, err := s.cfg.IDs.Invite(ctx, tid, req.Msg.GetEmail(), roleFromProto(req.Msg.GetRole()))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.InviteMemberResponse{Member: memberToProto(identity.Member{
		ID: inv.ID, Email: inv.Email, Role: inv.Role.String(), Pending: true, Since: inv.CreatedAt})}), nil
}

// SetMemberRole implements adminv1connect.MemberServiceHandler.
func (s *Server) SetMemberRole(ctx context.Context, req *connect.Request[adminv1.SetMemberRoleRequest]) (*connect.Response[adminv1.SetMemberRoleResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetMemberId(), "member_id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.IDs.SetRole(ctx, tid, id, roleFromProto(req.Msg.GetRole())); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.SetMemberRoleResponse{}), nil
}

// RemoveMember implements adminv1connect.MemberServiceHandler.
func (s *Server) RemoveMember(ctx context.Context, req *connect.Request[adminv1.RemoveMemberRequest]) (*connect.Response[adminv1.RemoveMemberResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetMemberId(), "member_id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.IDs.RemoveMember(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.RemoveMemberResponse{}), nil
}

func signingKeyToProto(st tenant.SigningKeyState) *adminv1.SigningKey {
	return &adminv1.SigningKey{KeyId: st.KeyID, NextKeyId: st.NextKeyID, PendingAgents: st.Pending}
}

// GetSigningKey implements adminv1connect.TenantServiceHandler.
func (s *Server) GetSigningKey(ctx context.Context, _ *connect.Request[adminv1.GetSigningKeyRequest]) (*connect.Response[adminv1.GetSigningKeyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.cfg.Tenants.SigningKey(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.GetSigningKeyResponse{Key: signingKeyToProto(st)}), nil
}

// RotateSigningKey implements adminv1connect.TenantServiceHandler.
func (s *Server) RotateSigningKey(ctx context.Context, req *connect.Request[adminv1.RotateSigningKeyRequest]) (*connect.Response[adminv1.RotateSigningKeyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.cfg.Tenants.RotateSigningKey(ctx, tid, req.Msg.GetAction(), req.Msg.GetForce())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.RotateSigningKeyResponse{Key: signingKeyToProto(st)}), nil
}

// --- GatewayService

// GatewayToProto maps a gateway loaded with its agents.
func GatewayToProto(g *ent.Gateway, policyVersion uint64) *adminv1.Gateway {
	out := &adminv1.Gateway{Id: g.ID.String(), Name: g.Name, CreatedAt: ts(g.CreatedAt), PolicyVersion: policyVersion}
	for _, a := range g.Edges.Agents {
		out.Agents = append(out.Agents, &adminv1.Agent{Id: a.ID.String(), Hostname: a.Hostname, Version: a.Version,
			Connected: a.Connected, LastSeen: tsp(a.LastSeen), AppliedVersion: a.AppliedVersion, LastNack: a.LastNack,
			Revoked: a.Revoked, CertExpiresAt: tsp(a.CertExpiresAt)})
	}
	return out
}

// ListGateways implements adminv1connect.GatewayServiceHandler.
func (s *Server) ListGateways(ctx context.Context, _ *connect.Request[adminv1.ListGatewaysRequest]) (*connect.Response[adminv1.ListGatewaysResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	gs, err := s.cfg.Tenants.Gateways(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListGatewaysResponse{}
	for _, g := range gs {
		v, err := s.cfg.Tenants.PolicyVersion(ctx, tid, g.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out.Gateways = append(out.Gateways, GatewayToProto(g, v))
	}
	return connect.NewResponse(out), nil
}

// GetGateway implements adminv1connect.GatewayServiceHandler.
func (s *Server) GetGateway(ctx context.Context, req *connect.Request[adminv1.GetGatewayRequest]) (*connect.Response[adminv1.GetGatewayResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetGatewayId(), "gateway_id")
	if err != nil {
		return nil, err
	}
	g, err := s.cfg.Tenants.Gateway(ctx, tid, id)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	v, err := s.cfg.Tenants.PolicyVersion(ctx, tid, g.ID)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.GetGatewayResponse{Gateway: GatewayToProto(g, v)}), nil
}

// CreateGateway implements adminv1connect.GatewayServiceHandler.
func (s *Server) CreateGateway(ctx context.Context, req *connect.Request[adminv1.CreateGatewayRequest]) (*connect.Response[adminv1.CreateGatewayResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	g, err := s.cfg.Tenants.CreateGateway(ctx, tid, req.Msg.GetName())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.CreateGatewayResponse{Gateway: GatewayToProto(g, 0)}), nil
}

// CreateEnrollmentToken implements adminv1connect.GatewayServiceHandler.
func (s *Server) CreateEnrollmentToken(ctx context.Context, req *connect.Request[adminv1.CreateEnrollmentTokenRequest]) (*connect.Response[adminv1.CreateEnrollmentTokenResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetGatewayId(), "gateway_id")
	if err != nil {
		return nil, err
	}
	ttl := time.Duration(req.Msg.GetTtlSeconds()) * time.Second
	if ttl == 0 {
		ttl = time.Hour
	}
	uses := int(req.Msg.GetMaxUses())
	if uses == 0 {
		uses = 1
	}
	tok, err := s.cfg.EnrollmentToken(ctx, tid, id, ttl, uses)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.CreateEnrollmentTokenResponse{Token: tok, ExpiresAt: ts(time.Now().Add(ttl)), ControlPlane: s.cfg.AgentEndpoint}), nil
}

// UpdateGateway implements adminv1connect.GatewayServiceHandler.
func (s *Server) UpdateGateway(ctx context.Context, req *connect.Request[adminv1.UpdateGatewayRequest]) (*connect.Response[adminv1.UpdateGatewayResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetGatewayId(), "gateway_id")
	if err != nil {
		return nil, err
	}
	if _, err := s.cfg.Tenants.RenameGateway(ctx, tid, id, req.Msg.GetName()); err != nil {
		return nil, s.fail(ctx, err)
	}
	got, err := s.GetGateway(ctx, connect.NewRequest(&adminv1.GetGatewayRequest{GatewayId: id.String()}))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&adminv1.UpdateGatewayResponse{Gateway: got.Msg.GetGateway()}), nil
}

// DeleteGateway implements adminv1connect.GatewayServiceHandler.
func (s *Server) DeleteGateway(ctx context.Context, req *connect.Request[adminv1.DeleteGatewayRequest]) (*connect.Response[adminv1.DeleteGatewayResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetGatewayId(), "gateway_id")
	if err != nil {
		return nil, err
	}
	n, err := s.cfg.Tenants.DeleteGateway(ctx, tid, id, req.Msg.GetForce())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.DeleteGatewayResponse{DisconnectedAgents: int32(n)}), nil //nolint:gosec // bounded by the agents of one gateway
}

// ListEnrollmentTokens implements adminv1connect.GatewayServiceHandler.
func (s *Server) ListEnrollmentTokens(ctx context.Context, req *connect.Request[adminv1.ListEnrollmentTokensRequest]) (*connect.Response[adminv1.ListEnrollmentTokensResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetGatewayId(), "gateway_id")
	if err != nil {
		return nil, err
	}
	toks, err := s.cfg.Tenants.EnrollmentTokens(ctx, tid, id)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListEnrollmentTokensResponse{}
	now := time.Now()
	for _, t := range toks {
		out.Tokens = append(out.Tokens, &adminv1.EnrollmentToken{Id: t.ID.String(), GatewayId: t.GatewayID.String(),
			CreatedAt: ts(t.CreatedAt), ExpiresAt: ts(t.ExpiresAt), MaxUses: int32(t.MaxUses), Uses: int32(t.Uses), //nolint:gosec // at most tenant.MaxEnrollmentUses
			UsedAt: tsp(t.UsedAt), Usable: t.Uses < t.MaxUses && now.Before(t.ExpiresAt)})
	}
	return connect.NewResponse(out), nil
}

// RevokeEnrollmentToken implements adminv1connect.GatewayServiceHandler.
func (s *Server) RevokeEnrollmentToken(ctx context.Context, req *connect.Request[adminv1.RevokeEnrollmentTokenRequest]) (*connect.Response[adminv1.RevokeEnrollmentTokenResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Tenants.RevokeEnrollmentToken(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.RevokeEnrollmentTokenResponse{}), nil
}

// RevokeAgent implements adminv1connect.GatewayServiceHandler.
func (s *Server) RevokeAgent(ctx context.Context, req *connect.Request[adminv1.RevokeAgentRequest]) (*connect.Response[adminv1.RevokeAgentResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetAgentId(), "agent_id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Tenants.RevokeAgent(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.RevokeAgentResponse{}), nil
}

// --- UpstreamService

// UpstreamToProto maps an upstream.
func UpstreamToProto(u *ent.Upstream) *adminv1.Upstream {
	tr := adminv1.Transport_TRANSPORT_STREAMABLE_HTTP
	switch u.Transport {
	case upstream.TransportStdio:
		tr = adminv1.Transport_TRANSPORT_STDIO
	case upstream.TransportPackage:
		tr = adminv1.Transport_TRANSPORT_PACKAGE
	}
	return &adminv1.Upstream{Id: u.ID.String(), GatewayId: u.GatewayID.String(), Name: u.Name, Transport: tr, Url: u.URL,
		Command: u.Command, Args: u.Args, Labels: u.Labels, Reachable: u.Reachable, LastError: u.LastError,
		CredentialRef: u.CredentialRef, CredentialHeader: u.CredentialHeader,
		DenySampling: u.DenySampling, DenyElicitation: u.DenyElicitation, DenyRoots: u.DenyRoots,
		PackageEcosystem: u.PackageEcosystem, PackageName: u.PackageName, PackageVersion: u.PackageVersion,
		PackageIntegrity: u.PackageIntegrity, PackageBin: u.PackageBin, CatalogEntry: u.CatalogEntry,
		AuthMode: u.AuthMode.String(), OauthClientId: u.OauthClientID, OauthClientSecretRef: u.OauthClientSecretRef,
		OauthScopes: u.OauthScopes, OauthIssuer: u.OauthIssuer, OauthResource: u.OauthResource}
}

// ListUpstreams implements adminv1connect.UpstreamServiceHandler.
func (s *Server) ListUpstreams(ctx context.Context, _ *connect.Request[adminv1.ListUpstreamsRequest]) (*connect.Response[adminv1.ListUpstreamsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	us, err := s.cfg.Tenants.Upstreams(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListUpstreamsResponse{}
	for _, u := range us {
		out.Upstreams = append(out.Upstreams, UpstreamToProto(u))
	}
	return connect.NewResponse(out), nil
}

// CreateUpstream implements adminv1connect.UpstreamServiceHandler.
func (s *Server) CreateUpstream(ctx context.Context, req *connect.Request[adminv1.CreateUpstreamRequest]) (*connect.Response[adminv1.CreateUpstreamResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	in := req.Msg.GetUpstream()
	if in == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("upstream is required"))
	}
	gid, err := parseID(in.GetGatewayId(), "upstream.gateway_id")
	if err != nil {
		return nil, err
	}
	spec, err := upstreamSpec(in)
	if err != nil {
		return nil, err
	}
	u, err := s.cfg.Tenants.CreateUpstream(ctx, tid, gid, spec)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.CreateUpstreamResponse{Upstream: UpstreamToProto(u)}), nil
}

// upstreamSpec reads an upstream's settings from the API.
func upstreamSpec(in *adminv1.Upstream) (tenant.UpstreamSpec, error) {
	spec := tenant.UpstreamSpec{Name: in.GetName(), URL: in.GetUrl(), Command: in.GetCommand(), Args: in.GetArgs(), Labels: in.GetLabels(),
		CredentialRef: in.GetCredentialRef(), CredentialHeader: in.GetCredentialHeader(),
		DenySampling: in.GetDenySampling(), DenyElicitation: in.GetDenyElicitation(), DenyRoots: in.GetDenyRoots(),
		Package: tenant.PackageSpec{Ecosystem: in.GetPackageEcosystem(), Name: in.GetPackageName(), Version: in.GetPackageVersion(),
			Integrity: in.GetPackageIntegrity(), Bin: in.GetPackageBin()}, CatalogEntry: in.GetCatalogEntry(),
		Auth: tenant.AuthSpec{Mode: in.GetAuthMode(), ClientID: in.GetOauthClientId(), ClientSecretRef: in.GetOauthClientSecretRef(),
			Scopes: in.GetOauthScopes(), Issuer: in.GetOauthIssuer(), Resource: in.GetOauthResource()}}
	if spec.CatalogEntry != "" {
		return spec, nil // the entry says how the upstream runs
	}
	switch in.GetTransport() {
	case adminv1.Transport_TRANSPORT_STREAMABLE_HTTP:
		spec.Transport = upstream.TransportStreamableHTTP.String()
	case adminv1.Transport_TRANSPORT_STDIO:
		spec.Transport = upstream.TransportStdio.String()
	case adminv1.Transport_TRANSPORT_PACKAGE:
		spec.Transport = upstream.TransportPackage.String()
	default:
		return spec, connect.NewError(connect.CodeInvalidArgument, errors.New("upstream.transport must be TRANSPORT_STREAMABLE_HTTP, TRANSPORT_STDIO or TRANSPORT_PACKAGE"))
	}
	return spec, nil
}

// UpdateUpstream implements adminv1connect.UpstreamServiceHandler.
func (s *Server) UpdateUpstream(ctx context.Context, req *connect.Request[adminv1.UpdateUpstreamRequest]) (*connect.Response[adminv1.UpdateUpstreamResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	in := req.Msg.GetUpstream()
	if in == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("upstream is required"))
	}
	id, err := parseID(in.GetId(), "upstream.id")
	if err != nil {
		return nil, err
	}
	spec, err := upstreamSpec(in)
	if err != nil {
		return nil, err
	}
	u, err := s.cfg.Tenants.UpdateUpstream(ctx, tid, id, spec)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.UpdateUpstreamResponse{Upstream: UpstreamToProto(u)}), nil
}

// DeleteUpstream implements adminv1connect.UpstreamServiceHandler.
func (s *Server) DeleteUpstream(ctx context.Context, req *connect.Request[adminv1.DeleteUpstreamRequest]) (*connect.Response[adminv1.DeleteUpstreamResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Tenants.DeleteUpstream(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.DeleteUpstreamResponse{}), nil
}

// --- VirtualServerService

// UpdateVirtualServer implements adminv1connect.VirtualServerServiceHandler.
func (s *Server) UpdateVirtualServer(ctx context.Context, req *connect.Request[adminv1.UpdateVirtualServerRequest]) (*connect.Response[adminv1.UpdateVirtualServerResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	spec := tenant.VirtualServerSpec{Upstreams: req.Msg.GetUpstreams(), Unprefixed: req.Msg.GetUnprefixed()}
	for _, r := range req.Msg.GetRenames() {
		spec.Renames = append(spec.Renames, schematype.ToolRename{Upstream: r.GetUpstream(), Tool: r.GetTool(), Name: r.GetName()})
	}
	v, err := s.cfg.Tenants.UpdateVirtualServer(ctx, tid, id, spec)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.UpdateVirtualServerResponse{VirtualServer: virtualServerToProto(v)}), nil
}

// DeleteVirtualServer implements adminv1connect.VirtualServerServiceHandler.
func (s *Server) DeleteVirtualServer(ctx context.Context, req *connect.Request[adminv1.DeleteVirtualServerRequest]) (*connect.Response[adminv1.DeleteVirtualServerResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Tenants.DeleteVirtualServer(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.DeleteVirtualServerResponse{}), nil
}

// ListVirtualServers implements adminv1connect.VirtualServerServiceHandler.
func (s *Server) ListVirtualServers(ctx context.Context, _ *connect.Request[adminv1.ListVirtualServersRequest]) (*connect.Response[adminv1.ListVirtualServersResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	vss, err := s.cfg.Tenants.VirtualServers(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListVirtualServersResponse{}
	for _, v := range vss {
		out.VirtualServers = append(out.VirtualServers, virtualServerToProto(v))
	}
	return connect.NewResponse(out), nil
}

// CreateVirtualServer implements adminv1connect.VirtualServerServiceHandler.
func (s *Server) CreateVirtualServer(ctx context.Context, req *connect.Request[adminv1.CreateVirtualServerRequest]) (*connect.Response[adminv1.CreateVirtualServerResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	gid, err := parseID(req.Msg.GetGatewayId(), "gateway_id")
	if err != nil {
		return nil, err
	}
	spec := tenant.VirtualServerSpec{Name: req.Msg.GetName(), Upstreams: req.Msg.GetUpstreams(), Unprefixed: req.Msg.GetUnprefixed()}
	for _, r := range req.Msg.GetRenames() {
		spec.Renames = append(spec.Renames, schematype.ToolRename{Upstream: r.GetUpstream(), Tool: r.GetTool(), Name: r.GetName()})
	}
	v, err := s.cfg.Tenants.CreateVirtualServerSpec(ctx, tid, gid, spec)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.CreateVirtualServerResponse{VirtualServer: virtualServerToProto(v)}), nil
}

func virtualServerToProto(v *ent.VirtualServer) *adminv1.VirtualServer {
	out := &adminv1.VirtualServer{Id: v.ID.String(), GatewayId: v.GatewayID.String(), Name: v.Name, Upstreams: v.Upstreams, Unprefixed: v.Unprefixed}
	for _, r := range v.Renames {
		out.Renames = append(out.Renames, &adminv1.ToolRename{Upstream: r.Upstream, Tool: r.Tool, Name: r.Name})
	}
	return out
}

// --- ToolService

// ListTools implements adminv1connect.ToolServiceHandler.
func (s *Server) ListTools(ctx context.Context, _ *connect.Request[adminv1.ListToolsRequest]) (*connect.Response[adminv1.ListToolsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	ts_, err := s.cfg.Tenants.Tools(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListToolsResponse{}
	for _, t := range ts_ {
		up := ""
		if t.Edges.Upstream != nil {
			up = t.Edges.Upstream.Name
		}
		out.Tools = append(out.Tools, &adminv1.Tool{Id: t.ID.String(), UpstreamId: t.UpstreamID.String(), Upstream: up, Name: t.Name,
			LiveSha256: t.LiveSha256, PinnedSha256: t.PinnedSha256, LastSeen: ts(t.LastSeen), Kind: t.Kind.String(), FlowLabels: t.FlowLabels})
	}
	return connect.NewResponse(out), nil
}

// PinTool implements adminv1connect.ToolServiceHandler.
func (s *Server) PinTool(ctx context.Context, req *connect.Request[adminv1.PinToolRequest]) (*connect.Response[adminv1.PinToolResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetToolId(), "tool_id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Inventory.PinLive(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.PinToolResponse{}), nil
}

// UnpinTool implements adminv1connect.ToolServiceHandler.
func (s *Server) UnpinTool(ctx context.Context, req *connect.Request[adminv1.UnpinToolRequest]) (*connect.Response[adminv1.UnpinToolResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetToolId(), "tool_id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Inventory.Unpin(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.UnpinToolResponse{}), nil
}

// SetToolLabels implements adminv1connect.ToolServiceHandler.
func (s *Server) SetToolLabels(ctx context.Context, req *connect.Request[adminv1.SetToolLabelsRequest]) (*connect.Response[adminv1.SetToolLabelsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetToolId(), "tool_id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Inventory.SetLabels(ctx, tid, id, req.Msg.GetFlowLabels()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.SetToolLabelsResponse{}), nil
}

// --- APIKeyService

func apiKeyToProto(k *ent.APIKey) *adminv1.APIKey {
	return &adminv1.APIKey{Id: k.ID.String(), Name: k.Name, Role: roleName(k.Role.String()), CreatedAt: ts(k.CreatedAt),
		LastUsedAt: tsp(k.LastUsedAt), Revoked: k.RevokedAt != nil}
}

// ListAPIKeys implements adminv1connect.APIKeyServiceHandler.
func (s *Server) ListAPIKeys(ctx context.Context, _ *connect.Request[adminv1.ListAPIKeysRequest]) (*connect.Response[adminv1.ListAPIKeysResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	ks, err := s.cfg.IDs.APIKeys(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListAPIKeysResponse{}
	for _, k := range ks {
		out.ApiKeys = append(out.ApiKeys, apiKeyToProto(k))
	}
	return connect.NewResponse(out), nil
}

// CreateAPIKey implements adminv1connect.APIKeyServiceHandler.
func (s *Server) CreateAPIKey(ctx context.Context, req *connect.Request[adminv1.CreateAPIKeyRequest]) (*connect.Response[adminv1.CreateAPIKeyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	secret, k, err := s.cfg.IDs.CreateAPIKey(ctx, tid, req.Msg.GetName(), roleFromProto(req.Msg.GetRole()))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.CreateAPIKeyResponse{ApiKey: apiKeyToProto(k), Secret: secret}), nil
}

// RevokeAPIKey implements adminv1connect.APIKeyServiceHandler.
func (s *Server) RevokeAPIKey(ctx context.Context, req *connect.Request[adminv1.RevokeAPIKeyRequest]) (*connect.Response[adminv1.RevokeAPIKeyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetApiKeyId(), "api_key_id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.IDs.RevokeAPIKey(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.RevokeAPIKeyResponse{}), nil
}

// --- AuditService

// ListAuditEvents implements adminv1connect.AuditServiceHandler.
func (s *Server) ListAuditEvents(ctx context.Context, req *connect.Request[adminv1.ListAuditEventsRequest]) (*connect.Response[adminv1.ListAuditEventsResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	evs, err := audit.List(ctx, s.cfg.DB, tid, int(req.Msg.GetLimit()))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListAuditEventsResponse{}
	for _, e := range evs {
		out.Events = append(out.Events, &adminv1.AuditEvent{Id: e.ID.String(), Time: ts(e.CreatedAt), Actor: e.Actor, Action: e.Action,
			TargetType: e.TargetType, TargetId: e.TargetID, TargetName: e.TargetName, BeforeJson: jsonOf(e.Before), AfterJson: jsonOf(e.After)})
	}
	return connect.NewResponse(out), nil
}

func jsonOf(m map[string]any) string {
	if m == nil {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}
