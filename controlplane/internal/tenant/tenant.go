// Package tenant manages a tenant's configuration: the tenant itself, its
// gateways and their enrollment tokens, upstreams and virtual servers.
package tenant

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/gateway"
	enttenant "github.com/portcullis-mcp/portcullis/ent/tenant"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
)

// ErrNotFound is returned when an object does not exist in the tenant.
var ErrNotFound = errors.New("not found")

// Notifier is told when a gateway's policy inputs changed.
type Notifier interface {
	GatewayChanged(ctx context.Context, gatewayID uuid.UUID) error
}

// Service manages tenant configuration.
type Service struct {
	db     *ent.Client
	notify Notifier
	log    *slog.Logger
}

// New returns a Service.
func New(db *ent.Client, notify Notifier, log *slog.Logger) (*Service, error) {
	if db == nil || notify == nil {
		return nil, errors.New("tenant.New: db and notifier are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, notify: notify, log: log.With("component", "tenant")}, nil
}

// CreateTenant creates a tenant with a fresh bundle-signing key.
func (s *Service) CreateTenant(ctx context.Context, name, slug string) (*ent.Tenant, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	t, err := s.db.Tenant.Create().SetName(name).SetSlug(slug).
		SetSigningPrivateKey(priv.Seed()).SetSigningPublicKey(pub).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating tenant %q: %w", slug, err)
	}
	return t, nil
}

// TenantBySlug finds a tenant.
func (s *Service) TenantBySlug(ctx context.Context, slug string) (*ent.Tenant, error) {
	t, err := s.db.Tenant.Query().Where(enttenant.Slug(slug)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("tenant %q: %w", slug, ErrNotFound)
	}
	return t, err
}

// CreateGateway creates a gateway (deployment group) in a tenant.
func (s *Service) CreateGateway(ctx context.Context, tenantID uuid.UUID, name string) (*ent.Gateway, error) {
	g, err := s.db.Gateway.Create().SetTenantID(tenantID).SetName(name).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating gateway %q: %w", name, err)
	}
	return g, s.notify.GatewayChanged(ctx, g.ID)
}

// Gateway returns a gateway of the tenant.
func (s *Service) Gateway(ctx context.Context, tenantID, gatewayID uuid.UUID) (*ent.Gateway, error) {
	g, err := s.db.Gateway.Query().Where(gateway.TenantID(tenantID), gateway.ID(gatewayID)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("gateway %s: %w", gatewayID, ErrNotFound)
	}
	return g, err
}

// CreateEnrollmentToken issues a one-time secret for enrolling an agent into
// the gateway. Only its hash is stored; the secret is returned once.
func (s *Service) CreateEnrollmentToken(ctx context.Context, tenantID, gatewayID uuid.UUID, ttl time.Duration) (string, error) {
	if _, err := s.Gateway(ctx, tenantID, gatewayID); err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > 30*24*time.Hour {
		return "", fmt.Errorf("enrollment token lifetime %s must be between 0 and 30 days", ttl)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	_, err := s.db.EnrollmentToken.Create().SetTenantID(tenantID).SetGatewayID(gatewayID).
		SetSecretHash(HashSecret(secret)).SetExpiresAt(time.Now().Add(ttl)).Save(ctx)
	if err != nil {
		return "", fmt.Errorf("storing enrollment token: %w", err)
	}
	return secret, nil
}

// HashSecret is how enrollment secrets are stored.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// UpstreamSpec describes an upstream MCP server.
type UpstreamSpec struct {
	Name      string
	Transport string // "streamable_http" or "stdio"
	URL       string
	Command   string
	Args      []string
	Labels    map[string]string
}

func (u UpstreamSpec) validate() error {
	switch u.Transport {
	case upstream.TransportStreamableHTTP.String():
		pu, err := url.Parse(u.URL)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("upstream %q: URL %q must be an absolute http(s) URL", u.Name, u.URL)
		}
		if u.Command != "" {
			return fmt.Errorf("upstream %q: a streamable_http upstream takes a URL, not a command", u.Name)
		}
	case upstream.TransportStdio.String():
		if u.Command == "" {
			return fmt.Errorf("upstream %q: a stdio upstream needs a command", u.Name)
		}
		if u.URL != "" {
			return fmt.Errorf("upstream %q: a stdio upstream takes a command, not a URL", u.Name)
		}
	default:
		return fmt.Errorf("upstream %q: transport %q must be streamable_http or stdio", u.Name, u.Transport)
	}
	if len(u.Args) > 64 {
		return fmt.Errorf("upstream %q: at most 64 arguments", u.Name)
	}
	return nil
}

// CreateUpstream registers an upstream MCP server on a gateway.
func (s *Service) CreateUpstream(ctx context.Context, tenantID, gatewayID uuid.UUID, spec UpstreamSpec) (*ent.Upstream, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if _, err := s.Gateway(ctx, tenantID, gatewayID); err != nil {
		return nil, err
	}
	u, err := s.db.Upstream.Create().SetTenantID(tenantID).SetGatewayID(gatewayID).
		SetName(spec.Name).SetTransport(upstream.Transport(spec.Transport)).SetURL(spec.URL).
		SetCommand(spec.Command).SetArgs(spec.Args).SetLabels(spec.Labels).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating upstream %q: %w", spec.Name, err)
	}
	return u, s.notify.GatewayChanged(ctx, gatewayID)
}

// CreateVirtualServer creates an endpoint aggregating upstreams of the gateway.
func (s *Service) CreateVirtualServer(ctx context.Context, tenantID, gatewayID uuid.UUID, name string, upstreams []string) (*ent.VirtualServer, error) {
	n, err := s.db.Upstream.Query().Where(upstream.GatewayID(gatewayID), upstream.TenantID(tenantID), upstream.NameIn(upstreams...)).Count(ctx)
	if err != nil {
		return nil, err
	}
	if n != len(upstreams) {
		return nil, fmt.Errorf("virtual server %q: some of the upstreams %v do not exist on this gateway", name, upstreams)
	}
	vs, err := s.db.VirtualServer.Create().SetTenantID(tenantID).SetGatewayID(gatewayID).
		SetName(name).SetUpstreams(upstreams).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating virtual server %q: %w", name, err)
	}
	return vs, s.notify.GatewayChanged(ctx, gatewayID)
}
