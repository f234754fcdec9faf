package e2e

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/access"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/adminapi"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/callevent"
	"github.com/portcullis-mcp/portcullis/ent/catalogentry"
	"github.com/portcullis-mcp/portcullis/ent/changerequest"
	"github.com/portcullis-mcp/portcullis/ent/connection"
	"github.com/portcullis-mcp/portcullis/ent/enrollmenttoken"
	"github.com/portcullis-mcp/portcullis/ent/gateway"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ent/virtualserver"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
	"github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1/adminv1connect"
)

// bSha is the hash of tenant B's tool definition.
var bSha = strings.Repeat("ab", 32)

// world is two tenants with objects of every kind, and credentials for
// members of tenant A.
type world struct {
	cp                               *controlPlane
	a, b                             *ent.Tenant
	aliceSession, carolSession       string // A's owner; A's viewer
	aliceCSRF, carolCSRF             string
	adminKeyA, viewerKeyA, ownerKeyB string
	bGateway, bUpstream, bTool, bKey uuid.UUID
	bMember, bChange                 uuid.UUID
	bClientKey, bRule, bVS, bToken   uuid.UUID
	bAgent, bCatalog, bConnection    uuid.UUID
	bManifest                        []byte
	aGateway                         uuid.UUID
	bGatewayName                     string
}

func buildWorld(t *testing.T) *world {
	t.Helper()
	cp := startConsole(t)
	w := &world{cp: cp, bGatewayName: "b-secret-gateway"}
	sys := viewer.System(context.Background())
	login := func(email string) *ent.User {
		u, err := cp.IDs.Login(sys, identity.Claims{Issuer: "https://idp.test", Subject: email, Email: email})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	aliceU, carolU, bobU := login("alice@a.test"), login("carol@a.test"), login("bob@b.test")
	var err error
	if w.a, err = cp.Tenants.CreateTenant(sys, "Tenant A", "tenant-a", aliceU.ID); err != nil {
		t.Fatal(err)
	}
	if w.b, err = cp.Tenants.CreateTenant(sys, "Tenant B", "tenant-b", bobU.ID); err != nil {
		t.Fatal(err)
	}
	as := func(u *ent.User, ten *ent.Tenant) context.Context {
		v, err := cp.IDs.UserViewer(sys, u.ID, ten.ID)
		if err != nil {
			t.Fatal(err)
		}
		return viewer.NewContext(context.Background(), v)
	}
	actx, bctx := as(aliceU, w.a), as(bobU, w.b)
	if _, err := cp.IDs.Invite(actx, w.a.ID, "carol@a.test", viewer.RoleViewer); err != nil {
		t.Fatal(err)
	}
	login("carol@a.test") // accepts the invitation
	ga, err := cp.Tenants.CreateGateway(actx, w.a.ID, "a-gateway")
	if err != nil {
		t.Fatal(err)
	}
	w.aGateway = ga.ID
	gb, err := cp.Tenants.CreateGateway(bctx, w.b.ID, w.bGatewayName)
	if err != nil {
		t.Fatal(err)
	}
	w.bGateway = gb.ID
	if _, err := cp.Tenants.CreateEnrollmentToken(bctx, w.b.ID, gb.ID, time.Hour, 1); err != nil {
		t.Fatal(err)
	}
	if w.bToken, err = cp.DB.EnrollmentToken.Query().OnlyID(sys); err != nil {
		t.Fatal(err)
	}
	ab, err := cp.DB.Agent.Create().SetTenantID(w.b.ID).SetGatewayID(gb.ID).SetHostname("b-host").SetCertFingerprint("fp-b").Save(sys)
	if err != nil {
		t.Fatal(err)
	}
	w.bAgent = ab.ID
	ub, err := cp.Tenants.CreateUpstream(bctx, w.b.ID, gb.ID, tenant.UpstreamSpec{Name: "b-upstream", Transport: "streamable_http", URL: "http://10.0.0.1/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	w.bUpstream = ub.ID
	vsb, err := cp.Tenants.CreateVirtualServer(bctx, w.b.ID, gb.ID, "b-vs", []string{"b-upstream"})
	if err != nil {
		t.Fatal(err)
	}
	w.bVS = vsb.ID
	tb, err := cp.DB.Tool.Create().SetTenantID(w.b.ID).SetUpstreamID(ub.ID).SetName("b-tool").SetLiveSha256(bSha).Save(sys)
	if err != nil {
		t.Fatal(err)
	}
	w.bTool = tb.ID
	def := []byte(`{"description":"B's tool","inputSchema":{"type":"object"},"name":"b-tool"}`)
	if err := cp.DB.ToolVersion.Create().SetTenantID(w.b.ID).SetToolID(tb.ID).SetSha256(bSha).SetDefinition(def).Exec(sys); err != nil {
		t.Fatal(err)
	}
	crb, err := cp.DB.ChangeRequest.Create().SetTenantID(w.b.ID).SetToolID(tb.ID).SetGatewayID(gb.ID).SetKind(changerequest.KindToolAdded).
		SetToSha256(bSha).SetRequestedBy("gateway agent b-host").SetApprovalsRequired(1).Save(sys)
	if err != nil {
		t.Fatal(err)
	}
	w.bChange = crb.ID
	cb, err := cp.DB.CatalogEntry.Create().SetTenantID(w.b.ID).SetName("io.b.test/secret").SetVersion("1.0.0").SetTransport(catalogentry.TransportStreamableHTTP).
		SetURL("http://10.0.0.2/mcp").SetRequestedBy("dave").SetApprovalsRequired(1).Save(sys)
	if err != nil {
		t.Fatal(err)
	}
	w.bCatalog = cb.ID
	now := time.Now()
	cn, err := cp.DB.Connection.Create().SetTenantID(w.b.ID).SetGatewayID(gb.ID).SetUpstream("b-upstream").SetPrincipal("user:b-person").
		SetUpstreamIdentity("b-identity").SetConnectedAt(now).SetChangedAt(now).Save(sys)
	if err != nil {
		t.Fatal(err)
	}
	w.bConnection = cn.ID
	if w.bManifest, err = cp.Changes.ExportPins(bctx, w.b.ID); err != nil {
		t.Fatal(err)
	}
	_, ck, err := cp.Access.CreateClientKey(bctx, w.b.ID, "b-client", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.bClientKey = ck.ID
	br, err := cp.Access.CreateRule(bctx, w.b.ID, gb.ID, access.Rule{Principal: "*", VirtualServer: "*", ToolPattern: "*", Effect: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	w.bRule = br.ID
	if _, err := cp.IDs.Invite(bctx, w.b.ID, "dave@b.test", viewer.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	ms, err := cp.IDs.Members(bctx, w.b.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Email == "bob@b.test" {
			w.bMember = m.ID
		}
	}
	var k *ent.APIKey
	if w.ownerKeyB, k, err = cp.IDs.CreateAPIKey(bctx, w.b.ID, "b-key", viewer.RoleOwner); err != nil {
		t.Fatal(err)
	}
	w.bKey = k.ID
	if w.adminKeyA, _, err = cp.IDs.CreateAPIKey(actx, w.a.ID, "a-admin", viewer.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if w.viewerKeyA, _, err = cp.IDs.CreateAPIKey(actx, w.a.ID, "a-viewer", viewer.RoleViewer); err != nil {
		t.Fatal(err)
	}
	session := func(u *ent.User, ten *ent.Tenant) (string, string) {
		tok, err := cp.IDs.CreateSession(sys, u.ID, ten.ID)
		if err != nil {
			t.Fatal(err)
		}
		se, err := cp.IDs.Session(sys, tok)
		if err != nil {
			t.Fatal(err)
		}
		return tok, se.CSRFToken
	}
	w.aliceSession, w.aliceCSRF = session(aliceU, w.a)
	w.carolSession, w.carolCSRF = session(carolU, w.a)
	return w
}

// creds adds a credential to every request a client sends.
type creds struct{ header, value, tenant string }

func (c creds) interceptor() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set(c.header, c.value)
			if c.tenant != "" {
				req.Header().Set(adminapi.TenantHeader, c.tenant)
			}
			return next(ctx, req)
		}
	}
}

type clients struct {
	tenants  adminv1connect.TenantServiceClient
	members  adminv1connect.MemberServiceClient
	gateways adminv1connect.GatewayServiceClient
	ups      adminv1connect.UpstreamServiceClient
	vss      adminv1connect.VirtualServerServiceClient
	tools    adminv1connect.ToolServiceClient
	keys     adminv1connect.APIKeyServiceClient
	audit    adminv1connect.AuditServiceClient
	changes  adminv1connect.ChangeServiceClient
	policy   adminv1connect.PolicyServiceClient
	tel      adminv1connect.TelemetryServiceClient
	catalog  adminv1connect.CatalogServiceClient
	conns    adminv1connect.ConnectionServiceClient
}

func newClients(base string, c creds) clients {
	o := connect.WithInterceptors(c.interceptor())
	h := http.DefaultClient
	return clients{
		tenants: adminv1connect.NewTenantServiceClient(h, base, o), members: adminv1connect.NewMemberServiceClient(h, base, o),
		gateways: adminv1connect.NewGatewayServiceClient(h, base, o), ups: adminv1connect.NewUpstreamServiceClient(h, base, o),
		vss: adminv1connect.NewVirtualServerServiceClient(h, base, o), tools: adminv1connect.NewToolServiceClient(h, base, o),
		keys: adminv1connect.NewAPIKeyServiceClient(h, base, o), audit: adminv1connect.NewAuditServiceClient(h, base, o),
		changes: adminv1connect.NewChangeServiceClient(h, base, o), policy: adminv1connect.NewPolicyServiceClient(h, base, o),
		tel: adminv1connect.NewTelemetryServiceClient(h, base, o), catalog: adminv1connect.NewCatalogServiceClient(h, base, o),
		conns: adminv1connect.NewConnectionServiceClient(h, base, o),
	}
}

type apiCall struct {
	name     string
	mutating bool // or admin-only: a viewer gets PermissionDenied
	call     func(ctx context.Context, c clients, w *world) error
}

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// apiMatrix names every admin API method, aimed at tenant B's objects where
// it takes an id.
var apiMatrix = []apiCall{
	{"ListTenants", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tenants.ListTenants(ctx, req(&adminv1.ListTenantsRequest{}))
		return err
	}},
	{"CreateTenant", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tenants.CreateTenant(ctx, req(&adminv1.CreateTenantRequest{Name: "X", Slug: "x-" + uuid.NewString()[:8]}))
		return err
	}},
	{"ListMembers", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.members.ListMembers(ctx, req(&adminv1.ListMembersRequest{}))
		return err
	}},
	{"InviteMember", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.members.InviteMember(ctx, req(&adminv1.InviteMemberRequest{Email: "z@a.test", Role: adminv1.Role_ROLE_VIEWER}))
		return err
	}},
	{"SetMemberRole", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.members.SetMemberRole(ctx, req(&adminv1.SetMemberRoleRequest{MemberId: w.bMember.String(), Role: adminv1.Role_ROLE_VIEWER}))
		return err
	}},
	{"RemoveMember", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.members.RemoveMember(ctx, req(&adminv1.RemoveMemberRequest{MemberId: w.bMember.String()}))
		return err
	}},
	{"GetSigningKey", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tenants.GetSigningKey(ctx, req(&adminv1.GetSigningKeyRequest{}))
		return err
	}},
	{"RotateSigningKey", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tenants.RotateSigningKey(ctx, req(&adminv1.RotateSigningKeyRequest{Action: "cancel"}))
		return err
	}},
	{"ListGateways", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.gateways.ListGateways(ctx, req(&adminv1.ListGatewaysRequest{}))
		return err
	}},
	{"GetGateway", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.gateways.GetGateway(ctx, req(&adminv1.GetGatewayRequest{GatewayId: w.bGateway.String()}))
		return err
	}},
	{"CreateGateway", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.gateways.CreateGateway(ctx, req(&adminv1.CreateGatewayRequest{Name: "gw-" + uuid.NewString()[:8]}))
		return err
	}},
	{"CreateEnrollmentToken", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.gateways.CreateEnrollmentToken(ctx, req(&adminv1.CreateEnrollmentTokenRequest{GatewayId: w.bGateway.String()}))
		return err
	}},
	{"UpdateGateway", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.gateways.UpdateGateway(ctx, req(&adminv1.UpdateGatewayRequest{GatewayId: w.bGateway.String(), Name: "renamed"}))
		return err
	}},
	{"DeleteGateway", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.gateways.DeleteGateway(ctx, req(&adminv1.DeleteGatewayRequest{GatewayId: w.bGateway.String(), Force: true}))
		return err
	}},
	{"ListEnrollmentTokens", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.gateways.ListEnrollmentTokens(ctx, req(&adminv1.ListEnrollmentTokensRequest{GatewayId: w.bGateway.String()}))
		return err
	}},
	{"RevokeEnrollmentToken", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.gateways.RevokeEnrollmentToken(ctx, req(&adminv1.RevokeEnrollmentTokenRequest{Id: w.bToken.String()}))
		return err
	}},
	{"RevokeAgent", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.gateways.RevokeAgent(ctx, req(&adminv1.RevokeAgentRequest{AgentId: w.bAgent.String()}))
		return err
	}},
	{"ListUpstreams", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.ups.ListUpstreams(ctx, req(&adminv1.ListUpstreamsRequest{}))
		return err
	}},
	{"CreateUpstream", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.ups.CreateUpstream(ctx, req(&adminv1.CreateUpstreamRequest{Upstream: &adminv1.Upstream{GatewayId: w.bGateway.String(), Name: "sneaky", Transport: adminv1.Transport_TRANSPORT_STREAMABLE_HTTP, Url: "http://evil.test/mcp"}}))
		return err
	}},
	{"UpdateUpstream", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.ups.UpdateUpstream(ctx, req(&adminv1.UpdateUpstreamRequest{Upstream: &adminv1.Upstream{Id: w.bUpstream.String(), Transport: adminv1.Transport_TRANSPORT_STREAMABLE_HTTP, Url: "http://evil.test/mcp"}}))
		return err
	}},
	{"DeleteUpstream", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.ups.DeleteUpstream(ctx, req(&adminv1.DeleteUpstreamRequest{Id: w.bUpstream.String()}))
		return err
	}},
	{"UpdateVirtualServer", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.vss.UpdateVirtualServer(ctx, req(&adminv1.UpdateVirtualServerRequest{Id: w.bVS.String(), Upstreams: []string{"b-upstream"}, Unprefixed: true}))
		return err
	}},
	{"DeleteVirtualServer", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.vss.DeleteVirtualServer(ctx, req(&adminv1.DeleteVirtualServerRequest{Id: w.bVS.String()}))
		return err
	}},
	{"ListVirtualServers", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.vss.ListVirtualServers(ctx, req(&adminv1.ListVirtualServersRequest{}))
		return err
	}},
	{"CreateVirtualServer", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.vss.CreateVirtualServer(ctx, req(&adminv1.CreateVirtualServerRequest{GatewayId: w.bGateway.String(), Name: "sneaky", Upstreams: []string{"b-upstream"}}))
		return err
	}},
	{"ListTools", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tools.ListTools(ctx, req(&adminv1.ListToolsRequest{}))
		return err
	}},
	{"PinTool", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tools.PinTool(ctx, req(&adminv1.PinToolRequest{ToolId: w.bTool.String()}))
		return err
	}},
	{"UnpinTool", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tools.UnpinTool(ctx, req(&adminv1.UnpinToolRequest{ToolId: w.bTool.String()}))
		return err
	}},
	{"SetToolLabels", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tools.SetToolLabels(ctx, req(&adminv1.SetToolLabelsRequest{ToolId: w.bTool.String(), FlowLabels: []string{"external_sink"}}))
		return err
	}},
	{"ListAPIKeys", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.keys.ListAPIKeys(ctx, req(&adminv1.ListAPIKeysRequest{}))
		return err
	}},
	{"CreateAPIKey", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.keys.CreateAPIKey(ctx, req(&adminv1.CreateAPIKeyRequest{Name: "k", Role: adminv1.Role_ROLE_VIEWER}))
		return err
	}},
	{"RevokeAPIKey", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.keys.RevokeAPIKey(ctx, req(&adminv1.RevokeAPIKeyRequest{ApiKeyId: w.bKey.String()}))
		return err
	}},
	{"ListAuditEvents", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.audit.ListAuditEvents(ctx, req(&adminv1.ListAuditEventsRequest{}))
		return err
	}},
	{"ListChangeRequests", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.changes.ListChangeRequests(ctx, req(&adminv1.ListChangeRequestsRequest{}))
		return err
	}},
	{"GetChangeRequest", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.changes.GetChangeRequest(ctx, req(&adminv1.GetChangeRequestRequest{Id: w.bChange.String()}))
		return err
	}},
	{"ProposeChange", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.changes.ProposeChange(ctx, req(&adminv1.ProposeChangeRequest{ToolId: w.bTool.String(), Sha256: bSha}))
		return err
	}},
	{"ApproveChange", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.changes.ApproveChange(ctx, req(&adminv1.ApproveChangeRequest{Id: w.bChange.String()}))
		return err
	}},
	{"RejectChange", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.changes.RejectChange(ctx, req(&adminv1.RejectChangeRequest{Id: w.bChange.String()}))
		return err
	}},
	{"GetApprovalPolicy", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.changes.GetApprovalPolicy(ctx, req(&adminv1.GetApprovalPolicyRequest{}))
		return err
	}},
	{"SetApprovalPolicy", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.changes.SetApprovalPolicy(ctx, req(&adminv1.SetApprovalPolicyRequest{ApprovalsRequired: 1}))
		return err
	}},
	{"ExportPins", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.changes.ExportPins(ctx, req(&adminv1.ExportPinsRequest{}))
		return err
	}},
	{"GetResultScanning", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.GetResultScanning(ctx, req(&adminv1.GetResultScanningRequest{}))
		return err
	}},
	{"SetResultScanning", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.SetResultScanning(ctx, req(&adminv1.SetResultScanningRequest{Action: adminv1.ResultAction_RESULT_ACTION_REDACT}))
		return err
	}},
	{"ListClientKeys", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.ListClientKeys(ctx, req(&adminv1.ListClientKeysRequest{}))
		return err
	}},
	{"CreateClientKey", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.CreateClientKey(ctx, req(&adminv1.CreateClientKeyRequest{Name: "k-" + uuid.NewString()[:8]}))
		return err
	}},
	{"RevokeClientKey", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.RevokeClientKey(ctx, req(&adminv1.RevokeClientKeyRequest{Id: w.bClientKey.String()}))
		return err
	}},
	{"SetClientAuth", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.SetClientAuth(ctx, req(&adminv1.SetClientAuthRequest{GatewayId: w.bGateway.String(), Required: true}))
		return err
	}},
	{"SetRateLimits", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.SetRateLimits(ctx, req(&adminv1.SetRateLimitsRequest{GatewayId: w.bGateway.String(), ToolPerMinute: 1}))
		return err
	}},
	{"GetClientIdentityProvider", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.GetClientIdentityProvider(ctx, req(&adminv1.GetClientIdentityProviderRequest{}))
		return err
	}},
	{"SetClientIdentityProvider", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.SetClientIdentityProvider(ctx, req(&adminv1.SetClientIdentityProviderRequest{Issuer: "https://idp.a.test"}))
		return err
	}},
	{"ListAccessRules", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.ListAccessRules(ctx, req(&adminv1.ListAccessRulesRequest{GatewayId: w.bGateway.String()}))
		return err
	}},
	{"CreateAccessRule", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.CreateAccessRule(ctx, req(&adminv1.CreateAccessRuleRequest{Rule: &adminv1.AccessRule{GatewayId: w.bGateway.String(),
			Principal: "*", VirtualServer: "*", ToolPattern: "*", Effect: "deny"}}))
		return err
	}},
	{"DeleteAccessRule", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.policy.DeleteAccessRule(ctx, req(&adminv1.DeleteAccessRuleRequest{Id: w.bRule.String()}))
		return err
	}},
	{"ListConnections", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.conns.ListConnections(ctx, req(&adminv1.ListConnectionsRequest{}))
		return err
	}},
	{"RevokeConnection", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.conns.RevokeConnection(ctx, req(&adminv1.RevokeConnectionRequest{Id: w.bConnection.String()}))
		return err
	}},
	{"ListCallEvents", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tel.ListCallEvents(ctx, req(&adminv1.ListCallEventsRequest{Decision: "deny"}))
		return err
	}},
	{"GetTraffic", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.tel.GetTraffic(ctx, req(&adminv1.GetTrafficRequest{}))
		return err
	}},
	{"ListCatalog", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.catalog.ListCatalog(ctx, req(&adminv1.ListCatalogRequest{}))
		return err
	}},
	{"ImportServerJSON", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.catalog.ImportServerJSON(ctx, req(&adminv1.ImportServerJSONRequest{
			ServerJson: []byte(`{"name":"io.a.test/remote","version":"1.0.0","description":"d","remotes":[{"type":"streamable-http","url":"https://mcp.a.test/mcp"}]}`)}))
		return err
	}},
	{"DecideCatalogEntry", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.catalog.DecideCatalogEntry(ctx, req(&adminv1.DecideCatalogEntryRequest{Id: w.bCatalog.String()}))
		return err
	}},
	{"DeleteCatalogEntry", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.catalog.DeleteCatalogEntry(ctx, req(&adminv1.DeleteCatalogEntryRequest{Id: w.bCatalog.String()}))
		return err
	}},
	{"GetCatalogPolicy", false, func(ctx context.Context, c clients, w *world) error {
		_, err := c.catalog.GetCatalogPolicy(ctx, req(&adminv1.GetCatalogPolicyRequest{}))
		return err
	}},
	{"SetCatalogPolicy", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.catalog.SetCatalogPolicy(ctx, req(&adminv1.SetCatalogPolicyRequest{CatalogOnly: true}))
		return err
	}},
	{"ImportPins", true, func(ctx context.Context, c clients, w *world) error {
		_, err := c.changes.ImportPins(ctx, req(&adminv1.ImportPinsRequest{Manifest: w.bManifest}))
		return err
	}},
}

// adminMethods lists every method the admin API defines.
func adminMethods() []string {
	var out []string
	svcs := adminv1.File_portcullis_admin_v1_admin_proto.Services()
	for i := range svcs.Len() {
		ms := svcs.Get(i).Methods()
		for j := range ms.Len() {
			out = append(out, string(ms.Get(j).Name()))
		}
	}
	sort.Strings(out)
	return out
}

// targetsB is whether the call names one of tenant B's objects.
func targetsB(name string) bool {
	switch name {
	case "SetMemberRole", "RemoveMember", "GetGateway", "CreateEnrollmentToken", "CreateUpstream", "CreateVirtualServer", "UpdateUpstream", "DeleteUpstream", "UpdateVirtualServer", "DeleteVirtualServer", "UpdateGateway", "DeleteGateway", "ListEnrollmentTokens", "RevokeEnrollmentToken", "RevokeAgent", "PinTool", "UnpinTool", "RevokeAPIKey",
		"GetChangeRequest", "ProposeChange", "SetToolLabels", "RevokeClientKey", "SetClientAuth", "SetRateLimits", "ListAccessRules", "CreateAccessRule", "DeleteAccessRule", "ApproveChange", "RejectChange", "ImportPins",
		"DecideCatalogEntry", "DeleteCatalogEntry", "RevokeConnection":
		return true
	}
	return false
}

func TestAPITenantIsolationMatrix(t *testing.T) {
	w := buildWorld(t)
	base := w.cp.PublicURL()
	ctx := context.Background()
	var inMatrix []string
	for _, m := range apiMatrix {
		inMatrix = append(inMatrix, m.name)
	}
	sort.Strings(inMatrix)
	if all := adminMethods(); !slices.Equal(inMatrix, all) {
		t.Fatalf("the matrix covers %v,\nthe API defines %v: add new admin API methods to the matrix", inMatrix, all)
	}

	principals := []struct {
		name  string
		creds creds
	}{
		{"admin API key of A", creds{"Authorization", "Bearer " + w.adminKeyA, ""}},
		{"owner session of A", creds{"Cookie", adminapi.DevSessionCookie + "=" + w.aliceSession, w.a.ID.String()}},
	}
	for _, p := range principals {
		c := newClients(base, p.creds)
		for _, m := range apiMatrix {
			if !targetsB(m.name) {
				continue
			}
			t.Run(p.name+"/"+m.name+" on B's object", func(t *testing.T) {
				err := m.call(ctx, c, w)
				if code := connect.CodeOf(err); code != connect.CodeNotFound && code != connect.CodePermissionDenied && code != connect.CodeInvalidArgument {
					t.Fatalf("got %v (code %v), want NotFound or PermissionDenied", err, code)
				}
			})
		}
		// Lists return A's objects only.
		gs, err := c.gateways.ListGateways(ctx, req(&adminv1.ListGatewaysRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs.Msg.GetGateways() {
			if g.GetName() == w.bGatewayName {
				t.Fatalf("%s listed tenant B's gateway", p.name)
			}
		}
		ts, err := c.tools.ListTools(ctx, req(&adminv1.ListToolsRequest{}))
		if err != nil || len(ts.Msg.GetTools()) != 0 {
			t.Fatalf("%s listed tools %v (%v); tenant A has none", p.name, ts, err)
		}
	}

	// A's session naming tenant B in the header: not a member, so not found.
	intoB := newClients(base, creds{"Cookie", adminapi.DevSessionCookie + "=" + w.aliceSession, w.b.ID.String()})
	for _, m := range apiMatrix {
		if m.name == "ListTenants" || m.name == "CreateTenant" {
			continue // not tenant-scoped
		}
		t.Run("session of A acting in B/"+m.name, func(t *testing.T) {
			if code := connect.CodeOf(m.call(ctx, intoB, w)); code != connect.CodeNotFound {
				t.Fatalf("code %v, want NotFound", code)
			}
		})
	}

	// A viewer (key or session) cannot mutate anything, not even in A.
	for _, p := range []creds{
		{"Authorization", "Bearer " + w.viewerKeyA, ""},
		{"Cookie", adminapi.DevSessionCookie + "=" + w.carolSession, w.a.ID.String()},
	} {
		c := newClients(base, p)
		for _, m := range apiMatrix {
			if m.name == "CreateTenant" && p.header == "Cookie" {
				continue // any signed-in person may start a tenant of their own
			}
			t.Run("viewer "+p.header+"/"+m.name, func(t *testing.T) {
				err := m.call(ctx, c, w)
				code := connect.CodeOf(err)
				switch {
				case m.mutating && code != connect.CodePermissionDenied && code != connect.CodeNotFound:
					t.Fatalf("viewer mutation: %v, want PermissionDenied", err)
				case !m.mutating && targetsB(m.name) && code != connect.CodeNotFound:
					t.Fatalf("viewer read of B's object: %v, want NotFound", err)
				case !m.mutating && !targetsB(m.name) && m.name != "ListAPIKeys" && err != nil:
					t.Fatalf("viewer read failed: %v", err)
				case m.name == "ListAPIKeys" && code != connect.CodePermissionDenied:
					t.Fatalf("viewer listed API keys: %v, want PermissionDenied (keys are admin-only)", err)
				}
			})
		}
	}

	// No credential, a bad one, a revoked one.
	for name, cr := range map[string]creds{
		"none":          {"X-Nothing", "1", ""},
		"unknown key":   {"Authorization", "Bearer pcak_nope", ""},
		"basic auth":    {"Authorization", "Basic YTpi", ""},
		"bogus session": {"Cookie", adminapi.DevSessionCookie + "=nope", ""},
	} {
		c := newClients(base, cr)
		if code := connect.CodeOf(apiMatrix[0].call(ctx, c, w)); code != connect.CodeUnauthenticated {
			t.Errorf("%s: code %v, want Unauthenticated", name, code)
		}
	}

	// An unset enum is refused, not taken as a default.
	adminA := newClients(base, creds{"Authorization", "Bearer " + w.adminKeyA, ""})
	if _, err := adminA.policy.SetResultScanning(ctx, req(&adminv1.SetResultScanningRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("SetResultScanning without an action: %v, want InvalidArgument", err)
	}

	// Tenant B is untouched.
	bKeyStillWorks := newClients(base, creds{"Authorization", "Bearer " + w.ownerKeyB, ""})
	tools, err := bKeyStillWorks.tools.ListTools(ctx, req(&adminv1.ListToolsRequest{}))
	if err != nil || len(tools.Msg.GetTools()) != 1 || tools.Msg.GetTools()[0].GetPinnedSha256() != "" {
		t.Fatalf("tenant B's key or tool was changed: %v, %v", tools, err)
	}
	ups, err := bKeyStillWorks.ups.ListUpstreams(ctx, req(&adminv1.ListUpstreamsRequest{}))
	if err != nil || len(ups.Msg.GetUpstreams()) != 1 {
		t.Fatalf("tenant B's upstreams changed: %v, %v", ups, err)
	}
	rules, err := bKeyStillWorks.policy.ListAccessRules(ctx, req(&adminv1.ListAccessRulesRequest{GatewayId: w.bGateway.String()}))
	if err != nil || len(rules.Msg.GetRules()) != 1 || rules.Msg.GetRules()[0].GetEffect() != "allow" {
		t.Fatalf("tenant B's rules changed: %v, %v", rules, err)
	}
	keys, err := bKeyStillWorks.policy.ListClientKeys(ctx, req(&adminv1.ListClientKeysRequest{}))
	if err != nil || len(keys.Msg.GetKeys()) != 1 || keys.Msg.GetKeys()[0].GetRevoked() {
		t.Fatalf("tenant B's client key changed: %v, %v", keys, err)
	}
	cat, err := bKeyStillWorks.catalog.ListCatalog(ctx, req(&adminv1.ListCatalogRequest{}))
	if err != nil || len(cat.Msg.GetEntries()) != 1 || cat.Msg.GetEntries()[0].GetStatus() != "pending" {
		t.Fatalf("tenant B's catalog changed: %v, %v", cat, err)
	}
	crs, err := bKeyStillWorks.changes.ListChangeRequests(ctx, req(&adminv1.ListChangeRequestsRequest{}))
	if err != nil || len(crs.Msg.GetChangeRequests()) != 1 || crs.Msg.GetChangeRequests()[0].GetStatus() != "pending" {
		t.Fatalf("tenant B's change request was decided: %v, %v", crs, err)
	}
	gw, err := bKeyStillWorks.gateways.GetGateway(ctx, req(&adminv1.GetGatewayRequest{GatewayId: w.bGateway.String()}))
	if err != nil || gw.Msg.GetGateway().GetName() != w.bGatewayName {
		t.Fatalf("tenant B's gateway was renamed or deleted: %v, %v", gw, err)
	}
	toks, err := bKeyStillWorks.gateways.ListEnrollmentTokens(ctx, req(&adminv1.ListEnrollmentTokensRequest{GatewayId: w.bGateway.String()}))
	if err != nil || len(toks.Msg.GetTokens()) != 1 {
		t.Fatalf("tenant B's enrollment token was revoked: %v, %v", toks, err)
	}
	members, err := bKeyStillWorks.members.ListMembers(ctx, req(&adminv1.ListMembersRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members.Msg.GetMembers() {
		if m.GetEmail() == "bob@b.test" && m.GetRole() != adminv1.Role_ROLE_OWNER {
			t.Fatalf("bob's role changed to %v", m.GetRole())
		}
	}
}

// consoleDo sends a console request with a session cookie.
func consoleDo(t *testing.T, base, method, path, session string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.AddCookie(&http.Cookie{Name: adminapi.DevSessionCookie, Value: session})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestConsoleTenantIsolationMatrix(t *testing.T) {
	w := buildWorld(t)
	base := w.cp.PublicURL()
	form := func(csrf string, kv ...string) url.Values {
		v := url.Values{"csrf": {csrf}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	bID := func(id uuid.UUID) string { return id.String() }

	// Alice (owner of A) aimed at B's objects.
	for _, tc := range []struct{ method, path string }{
		{"GET", "/gateways/" + bID(w.bGateway)},
		{"GET", "/gateways/" + bID(w.bGateway) + "/agents"},
		{"POST", "/gateways/" + bID(w.bGateway) + "/tokens"},
		{"POST", "/gateways/" + bID(w.bGateway) + "/tokens/" + bID(w.bToken) + "/revoke"},
		{"POST", "/gateways/" + bID(w.aGateway) + "/tokens/" + bID(w.bToken) + "/revoke"},
		{"POST", "/gateways/" + bID(w.bGateway) + "/rename"},
		{"POST", "/gateways/" + bID(w.bGateway) + "/delete"},
		{"POST", "/gateways/" + bID(w.bGateway) + "/agents/revoke"},
		{"POST", "/gateways/" + bID(w.aGateway) + "/agents/revoke"},
		{"GET", "/upstreams/" + bID(w.bUpstream)},
		{"POST", "/upstreams/" + bID(w.bUpstream)},
		{"POST", "/upstreams/" + bID(w.bUpstream) + "/delete"},
		{"GET", "/virtual-servers/" + bID(w.bVS)},
		{"POST", "/virtual-servers/" + bID(w.bVS)},
		{"POST", "/virtual-servers/" + bID(w.bVS) + "/delete"},
		{"POST", "/members/" + bID(w.bMember) + "/role"},
		{"POST", "/members/" + bID(w.bMember) + "/remove"},
		{"GET", "/tools/" + bID(w.bTool)},
		{"POST", "/tools/" + bID(w.bTool) + "/propose"},
		{"POST", "/tools/" + bID(w.bTool) + "/labels"},
		{"POST", "/access/keys/" + bID(w.bClientKey) + "/revoke"},
		{"POST", "/access/gateways/" + bID(w.bGateway) + "/auth"},
		{"POST", "/access/gateways/" + bID(w.bGateway) + "/limits"},
		{"POST", "/access/gateways/" + bID(w.bGateway) + "/rules"},
		{"POST", "/access/rules/" + bID(w.bRule) + "/delete"},
		{"POST", "/tools/" + bID(w.bTool) + "/pin"},
		{"POST", "/tools/" + bID(w.bTool) + "/unpin"},
		{"POST", "/api-keys/" + bID(w.bKey) + "/revoke"},
		{"GET", "/changes/" + bID(w.bChange)},
		{"GET", "/changes/" + bID(w.bChange) + "/agents"},
		{"POST", "/changes/" + bID(w.bChange) + "/decide"},
		{"POST", "/catalog/" + bID(w.bCatalog) + "/decide"},
		{"POST", "/catalog/" + bID(w.bCatalog) + "/delete"},
		{"POST", "/connections/" + bID(w.bConnection) + "/revoke"},
		{"POST", "/tenants/switch"},
		{"POST", "/upstreams"},
		{"POST", "/virtual-servers"},
	} {
		t.Run("owner of A "+tc.method+" "+tc.path, func(t *testing.T) {
			var f url.Values
			if tc.method == "POST" {
				f = form(w.aliceCSRF, "decision", "approve", "role", "viewer", "tenant", w.b.ID.String(), "gateway", w.bGateway.String(),
					"name", "sneaky", "transport", "streamable_http", "url", "http://evil.test/mcp", "upstreams", "b-upstream", "sha256", bSha, "principal_per_minute", "1", "tool_per_minute", "1", "confirm", "1", "force", "1", "agent", w.bAgent.String())
			}
			status, body := consoleDo(t, base, tc.method, tc.path, w.aliceSession, f)
			if status != http.StatusNotFound && status != http.StatusForbidden {
				t.Fatalf("status %d, want 404 or 403; body:\n%s", status, body)
			}
			if strings.Contains(body, w.bGatewayName) {
				t.Fatal("response disclosed tenant B's gateway name")
			}
		})
	}
	// Every list page of A leaves B out.
	for _, path := range []string{"/", "/gateways", "/upstreams", "/virtual-servers", "/tools", "/members", "/api-keys", "/audit",
		"/changes?status=all", "/settings", "/settings/pins.json", "/access", "/telemetry", "/catalog", "/connections"} {
		status, body := consoleDo(t, base, "GET", path, w.aliceSession, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, status)
		}
		for _, secret := range []string{w.bGatewayName, "b-upstream", "b-tool", "bob@b.test", "b-key", "Tenant B", "io.b.test/secret", "user:b-person"} {
			if strings.Contains(body, secret) {
				t.Fatalf("GET %s shows %q of tenant B", path, secret)
			}
		}
	}

	// Carol is a viewer of A: every form is refused.
	for _, tc := range []struct {
		path string
		f    url.Values
	}{
		{"/gateways", form(w.carolCSRF, "name", "nope")},
		{"/gateways/" + w.aGateway.String() + "/tokens", form(w.carolCSRF)},
		{"/upstreams", form(w.carolCSRF, "gateway", w.aGateway.String(), "name", "nope", "transport", "streamable_http", "url", "http://x.test/mcp")},
		{"/virtual-servers", form(w.carolCSRF, "gateway", w.aGateway.String(), "name", "nope", "upstreams", "x")},
		{"/members/invite", form(w.carolCSRF, "email", "x@a.test", "role", "viewer")},
		{"/api-keys", form(w.carolCSRF, "name", "nope", "role", "viewer")},
		{"/settings/approvals", form(w.carolCSRF, "approvals_required", "2")},
		{"/settings/results", form(w.carolCSRF, "result_action", "annotate")},
		{"/tools/" + w.bTool.String() + "/labels", form(w.carolCSRF, "label", "external_sink")},
		{"/access/keys", form(w.carolCSRF, "name", "nope")},
		{"/access/idp", form(w.carolCSRF, "issuer", "https://idp.a.test")},
		{"/access/gateways/" + w.aGateway.String() + "/auth", form(w.carolCSRF, "required", "true")},
		{"/access/gateways/" + w.aGateway.String() + "/limits", form(w.carolCSRF, "principal_per_minute", "1", "tool_per_minute", "1")},
		{"/access/gateways/" + w.aGateway.String() + "/rules", form(w.carolCSRF, "principal", "*", "virtual_server", "*", "tool_pattern", "*", "effect", "allow")},
		{"/tools/" + w.bTool.String() + "/propose", form(w.carolCSRF, "sha256", bSha)},
		{"/changes/" + w.bChange.String() + "/decide", form(w.carolCSRF, "decision", "approve")},
		{"/gateways/" + w.aGateway.String() + "/rename", form(w.carolCSRF, "name", "nope")},
		{"/gateways/" + w.aGateway.String() + "/delete", form(w.carolCSRF, "confirm", "1", "force", "1")},
		{"/gateways/" + w.aGateway.String() + "/agents/revoke", form(w.carolCSRF, "confirm", "1", "agent", w.bAgent.String())},
		{"/upstreams/" + w.bUpstream.String(), form(w.carolCSRF, "transport", "streamable_http", "url", "http://x.test/mcp")},
		{"/upstreams/" + w.bUpstream.String() + "/delete", form(w.carolCSRF, "confirm", "1")},
		{"/virtual-servers/" + w.bVS.String(), form(w.carolCSRF, "upstreams", "x")},
		{"/virtual-servers/" + w.bVS.String() + "/delete", form(w.carolCSRF, "confirm", "1")},
		{"/catalog", form(w.carolCSRF, "server_json", `{"name":"io.a.test/x","version":"1","remotes":[{"type":"streamable-http","url":"https://x.test/mcp"}]}`)},
		{"/catalog/" + w.bCatalog.String() + "/decide", form(w.carolCSRF, "decision", "approve")},
		{"/catalog/" + w.bCatalog.String() + "/delete", form(w.carolCSRF, "confirm", "1")},
		{"/settings/catalog", form(w.carolCSRF, "catalog_only", "1")},
		{"/connections/" + w.bConnection.String() + "/revoke", form(w.carolCSRF, "confirm", "1")},
	} {
		t.Run("viewer POST "+tc.path, func(t *testing.T) {
			status, body := consoleDo(t, base, "POST", tc.path, w.carolSession, tc.f)
			if status != http.StatusForbidden && status != http.StatusNotFound {
				t.Fatalf("status %d, want 403; body:\n%s", status, body)
			}
		})
	}

	// Tenant B's objects are all still there.
	sys := viewer.System(context.Background())
	for what, exists := range map[string]func(context.Context) (bool, error){
		"gateway":          w.cp.DB.Gateway.Query().Where(gateway.ID(w.bGateway), gateway.Name(w.bGatewayName)).Exist,
		"upstream":         w.cp.DB.Upstream.Query().Where(upstream.ID(w.bUpstream), upstream.URL("http://10.0.0.1/mcp")).Exist,
		"virtual server":   w.cp.DB.VirtualServer.Query().Where(virtualserver.ID(w.bVS)).Exist,
		"enrollment token": w.cp.DB.EnrollmentToken.Query().Where(enrollmenttoken.ID(w.bToken)).Exist,
		"agent":            w.cp.DB.Agent.Query().Where(agent.ID(w.bAgent), agent.Revoked(false)).Exist,
		"connection":       w.cp.DB.Connection.Query().Where(connection.ID(w.bConnection), connection.StateEQ(connection.StateConnected)).Exist,
	} {
		if ok, err := exists(sys); err != nil || !ok {
			t.Errorf("tenant B's %s was changed or deleted (%v)", what, err)
		}
	}
	for _, path := range []string{"/upstreams/" + w.bUpstream.String(), "/virtual-servers/" + w.bVS.String()} {
		if status, _ := consoleDo(t, base, "GET", path, w.carolSession, nil); status != http.StatusForbidden && status != http.StatusNotFound {
			t.Errorf("viewer GET %s: %d, want 403", path, status)
		}
	}

	// A form without the CSRF token is refused even for the owner.
	if status, _ := consoleDo(t, base, "POST", "/gateways", w.aliceSession, url.Values{"name": {"no-csrf"}}); status != http.StatusForbidden {
		t.Fatalf("POST without CSRF token: %d, want 403", status)
	}
	// And a cross-origin form post is refused by origin checks.
	r, _ := http.NewRequest("POST", base+"/gateways", strings.NewReader(form(w.aliceCSRF, "name", "cross-site").Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	r.AddCookie(&http.Cookie{Name: adminapi.DevSessionCookie, Value: w.aliceSession})
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d, want 403", resp.StatusCode)
	}
	// Security headers on a page.
	resp, err = http.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{"Content-Security-Policy": "default-src 'self'", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s = %q, want it to contain %q", h, resp.Header.Get(h), want)
		}
	}
}

// The telemetry explorer pages through events, newest first, without
// losing or repeating one, even among events of the same instant.
func TestTelemetryPages(t *testing.T) {
	w := buildWorld(t)
	sys := viewer.System(context.Background())
	ag, err := w.cp.DB.Agent.Create().SetTenantID(w.a.ID).SetGatewayID(w.aGateway).SetHostname("pager").SetCertFingerprint(uuid.NewString()).Save(sys)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	const n = 60
	for i := range n {
		at := base.Add(time.Duration(i) * time.Millisecond)
		if i >= 45 && i < 55 {
			at = base.Add(45 * time.Millisecond) // ten at one instant, across the page boundary
		}
		if err := w.cp.DB.CallEvent.Create().SetID(fmt.Sprintf("ev-%02d", i)).SetTenantID(w.a.ID).SetGatewayID(w.aGateway).SetAgentID(ag.ID).
			SetTime(at).SetMethod("tools/call").SetTool(fmt.Sprintf("tool%02d", i)).SetDecision(callevent.DecisionAllow).
			SetLatencyMicros(1).SetRequestBytes(1).SetResponseBytes(1).Exec(sys); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	path, pages := "/telemetry", 0
	for path != "" {
		status, body := consoleDo(t, w.cp.PublicURL(), "GET", path, w.aliceSession, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, status)
		}
		pages++
		for _, m := range regexp.MustCompile(`__tool(\d\d)<`).FindAllStringSubmatch(body, -1) {
			seen[m[1]]++
		}
		path = ""
		if m := regexp.MustCompile(`data-testid="events-older" href="([^"]+)"|href="([^"]+)" data-testid="events-older"`).FindStringSubmatch(body); m != nil {
			path = html.UnescapeString(m[1] + m[2])
		}
		if pages > 5 {
			t.Fatal("the pages do not end")
		}
	}
	if pages != 2 || len(seen) != n {
		t.Fatalf("%d pages, %d distinct events of %d", pages, len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s shown %d times", id, c)
		}
	}
	if status, _ := consoleDo(t, w.cp.PublicURL(), "GET", "/telemetry?before=garbage", w.aliceSession, nil); status != http.StatusBadRequest {
		t.Errorf("a bad cursor: %d", status)
	}
}

// The audit log filters by action (or action prefix) and by who acted, and
// pages without losing or repeating an event.
func TestAuditPages(t *testing.T) {
	w := buildWorld(t)
	sys := viewer.System(context.Background())
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	const n = 70
	for i := range n {
		action, actor := "upstream.update", "user:pat@a.test"
		if i%2 == 0 {
			action, actor = "member.invite", "api_key:robot"
		}
		if err := w.cp.DB.AuditEvent.Create().SetTenantID(w.a.ID).SetCreatedAt(at.Add(time.Duration(i/10) * time.Second)).SetActor(actor).
			SetAction(action).SetTargetType("test").SetTargetID(fmt.Sprint(i)).SetTargetName(fmt.Sprintf("obj%02d", i)).Exec(sys); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(path string) (map[string]int, int) {
		seen, pages := map[string]int{}, 0
		for path != "" {
			status, body := consoleDo(t, w.cp.PublicURL(), "GET", path, w.aliceSession, nil)
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d", path, status)
			}
			pages++
			for _, m := range regexp.MustCompile(`test obj(\d\d)<`).FindAllStringSubmatch(body, -1) {
				seen[m[1]]++
			}
			path = ""
			if m := regexp.MustCompile(`href="([^"]+)" data-testid="audit-older"`).FindStringSubmatch(body); m != nil {
				path = html.UnescapeString(m[1])
			}
			if pages > 10 {
				t.Fatal("the pages do not end")
			}
		}
		return seen, pages
	}
	if seen, pages := collect("/audit?action=test"); len(seen) != 0 || pages != 1 {
		t.Fatalf("an action nobody did: %d events, %d pages", len(seen), pages)
	}
	seen, pages := collect("/audit?actor=robot")
	if len(seen) != n/2 || pages != 1 {
		t.Fatalf("by actor: %d events on %d pages, want %d on 1", len(seen), pages, n/2)
	}
	seen, pages = collect("/audit?action=" + url.QueryEscape("upstream."))
	if len(seen) != n/2 || pages != 1 {
		t.Fatalf("by action prefix: %d events on %d pages, want %d on 1", len(seen), pages, n/2)
	}
	seen, pages = collect("/audit")
	for i := range n {
		if c := seen[fmt.Sprintf("%02d", i)]; c != 1 {
			t.Errorf("obj%02d shown %d times over %d pages", i, c, pages)
		}
	}
	if pages < 2 {
		t.Fatalf("%d pages for more than one page of events", pages)
	}
}
