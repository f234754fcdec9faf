// Package policy compiles a gateway's configuration and pins into a signed
// PolicyBundle, keeps the version history, and signals the agent streams.
package policy

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/metrics"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/accessrule"
	"github.com/portcullis-mcp/portcullis/ent/clientkey"
	"github.com/portcullis-mcp/portcullis/ent/connection"
	"github.com/portcullis-mcp/portcullis/ent/gateway"
	"github.com/portcullis-mcp/portcullis/ent/policyversion"
	"github.com/portcullis-mcp/portcullis/ent/tenant"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/toolversion"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ent/virtualserver"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Service compiles and serves policy bundles.
type Service struct {
	db     *ent.Client
	kek    keyring.KEK // opens tenants' signing keys
	broker Broker
	log    *slog.Logger
	now    func() time.Time
	mu     sync.Mutex // serialises compiles within this replica
}

// New returns a Service.
func New(db *ent.Client, broker Broker, kek keyring.KEK, log *slog.Logger) (*Service, error) {
	if db == nil || broker == nil || kek == nil {
		return nil, errors.New("policy.New: db, broker and key-encryption key are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, kek: kek, broker: broker, log: log.With("component", "policy"), now: time.Now}, nil
}

// KeyID names a signing key by its public half.
func KeyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GatewayChanged recompiles the gateway's bundle and, when its content
// changed, stores a new version and signals the gateway's agents.
func (s *Service) GatewayChanged(ctx context.Context, gatewayID uuid.UUID) error {
	ctx = viewer.System(ctx) // compilation is a system job; callers checked the caller's role
	changed, err := s.Compile(ctx, gatewayID)
	if ent.IsNotFound(err) {
		// Deleted: its agents' streams hear it and close.
		s.broker.Publish(gatewayID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("compiling policy for gateway %s: %w", gatewayID, err)
	}
	if changed != nil {
		s.broker.Publish(gatewayID)
	}
	return nil
}

// AgentsChanged signals the gateway's agent streams, on every replica, to
// check that their agent may still be served (it was revoked).
func (s *Service) AgentsChanged(_ context.Context, gatewayID uuid.UUID) error {
	s.broker.Publish(gatewayID)
	return nil
}

// Compile builds the gateway's bundle; it returns the new version, or nil
// when the content is the same as the latest version's.
func (s *Service) Compile(ctx context.Context, gatewayID uuid.UUID) (*ent.PolicyVersion, error) {
	ctx = viewer.System(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	gw, err := s.db.Gateway.Query().Where(gateway.ID(gatewayID)).WithTenant().Only(ctx)
	if err != nil {
		return nil, err
	}
	b, err := s.content(ctx, gw)
	if err != nil {
		return nil, err
	}
	if next := gw.Edges.Tenant.NextSigningPublicKey; next != nil && len(*next) > 0 {
		b.NextPolicyPublicKey = *next // a rotation: announced under the current key
	}
	content, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(content)
	contentHash := hex.EncodeToString(sum[:])
	latest, err := s.latest(ctx, gatewayID)
	if err != nil && !ent.IsNotFound(err) {
		return nil, err
	}
	var version uint64 = 1
	if latest != nil {
		if latest.ContentSha256 == contentHash {
			return nil, nil
		}
		version = latest.Version + 1
	}
	b.Version = version
	b.IssuedAt = timestamppb.New(s.now())
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
	if err != nil {
		return nil, err
	}
	priv, err := keyring.TenantKey(s.kek, gw.TenantID, gw.Edges.Tenant.SigningPrivateKey)
	if err != nil {
		return nil, err
	}
	pv, err := s.db.PolicyVersion.Create().SetTenantID(gw.TenantID).SetGatewayID(gw.ID).SetVersion(version).
		SetContentSha256(contentHash).SetPayload(payload).SetSignature(ed25519.Sign(priv, payload)).
		SetKeyID(KeyID(gw.Edges.Tenant.SigningPublicKey)).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("storing policy version %d: %w", version, err)
	}
	metrics.PolicyCompiles.Inc()
	s.log.Info("policy compiled", "gateway", gw.ID, "version", version, "pins", len(b.ToolPins))
	return pv, nil
}

func (s *Service) latest(ctx context.Context, gatewayID uuid.UUID) (*ent.PolicyVersion, error) {
	return s.db.PolicyVersion.Query().Where(policyversion.GatewayID(gatewayID)).
		Order(policyversion.ByVersion(sql.OrderDesc())).First(ctx)
}

// Latest returns the newest signed bundle of a gateway, compiling the first one if needed.
func (s *Service) Latest(ctx context.Context, gatewayID uuid.UUID) (*agentv1.SignedBundle, uint64, error) {
	ctx = viewer.System(ctx)
	pv, err := s.latest(ctx, gatewayID)
	if ent.IsNotFound(err) {
		if pv, err = s.Compile(ctx, gatewayID); err == nil && pv == nil {
			pv, err = s.latest(ctx, gatewayID)
		}
	}
	if err != nil {
		return nil, 0, err
	}
	return &agentv1.SignedBundle{Payload: pv.Payload, Signature: pv.Signature, KeyId: pv.KeyID}, pv.Version, nil
}

var resultActions = map[tenant.ResultAction]agentv1.ResultAction{
	tenant.ResultActionAnnotate: agentv1.ResultAction_RESULT_ACTION_ANNOTATE,
	tenant.ResultActionRedact:   agentv1.ResultAction_RESULT_ACTION_REDACT,
	tenant.ResultActionBlock:    agentv1.ResultAction_RESULT_ACTION_BLOCK,
}

// content gathers everything but version and issue time, in a stable order.
func (s *Service) content(ctx context.Context, gw *ent.Gateway) (*agentv1.PolicyBundle, error) {
	b := &agentv1.PolicyBundle{TenantId: gw.TenantID.String(), GatewayId: gw.ID.String()}
	if gw.Edges.Tenant != nil {
		b.ResultScanning = &agentv1.ResultScanning{Action: resultActions[gw.Edges.Tenant.ResultAction]}
	}
	b.ClientAuth = &agentv1.ClientAuth{Required: gw.ClientAuthRequired}
	if gw.Edges.Tenant != nil {
		b.ClientAuth.OidcIssuer, b.ClientAuth.GroupClaim = gw.Edges.Tenant.ClientOidcIssuer, gw.Edges.Tenant.ClientGroupClaim
	}
	b.RateLimits = &agentv1.RateLimits{PrincipalPerMinute: uint32(gw.RatePrincipalPerMinute), ToolPerMinute: uint32(gw.RateToolPerMinute)}
	keys, err := s.db.ClientKey.Query().Where(clientkey.TenantID(gw.TenantID), clientkey.RevokedAtIsNil()).Order(clientkey.ByName()).All(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		b.ClientAuth.Keys = append(b.ClientAuth.Keys, &agentv1.ClientKey{Sha256: k.SecretHash, Principal: "apikey:" + k.Name, Groups: k.Groups})
	}
	rules, err := s.db.AccessRule.Query().Where(accessrule.GatewayID(gw.ID)).Order(accessrule.ByPosition(), accessrule.ByCreatedAt()).All(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		effect := agentv1.Effect_EFFECT_ALLOW
		if r.Effect == accessrule.EffectDeny {
			effect = agentv1.Effect_EFFECT_DENY
		}
		b.AccessRules = append(b.AccessRules, &agentv1.AccessRule{Id: r.ID.String(), Principal: r.Principal, VirtualServer: r.VirtualServer,
			ToolPattern: r.ToolPattern, Effect: effect, Condition: r.Condition})
	}
	ups, err := s.db.Upstream.Query().Where(upstream.GatewayID(gw.ID)).Order(upstream.ByName()).All(ctx)
	if err != nil {
		return nil, err
	}
	names := map[uuid.UUID]string{}
	for _, u := range ups {
		names[u.ID] = u.Name
		pu := &agentv1.Upstream{Id: u.ID.String(), Name: u.Name, Url: u.URL, Command: u.Command, Args: u.Args, Labels: u.Labels,
			CredentialRef: u.CredentialRef, CredentialHeader: u.CredentialHeader}
		if u.DenySampling || u.DenyElicitation || u.DenyRoots {
			pu.ServerRequests = &agentv1.ServerRequests{DenySampling: u.DenySampling, DenyElicitation: u.DenyElicitation, DenyRoots: u.DenyRoots}
		}
		if mode := authModes[u.AuthMode]; mode != agentv1.AuthMode_AUTH_MODE_UNSPECIFIED {
			pu.Auth = &agentv1.UpstreamAuth{Mode: mode, ClientId: u.OauthClientID, ClientSecretRef: u.OauthClientSecretRef,
				Scopes: u.OauthScopes, Issuer: u.OauthIssuer, Resource: u.OauthResource}
		}
		switch u.Transport {
		case upstream.TransportStreamableHTTP:
			pu.Transport = agentv1.Transport_TRANSPORT_STREAMABLE_HTTP
		case upstream.TransportStdio:
			pu.Transport = agentv1.Transport_TRANSPORT_STDIO
		case upstream.TransportPackage:
			pu.Transport = agentv1.Transport_TRANSPORT_PACKAGE
			pu.Package = &agentv1.Package{Ecosystem: u.PackageEcosystem, Name: u.PackageName, Version: u.PackageVersion,
				Integrity: u.PackageIntegrity, Bin: u.PackageBin}
		}
		b.Upstreams = append(b.Upstreams, pu)
	}
	// Revocations live as long as a grant can (30 days unused); the gateway
	// deletes grants made at or before each.
	revoked, err := s.db.Connection.Query().Where(connection.GatewayID(gw.ID), connection.RevokedAtGT(time.Now().Add(-31*24*time.Hour))).
		Order(connection.ByUpstream(), connection.ByPrincipal()).All(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range revoked {
		b.GrantRevocations = append(b.GrantRevocations, &agentv1.GrantRevocation{Upstream: c.Upstream, Principal: c.Principal, RevokedAt: timestamppb.New(*c.RevokedAt)})
	}
	vss, err := s.db.VirtualServer.Query().Where(virtualserver.GatewayID(gw.ID)).Order(virtualserver.ByName()).All(ctx)
	if err != nil {
		return nil, err
	}
	for _, vs := range vss {
		v := &agentv1.VirtualServer{Name: vs.Name, Upstreams: vs.Upstreams, Unprefixed: vs.Unprefixed}
		for _, r := range vs.Renames {
			v.Renames = append(v.Renames, &agentv1.ToolRename{Upstream: r.Upstream, Tool: r.Tool, Name: r.Name})
		}
		b.VirtualServers = append(b.VirtualServers, v)
	}
	if len(ups) > 0 {
		ids := make([]uuid.UUID, 0, len(ups))
		for _, u := range ups {
			ids = append(ids, u.ID)
		}
		tools, err := s.db.Tool.Query().Where(tool.UpstreamIDIn(ids...), tool.PinnedSha256NEQ("")).All(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range tools {
			v, err := s.db.ToolVersion.Query().Where(toolversion.ToolID(t.ID), toolversion.Sha256(t.PinnedSha256)).Only(ctx)
			if err != nil {
				return nil, fmt.Errorf("pinned version of tool %q: %w", t.Name, err)
			}
			pin := &agentv1.ToolPin{Upstream: names[t.UpstreamID], Tool: t.Name, Sha256: t.PinnedSha256, Definition: v.Definition, FlowLabels: t.FlowLabels}
			switch t.Kind {
			case tool.KindPrompt:
				b.PromptPins = append(b.PromptPins, pin)
			case tool.KindResource:
				b.ResourcePins = append(b.ResourcePins, pin)
			case tool.KindResourceTemplate:
				b.ResourceTemplatePins = append(b.ResourceTemplatePins, pin)
			case tool.KindPackage:
				b.PackagePins = append(b.PackagePins, pin)
			default:
				b.ToolPins = append(b.ToolPins, pin)
			}
		}
		for _, pins := range [][]*agentv1.ToolPin{b.ToolPins, b.PromptPins, b.ResourcePins, b.ResourceTemplatePins, b.PackagePins} {
			sort.Slice(pins, func(i, j int) bool {
				if pins[i].Upstream != pins[j].Upstream {
					return pins[i].Upstream < pins[j].Upstream
				}
				return pins[i].Tool < pins[j].Tool
			})
		}
	}
	return b, nil
}

// authModes maps an upstream's stored authorization mode to the bundle's.
var authModes = map[upstream.AuthMode]agentv1.AuthMode{
	upstream.AuthModeNone:          agentv1.AuthMode_AUTH_MODE_NONE,
	upstream.AuthModeOauthUser:     agentv1.AuthMode_AUTH_MODE_OAUTH_USER,
	upstream.AuthModeTokenExchange: agentv1.AuthMode_AUTH_MODE_TOKEN_EXCHANGE,
}
