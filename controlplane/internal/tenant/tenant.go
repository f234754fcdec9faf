// Package tenant manages a tenant's configuration: the tenant itself, its
// gateways and their enrollment tokens, upstreams and virtual servers.
package tenant

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/bound"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/approval"
	"github.com/portcullis-mcp/portcullis/ent/catalogentry"
	"github.com/portcullis-mcp/portcullis/ent/changerequest"
	"github.com/portcullis-mcp/portcullis/ent/gateway"
	"github.com/portcullis-mcp/portcullis/ent/membership"
	"github.com/portcullis-mcp/portcullis/ent/policyversion"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	enttenant "github.com/portcullis-mcp/portcullis/ent/tenant"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/toolversion"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ent/virtualserver"
)

// ErrNotFound is returned when an object does not exist in the tenant.
var ErrNotFound = authz.ErrNotFound

// PolicyNotifier is told when a gateway's configuration changed, so that
// its policy is compiled again and pushed.
type PolicyNotifier interface {
	GatewayChanged(ctx context.Context, gatewayID uuid.UUID) error
}

// Notifier is told when a gateway's policy inputs changed.
type Notifier interface {
	PolicyNotifier
	// AgentsChanged says an agent of the gateway was revoked: its streams
	// check whom they serve, whether or not the policy changed.
	AgentsChanged(ctx context.Context, gatewayID uuid.UUID) error
}

// Service manages tenant configuration.
type Service struct {
	db     *ent.Client
	notify Notifier
	kek    keyring.KEK
	log    *slog.Logger
}

// New returns a Service.
// Tenants' signing keys are sealed with kek.
func New(db *ent.Client, notify Notifier, kek keyring.KEK, log *slog.Logger) (*Service, error) {
	if db == nil || notify == nil || kek == nil {
		return nil, errors.New("tenant.New: db, notifier and key-encryption key are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, notify: notify, kek: kek, log: log.With("component", "tenant")}, nil
}

// CreateTenant creates a tenant with a fresh bundle-signing key and, when
// owner is set, makes that user its owner. Anyone logged in may create a
// tenant, so it runs as a system job; the audit event names the caller.
func (s *Service) CreateTenant(ctx context.Context, name, slug string, owner uuid.UUID) (*ent.Tenant, error) {
	if !slugRE.MatchString(slug) {
		return nil, authz.Invalid("tenant slug %q must be 2 to 63 lower-case letters, digits or hyphens, starting with a letter", slug)
	}
	if name = strings.TrimSpace(name); name == "" || len(name) > 200 {
		return nil, authz.Invalid("tenant name must be 1 to 200 characters")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	id := uuid.New()
	sealed, err := keyring.SealTenantKey(s.kek, id, priv.Seed())
	if err != nil {
		return nil, fmt.Errorf("sealing signing key: %w", err)
	}
	sys := viewer.System(ctx)
	var t *ent.Tenant
	err = audit.WithTx(sys, s.db, func(tx *ent.Client) error {
		var err error
		t, err = tx.Tenant.Create().SetID(id).SetName(name).SetSlug(slug).
			SetSigningPrivateKey(sealed).SetSigningPublicKey(pub).Save(sys)
		if err != nil {
			return authz.DBError(fmt.Sprintf("creating tenant %q", slug), err)
		}
		if owner != uuid.Nil {
			if err := tx.Membership.Create().SetTenantID(t.ID).SetUserID(owner).SetRole(membership.RoleOwner).Exec(sys); err != nil {
				return authz.DBError("adding the owner", err)
			}
		}
		return audit.Record(sys, tx, audit.Event{TenantID: t.ID, Action: "tenant.create", TargetType: "tenant",
			TargetID: t.ID.String(), TargetName: slug, After: t})
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

var slugRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)

// Tenant returns the tenant itself.
func (s *Service) Tenant(ctx context.Context, tenantID uuid.UUID) (*ent.Tenant, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	t, err := s.db.Tenant.Get(ctx, tenantID)
	return t, authz.DBError("tenant", err)
}

// TenantBySlug finds a tenant; it is for system jobs such as seeding.
func (s *Service) TenantBySlug(ctx context.Context, slug string) (*ent.Tenant, error) {
	t, err := s.db.Tenant.Query().Where(enttenant.Slug(slug)).Only(viewer.System(ctx))
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("tenant %q: %w", slug, ErrNotFound)
	}
	return t, err
}

// CreateGateway creates a gateway (deployment group) in a tenant.
func (s *Service) CreateGateway(ctx context.Context, tenantID uuid.UUID, name string) (*ent.Gateway, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	if !nameRE.MatchString(name) {
		return nil, authz.Invalid("gateway name %q must be 1 to 63 letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	var g *ent.Gateway
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		var err error
		if g, err = tx.Gateway.Create().SetTenantID(tenantID).SetName(name).Save(ctx); err != nil {
			return authz.DBError(fmt.Sprintf("creating gateway %q", name), err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "gateway.create", TargetType: "gateway",
			TargetID: g.ID.String(), TargetName: name, After: g})
	})
	if err != nil {
		return nil, err
	}
	return g, s.notify.GatewayChanged(ctx, g.ID)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// Gateways lists the tenant's gateways with their agents.
func (s *Service) Gateways(ctx context.Context, tenantID uuid.UUID) ([]*ent.Gateway, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	return s.db.Gateway.Query().Where(gateway.TenantID(tenantID)).
		WithAgents(func(q *ent.AgentQuery) { q.Order(ent.Desc(agent.FieldLastSeen)) }).
		Order(ent.Asc(gateway.FieldName)).All(ctx)
}

// Gateway returns a gateway of the tenant.
// The gateway comes with its agents, upstreams and virtual servers.
func (s *Service) Gateway(ctx context.Context, tenantID, gatewayID uuid.UUID) (*ent.Gateway, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	g, err := s.db.Gateway.Query().Where(gateway.TenantID(tenantID), gateway.ID(gatewayID)).
		WithAgents(func(q *ent.AgentQuery) { q.Order(ent.Desc(agent.FieldLastSeen)) }).
		WithUpstreams(func(q *ent.UpstreamQuery) { q.Order(ent.Asc(upstream.FieldName)) }).
		WithVirtualServers().Only(ctx)
	return g, authz.DBError(fmt.Sprintf("gateway %s", gatewayID), err)
}

// MaxEnrollmentUses bounds how many agents one enrollment token may enroll.
const MaxEnrollmentUses = 1000

// CreateEnrollmentToken issues a secret for enrolling up to uses agents into
// the gateway. Only its hash is stored; the secret is returned once.
func (s *Service) CreateEnrollmentToken(ctx context.Context, tenantID, gatewayID uuid.UUID, ttl time.Duration, uses int) (string, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return "", err
	}
	g, err := s.Gateway(ctx, tenantID, gatewayID)
	if err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > 30*24*time.Hour {
		return "", authz.Invalid("enrollment token lifetime %s must be between 0 and 30 days", ttl)
	}
	if uses < 1 || uses > MaxEnrollmentUses {
		return "", authz.Invalid("an enrollment token enrolls between 1 and %d agents, not %d", MaxEnrollmentUses, uses)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		tok, err := tx.EnrollmentToken.Create().SetTenantID(tenantID).SetGatewayID(gatewayID).
			SetSecretHash(HashSecret(secret)).SetExpiresAt(time.Now().Add(ttl)).SetMaxUses(uses).Save(ctx)
		if err != nil {
			return fmt.Errorf("storing enrollment token: %w", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "enrollment_token.create", TargetType: "gateway",
			TargetID: gatewayID.String(), TargetName: g.Name, After: map[string]any{"token_id": tok.ID, "expires_at": tok.ExpiresAt, "max_uses": uses}})
	})
	if err != nil {
		return "", err
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
	// CredentialRef says where gateways find the upstream's credential:
	// "env:NAME" or "file:/path". CredentialHeader carries it (default
	// Authorization, sent as "Bearer <secret>").
	CredentialRef, CredentialHeader string
	// What the upstream may not ask of clients; everything is allowed by default.
	DenySampling, DenyElicitation, DenyRoots bool
	// Package is what a "package" upstream runs.
	Package PackageSpec
	// CatalogEntry, "NAME" or "NAME@VERSION", is the approved catalog entry
	// that gives the transport, URL, package and arguments.
	CatalogEntry string
	// Auth says whose credential the gateway's requests for a client carry.
	Auth AuthSpec
}

// AuthSpec is an upstream's authorization mode: "static" (the default:
// CredentialRef for everybody), "none", "oauth_user" (each person's own
// OAuth token, granted once through the gateway's consent link) or
// "token_exchange" (RFC 8693 at the identity provider). The OAuth client,
// scopes, issuer and resource serve the per-person modes.
type AuthSpec struct {
	Mode, ClientID, ClientSecretRef, Issuer, Resource string
	Scopes                                            []string
}

// AuthModes are the values of AuthSpec.Mode.
var AuthModes = []string{"static", "none", "oauth_user", "token_exchange"}

var scopeRE = regexp.MustCompile(`^[\x21\x23-\x5b\x5d-\x7e]{1,128}$`) // RFC 6749 scope-token

func (a AuthSpec) validate(transport string) error {
	perPerson := a.Mode == "oauth_user" || a.Mode == "token_exchange"
	switch {
	case a.Mode != "" && !slices.Contains(AuthModes, a.Mode):
		return fmt.Errorf("authorization mode %q: use %s", a.Mode, strings.Join(AuthModes, ", "))
	case perPerson && transport != upstream.TransportStreamableHTTP.String():
		return fmt.Errorf("authorization mode %s needs a streamable_http upstream", a.Mode)
	case !perPerson && (a.ClientID != "" || a.ClientSecretRef != "" || a.Issuer != "" || a.Resource != "" || len(a.Scopes) > 0):
		return errors.New("an OAuth client, scopes, issuer or resource need the authorization mode oauth_user or token_exchange")
	case a.Mode == "token_exchange" && a.ClientID == "":
		return errors.New("token_exchange needs the gateway's OAuth client id at the identity provider")
	case a.ClientSecretRef != "" && !credentialRefRE.MatchString(a.ClientSecretRef):
		return fmt.Errorf("OAuth client secret reference %q must be env:NAME or file:/absolute/path", a.ClientSecretRef)
	case len(a.ClientID) > 256:
		return errors.New("OAuth client id: at most 256 bytes")
	case len(a.Scopes) > 32:
		return errors.New("at most 32 OAuth scopes")
	}
	for _, sc := range a.Scopes {
		if !scopeRE.MatchString(sc) {
			return fmt.Errorf("OAuth scope %q is not a scope token", bound.String(sc, 130))
		}
	}
	for _, u := range []string{a.Issuer, a.Resource} {
		if u != "" && (!httpURL(u) || len(u) > 1024) {
			return fmt.Errorf("%q must be an absolute http(s) URL", bound.String(u, 300))
		}
	}
	return nil
}

// httpURL reports whether s is an absolute http or https URL.
func httpURL(s string) bool {
	pu, err := url.Parse(s)
	return err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != ""
}

// PackageSpec is an MCP server package at an exact version with the
// integrity of its archive, which gateways check before they run it.
type PackageSpec struct {
	Ecosystem, Name, Version, Integrity string
	// Bin is its executable, a key of package.json "bin"; "" for its only one.
	Bin string
}

var (
	// npm's rules for package names; an exact semantic version (no range, no tag).
	packageNameRE    = regexp.MustCompile(`^(@[a-z0-9-~][a-z0-9-._~]*/)?[a-z0-9-~][a-z0-9-._~]*$`)
	packageVersionRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

// ParsePackageRef reads "ECOSYSTEM:NAME@VERSION", as the CLI and the
// console take a package; Validate checks the parts.
func ParsePackageRef(ref string) (PackageSpec, error) {
	eco, nameVersion, ok := strings.Cut(strings.TrimSpace(ref), ":")
	at := strings.LastIndex(nameVersion, "@")
	if !ok || at <= 0 {
		return PackageSpec{}, fmt.Errorf("package %q: give ECOSYSTEM:NAME@VERSION, e.g. npm:@modelcontextprotocol/server-everything@2026.8.31", bound.String(ref, 300))
	}
	return PackageSpec{Ecosystem: eco, Name: nameVersion[:at], Version: nameVersion[at+1:]}, nil
}

// Validate checks an npm package's name, exact version, integrity and
// executable, or a Go module's (validateGo).
func (p PackageSpec) Validate() error {
	if p.Ecosystem == "go" {
		return p.validateGo()
	}
	if p.Ecosystem != "npm" {
		return fmt.Errorf("package ecosystem %q: npm packages and Go modules (go) are supported", p.Ecosystem)
	}
	if len(p.Name) > 214 || !packageNameRE.MatchString(p.Name) {
		return fmt.Errorf("package name %q is not an npm package name", p.Name)
	}
	if len(p.Version) > 128 || !packageVersionRE.MatchString(p.Version) {
		return fmt.Errorf("package version %q: give an exact version (1.2.3), not a range or a tag", p.Version)
	}
	b64, ok := strings.CutPrefix(p.Integrity, "sha512-")
	if digest, err := base64.StdEncoding.DecodeString(b64); !ok || err != nil || len(digest) != sha512.Size {
		return fmt.Errorf("package integrity %q: give the archive's sha512-<base64> (npm view %s@%s dist.integrity)", p.Integrity, p.Name, p.Version)
	}
	if len(p.Bin) > 214 || strings.ContainsAny(p.Bin, "/\\\x00") {
		return fmt.Errorf("package executable %q is not a name", p.Bin)
	}
	return nil
}

// validateGo checks a Go module: its path, an exact version, its go.sum
// hash, and the directory of its main package.
func (p PackageSpec) validateGo() error {
	if err := module.CheckPath(p.Name); err != nil {
		return fmt.Errorf("module path %q: %v", p.Name, err)
	}
	if !semver.IsValid(p.Version) || semver.Canonical(p.Version) != p.Version && !strings.HasSuffix(p.Version, "+incompatible") || module.Check(p.Name, p.Version) != nil {
		return fmt.Errorf("module version %q: give an exact version of %s (v1.2.3)", p.Version, p.Name)
	}
	b64, ok := strings.CutPrefix(p.Integrity, "h1:")
	if digest, err := base64.StdEncoding.DecodeString(b64); !ok || err != nil || len(digest) != 32 {
		return fmt.Errorf("module hash %q: give its go.sum hash, h1:<base64> (go mod download -json %s@%s)", p.Integrity, p.Name, p.Version)
	}
	if p.Bin != "" {
		if c := path.Clean(p.Bin); c != p.Bin || path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") || module.CheckImportPath(p.Name+"/"+c) != nil {
			return fmt.Errorf("module package %q: give the directory of its main package within the module (cmd/server)", p.Bin)
		}
	}
	return nil
}

var (
	credentialRefRE    = regexp.MustCompile(`^(env:[A-Za-z_][A-Za-z0-9_]{0,127}|file:/[^\x00-\x1f]{1,1000})$`)
	credentialHeaderRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

// Validate checks the spec as CreateUpstream does.
func (u UpstreamSpec) Validate() error {
	switch u.Transport {
	case upstream.TransportStreamableHTTP.String():
		if !httpURL(u.URL) {
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
	case upstream.TransportPackage.String():
		if u.URL != "" || u.Command != "" {
			return fmt.Errorf("upstream %q: a package upstream takes a package, not a URL or a command", u.Name)
		}
		if err := u.Package.Validate(); err != nil {
			return fmt.Errorf("upstream %q: %w", u.Name, err)
		}
	default:
		return fmt.Errorf("upstream %q: transport %q must be streamable_http, stdio or package", u.Name, u.Transport)
	}
	if u.Transport != upstream.TransportPackage.String() && u.Package != (PackageSpec{}) {
		return fmt.Errorf("upstream %q: only a package upstream takes a package", u.Name)
	}
	if len(u.Args) > 64 {
		return fmt.Errorf("upstream %q: at most 64 arguments", u.Name)
	}
	if u.CredentialRef != "" && !credentialRefRE.MatchString(u.CredentialRef) {
		return fmt.Errorf("upstream %q: credential reference %q must be env:NAME or file:/absolute/path; put the secret itself in the gateway's environment or a file, never here", u.Name, u.CredentialRef)
	}
	if u.CredentialHeader != "" && (u.CredentialRef == "" || !credentialHeaderRE.MatchString(u.CredentialHeader)) {
		return fmt.Errorf("upstream %q: credential header %q must be a header name, given with a credential reference", u.Name, u.CredentialHeader)
	}
	if u.Transport != upstream.TransportStreamableHTTP.String() && (!strings.HasPrefix(u.CredentialRef, "env:") && u.CredentialRef != "" || u.CredentialHeader != "") {
		return fmt.Errorf("upstream %q: a stdio command's credential is a variable of the gateway's environment it is given (env:NAME), without a header", u.Name)
	}
	if err := u.Auth.validate(u.Transport); err != nil {
		return fmt.Errorf("upstream %q: %w", u.Name, err)
	}
	return nil
}

// authMode is the stored mode of a spec ("" is static).
func (a AuthSpec) authMode() upstream.AuthMode {
	if a.Mode == "" {
		return upstream.AuthModeStatic
	}
	return upstream.AuthMode(a.Mode)
}

// fromCatalog fills what spec runs from its approved catalog entry, if it
// names one: its transport, URL, package and arguments, and the header or
// variable that carries its one secret. A tenant that runs only catalog
// servers refuses a spec that names none.
func (s *Service) fromCatalog(ctx context.Context, tenantID uuid.UUID, spec *UpstreamSpec) error {
	if spec.CatalogEntry == "" {
		tn, err := s.db.Tenant.Get(ctx, tenantID)
		if err != nil {
			return authz.DBError("tenant", err)
		}
		if tn.CatalogOnly {
			return authz.Invalid("this tenant runs only servers from its approved catalog: add the upstream from a catalog entry (portcullis catalog list); an owner can change that")
		}
		return nil
	}
	name, version, _ := strings.Cut(spec.CatalogEntry, "@")
	q := s.db.CatalogEntry.Query().Where(catalogentry.TenantID(tenantID), catalogentry.Name(name), catalogentry.StatusEQ(catalogentry.StatusApproved))
	if version != "" {
		q = q.Where(catalogentry.Version(version))
	}
	e, err := q.Order(ent.Desc(catalogentry.FieldDecidedAt)).First(ctx)
	if ent.IsNotFound(err) {
		return authz.Invalid("the catalog has no approved entry %q (portcullis catalog list)", bound.String(spec.CatalogEntry, 460))
	} else if err != nil {
		return err
	}
	spec.CatalogEntry = e.Name + "@" + e.Version
	spec.Transport, spec.URL, spec.Command, spec.Args = e.Transport.String(), e.URL, "", e.Args
	spec.Package = PackageSpec{Ecosystem: e.PackageEcosystem, Name: e.PackageName, Version: e.PackageVersion, Integrity: e.PackageIntegrity, Bin: e.PackageBin}
	var secrets []schematype.CatalogCredential
	for _, c := range e.Credentials {
		if c.Secret && c.Required {
			secrets = append(secrets, c)
		}
	}
	switch {
	case len(secrets) > 1:
		return authz.Invalid("catalog entry %s needs %d secrets; an upstream carries one credential", spec.CatalogEntry, len(secrets))
	case len(secrets) == 0:
	case secrets[0].Kind == "env":
		// The server reads the variable by its name; the gateway passes it on under the name its reference gives.
		want := "env:" + secrets[0].Name
		if spec.CredentialRef == "" {
			spec.CredentialRef = want
		} else if spec.CredentialRef != want {
			return authz.Invalid("catalog entry %s reads its secret from %s: use the credential %s", spec.CatalogEntry, secrets[0].Name, want)
		}
	default:
		if spec.CredentialRef == "" {
			return authz.Invalid("catalog entry %s needs its secret header %s: say where the gateway finds it (env:NAME or file:/path)", spec.CatalogEntry, secrets[0].Name)
		}
		if spec.CredentialHeader == "" {
			spec.CredentialHeader = secrets[0].Name
		}
	}
	return nil
}

// CreateUpstream registers an upstream MCP server on a gateway.
func (s *Service) CreateUpstream(ctx context.Context, tenantID, gatewayID uuid.UUID, spec UpstreamSpec) (*ent.Upstream, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	if err := s.fromCatalog(ctx, tenantID, &spec); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", authz.ErrInvalid, err)
	}
	if _, err := s.Gateway(ctx, tenantID, gatewayID); err != nil {
		return nil, err
	}
	var u *ent.Upstream
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		var err error
		u, err = tx.Upstream.Create().SetTenantID(tenantID).SetGatewayID(gatewayID).
			SetName(spec.Name).SetTransport(upstream.Transport(spec.Transport)).SetURL(spec.URL).
			SetCommand(spec.Command).SetArgs(spec.Args).SetLabels(spec.Labels).
			SetCredentialRef(spec.CredentialRef).SetCredentialHeader(spec.CredentialHeader).
			SetDenySampling(spec.DenySampling).SetDenyElicitation(spec.DenyElicitation).SetDenyRoots(spec.DenyRoots).
			SetPackageEcosystem(spec.Package.Ecosystem).SetPackageName(spec.Package.Name).SetPackageVersion(spec.Package.Version).
			SetPackageIntegrity(spec.Package.Integrity).SetPackageBin(spec.Package.Bin).SetCatalogEntry(spec.CatalogEntry).
			SetAuthMode(spec.Auth.authMode()).SetOauthClientID(spec.Auth.ClientID).SetOauthClientSecretRef(spec.Auth.ClientSecretRef).
			SetOauthScopes(spec.Auth.Scopes).SetOauthIssuer(spec.Auth.Issuer).SetOauthResource(spec.Auth.Resource).Save(ctx)
		if err != nil {
			return authz.DBError(fmt.Sprintf("creating upstream %q", spec.Name), err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "upstream.create", TargetType: "upstream",
			TargetID: u.ID.String(), TargetName: u.Name, After: u})
	})
	if err != nil {
		return nil, err
	}
	return u, s.notify.GatewayChanged(ctx, gatewayID)
}

// CreateVirtualServer creates an endpoint aggregating upstreams of the
// gateway, with names prefixed by their upstream.
func (s *Service) CreateVirtualServer(ctx context.Context, tenantID, gatewayID uuid.UUID, name string, upstreams []string) (*ent.VirtualServer, error) {
	return s.CreateVirtualServerSpec(ctx, tenantID, gatewayID, VirtualServerSpec{Name: name, Upstreams: upstreams})
}

// VirtualServerSpec describes a virtual server.
type VirtualServerSpec struct {
	Name      string
	Upstreams []string
	// Unprefixed exposes tool and prompt names as the upstreams name them.
	Unprefixed bool
	// Renames give single tools another exposed name.
	Renames []schematype.ToolRename
}

// maxRenames bounds a virtual server's renames.
const maxRenames = 1000

// CreateVirtualServerSpec creates an endpoint aggregating upstreams of the
// gateway. Unprefixed names and renames are refused when two of the
// upstreams' known tools or prompts would be exposed under one name.
func (s *Service) CreateVirtualServerSpec(ctx context.Context, tenantID, gatewayID uuid.UUID, spec VirtualServerSpec) (*ent.VirtualServer, error) {
	name, upstreams := spec.Name, spec.Upstreams
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	if _, err := s.Gateway(ctx, tenantID, gatewayID); err != nil {
		return nil, err
	}
	if err := s.checkVirtualServer(ctx, tenantID, gatewayID, spec); err != nil {
		return nil, err
	}
	var vs *ent.VirtualServer
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		var err error
		vs, err = tx.VirtualServer.Create().SetTenantID(tenantID).SetGatewayID(gatewayID).
			SetName(name).SetUpstreams(upstreams).SetUnprefixed(spec.Unprefixed).SetRenames(spec.Renames).Save(ctx)
		if err != nil {
			return authz.DBError(fmt.Sprintf("creating virtual server %q", name), err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "virtual_server.create", TargetType: "virtual_server",
			TargetID: vs.ID.String(), TargetName: name, After: vs})
	})
	if err != nil {
		return nil, err
	}
	return vs, s.notify.GatewayChanged(ctx, gatewayID)
}

// checkVirtualServer checks a virtual server's upstreams (1 to 100, all on
// its gateway) and the names it would expose, for creation and updates.
func (s *Service) checkVirtualServer(ctx context.Context, tenantID, gatewayID uuid.UUID, spec VirtualServerSpec) error {
	if len(spec.Upstreams) == 0 || len(spec.Upstreams) > 100 {
		return authz.Invalid("virtual server %q needs 1 to 100 upstreams", spec.Name)
	}
	ups, err := s.db.Upstream.Query().Where(upstream.GatewayID(gatewayID), upstream.TenantID(tenantID), upstream.NameIn(spec.Upstreams...)).All(ctx)
	if err != nil {
		return err
	}
	if len(ups) != len(spec.Upstreams) {
		return authz.Invalid("virtual server %q: some of the upstreams %v do not exist on this gateway", spec.Name, spec.Upstreams)
	}
	return s.checkNames(ctx, ups, spec)
}

// checkNames refuses renames that are malformed or point nowhere, and names
// that two of the upstreams' discovered tools or prompts would share. (A
// collision that appears later, when an upstream adds a tool, hides both
// tools at the gateway until it is resolved.)
func (s *Service) checkNames(ctx context.Context, ups []*ent.Upstream, spec VirtualServerSpec) error {
	if len(spec.Renames) > maxRenames {
		return authz.Invalid("virtual server %q: at most %d renames", spec.Name, maxRenames)
	}
	byName := map[string]*ent.Upstream{}
	ids := make([]uuid.UUID, 0, len(ups))
	for _, u := range ups {
		byName[u.Name], ids = u, append(ids, u.ID)
	}
	renamed := map[[2]string]string{}
	for _, r := range spec.Renames {
		if byName[r.Upstream] == nil || r.Tool == "" || !exposedNameRE.MatchString(r.Name) {
			return authz.Invalid("virtual server %q: rename %s/%s → %q needs one of its upstreams, a tool, and a name of letters, digits, '_', '-', '.' (1-128)",
				spec.Name, r.Upstream, r.Tool, r.Name)
		}
		if _, dup := renamed[[2]string{r.Upstream, r.Tool}]; dup {
			return authz.Invalid("virtual server %q: tool %s/%s is renamed twice", spec.Name, r.Upstream, r.Tool)
		}
		renamed[[2]string{r.Upstream, r.Tool}] = r.Name
	}
	tools, err := s.db.Tool.Query().Where(tool.UpstreamIDIn(ids...), tool.KindIn(tool.KindTool, tool.KindPrompt)).WithUpstream().All(ctx)
	if err != nil {
		return err
	}
	seen := map[string]string{} // kind + exposed name → upstream/name
	for _, t := range tools {
		up := t.Edges.Upstream.Name
		exposed := up + "__" + t.Name
		if n, ok := renamed[[2]string{up, t.Name}]; ok && t.Kind == tool.KindTool {
			exposed = n
		} else if spec.Unprefixed {
			exposed = t.Name
		}
		key := t.Kind.String() + " " + exposed
		if other, ok := seen[key]; ok {
			return authz.Invalid("virtual server %q: %s name %q would be offered by both %s and %s/%s; rename one of them, or keep prefixed names",
				spec.Name, t.Kind, exposed, other, up, t.Name)
		}
		seen[key] = up + "/" + t.Name
	}
	return nil
}

// exposedNameRE is the shape of a renamed tool's name (what MCP clients accept).
var exposedNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Upstreams lists the tenant's upstreams with their gateway.
func (s *Service) Upstreams(ctx context.Context, tenantID uuid.UUID) ([]*ent.Upstream, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	return s.db.Upstream.Query().Where(upstream.TenantID(tenantID)).WithGateway().
		Order(ent.Asc(upstream.FieldName)).All(ctx)
}

// VirtualServers lists the tenant's virtual servers with their gateway.
func (s *Service) VirtualServers(ctx context.Context, tenantID uuid.UUID) ([]*ent.VirtualServer, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	return s.db.VirtualServer.Query().Where(virtualserver.TenantID(tenantID)).WithGateway().
		Order(ent.Asc(virtualserver.FieldName)).All(ctx)
}

// Tools lists the tenant's discovered tools with their upstream.
func (s *Service) Tools(ctx context.Context, tenantID uuid.UUID) ([]*ent.Tool, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	return s.db.Tool.Query().Where(tool.TenantID(tenantID)).WithUpstream().
		Order(ent.Asc(tool.FieldName)).All(ctx)
}

// PackageTrees returns the dependency tree item of each package upstream of
// the tenant that reported one, by upstream.
func (s *Service) PackageTrees(ctx context.Context, tenantID uuid.UUID) (map[uuid.UUID]*ent.Tool, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	ts, err := s.db.Tool.Query().Where(tool.TenantID(tenantID), tool.KindEQ(tool.KindPackage)).Order(ent.Asc(tool.FieldLastSeen)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]*ent.Tool, len(ts))
	for _, t := range ts {
		out[t.UpstreamID] = t // the one seen last, if the package's name changed
	}
	return out, nil
}

// PolicyVersion returns the newest compiled policy version of the gateway (0 if none).
func (s *Service) PolicyVersion(ctx context.Context, tenantID, gatewayID uuid.UUID) (uint64, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return 0, err
	}
	pv, err := s.db.PolicyVersion.Query().Where(policyversion.TenantID(tenantID), policyversion.GatewayID(gatewayID)).
		Order(ent.Desc(policyversion.FieldVersion)).First(ctx)
	if ent.IsNotFound(err) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	return pv.Version, nil
}

// ResultAction returns what the tenant's gateways do with suspicious results.
func (s *Service) ResultAction(ctx context.Context, tenantID uuid.UUID) (enttenant.ResultAction, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return "", err
	}
	t, err := s.db.Tenant.Get(ctx, tenantID)
	if err != nil {
		return "", authz.DBError("tenant", err)
	}
	return t.ResultAction, nil
}

// SetResultAction changes it and recompiles every gateway's bundle.
func (s *Service) SetResultAction(ctx context.Context, tenantID uuid.UUID, action string) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	a := enttenant.ResultAction(action)
	if err := enttenant.ResultActionValidator(a); err != nil {
		return authz.Invalid("result action must be annotate, redact or block, not %q", action)
	}
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		before, err := tx.Tenant.Get(ctx, tenantID)
		if err != nil {
			return authz.DBError("tenant", err)
		}
		if err := tx.Tenant.UpdateOneID(tenantID).SetResultAction(a).Exec(ctx); err != nil {
			return authz.DBError("updating tenant", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "tenant.result_scanning", TargetType: "tenant",
			TargetID: tenantID.String(), TargetName: before.Name, Before: map[string]any{"result_action": before.ResultAction},
			After: map[string]any{"result_action": a}})
	})
	if err != nil {
		return err
	}
	return NotifyGateways(ctx, s.db, s.notify, tenantID)
}

// NotifyGateways tells notify that every gateway of the tenant changed, for
// settings that apply tenant-wide.
func NotifyGateways(ctx context.Context, db *ent.Client, notify PolicyNotifier, tenantID uuid.UUID) error {
	ids, err := db.Gateway.Query().Where(gateway.TenantID(tenantID)).IDs(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := notify.GatewayChanged(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// UpdateUpstream replaces an upstream's settings; its name and gateway stay
// (pins, rules and virtual servers use the name). Pins stay too: the
// gateway checks what the upstream now offers against them, so a server
// behind a new URL that differs is quarantined like any drift.
func (s *Service) UpdateUpstream(ctx context.Context, tenantID, upstreamID uuid.UUID, spec UpstreamSpec) (*ent.Upstream, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	before, err := s.db.Upstream.Query().Where(upstream.TenantID(tenantID), upstream.ID(upstreamID)).Only(ctx)
	if err != nil {
		return nil, authz.DBError("upstream "+upstreamID.String(), err)
	}
	if spec.Name == "" {
		spec.Name = before.Name
	}
	if spec.Name != before.Name {
		return nil, authz.Invalid("an upstream's name cannot change (pins, rules and virtual servers use it): delete it and register it again")
	}
	if err := s.fromCatalog(ctx, tenantID, &spec); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", authz.ErrInvalid, err)
	}
	var after *ent.Upstream
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		var err error
		after, err = tx.Upstream.UpdateOneID(before.ID).SetTransport(upstream.Transport(spec.Transport)).SetURL(spec.URL).
			SetCommand(spec.Command).SetArgs(spec.Args).SetLabels(spec.Labels).
			SetCredentialRef(spec.CredentialRef).SetCredentialHeader(spec.CredentialHeader).
			SetDenySampling(spec.DenySampling).SetDenyElicitation(spec.DenyElicitation).SetDenyRoots(spec.DenyRoots).
			SetPackageEcosystem(spec.Package.Ecosystem).SetPackageName(spec.Package.Name).SetPackageVersion(spec.Package.Version).
			SetPackageIntegrity(spec.Package.Integrity).SetPackageBin(spec.Package.Bin).SetCatalogEntry(spec.CatalogEntry).
			SetAuthMode(spec.Auth.authMode()).SetOauthClientID(spec.Auth.ClientID).SetOauthClientSecretRef(spec.Auth.ClientSecretRef).
			SetOauthScopes(spec.Auth.Scopes).SetOauthIssuer(spec.Auth.Issuer).SetOauthResource(spec.Auth.Resource).Save(ctx)
		if err != nil {
			return authz.DBError(fmt.Sprintf("updating upstream %q", spec.Name), err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "upstream.update", TargetType: "upstream",
			TargetID: after.ID.String(), TargetName: after.Name, Before: before, After: after})
	})
	if err != nil {
		return nil, err
	}
	return after, s.notify.GatewayChanged(ctx, before.GatewayID)
}

// DeleteUpstream removes an upstream that no virtual server uses, with its
// discovered items, their versions, pins and change requests; the audit log
// and call events keep the history.
func (s *Service) DeleteUpstream(ctx context.Context, tenantID, upstreamID uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	u, err := s.db.Upstream.Query().Where(upstream.TenantID(tenantID), upstream.ID(upstreamID)).Only(ctx)
	if err != nil {
		return authz.DBError("upstream "+upstreamID.String(), err)
	}
	vss, err := s.db.VirtualServer.Query().Where(virtualserver.TenantID(tenantID), virtualserver.GatewayID(u.GatewayID)).All(ctx)
	if err != nil {
		return err
	}
	var users []string
	for _, vs := range vss {
		if slices.Contains(vs.Upstreams, u.Name) {
			users = append(users, vs.Name)
		}
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: virtual servers %s serve upstream %q: remove it from them first", authz.ErrPrecondition, strings.Join(users, ", "), u.Name)
	}
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		toolIDs, err := tx.Tool.Query().Where(tool.UpstreamID(u.ID)).IDs(ctx)
		if err != nil {
			return err
		}
		crIDs, err := tx.ChangeRequest.Query().Where(changerequest.ToolIDIn(toolIDs...)).IDs(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Approval.Delete().Where(approval.ChangeRequestIDIn(crIDs...)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.ChangeRequest.Delete().Where(changerequest.IDIn(crIDs...)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.ToolVersion.Delete().Where(toolversion.ToolIDIn(toolIDs...)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.Tool.Delete().Where(tool.IDIn(toolIDs...)).Exec(ctx); err != nil {
			return err
		}
		if err := tx.Upstream.DeleteOne(u).Exec(ctx); err != nil {
			return authz.DBError("deleting upstream", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "upstream.delete", TargetType: "upstream",
			TargetID: u.ID.String(), TargetName: u.Name, Before: u})
	})
	if err != nil {
		return err
	}
	return s.notify.GatewayChanged(ctx, u.GatewayID)
}

// UpdateVirtualServer replaces a virtual server's upstreams, naming and
// renames, with the checks of its creation; its name (the clients' URL)
// stays.
func (s *Service) UpdateVirtualServer(ctx context.Context, tenantID, vsID uuid.UUID, spec VirtualServerSpec) (*ent.VirtualServer, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	before, err := s.db.VirtualServer.Query().Where(virtualserver.TenantID(tenantID), virtualserver.ID(vsID)).Only(ctx)
	if err != nil {
		return nil, authz.DBError("virtual server "+vsID.String(), err)
	}
	spec.Name = before.Name
	if err := s.checkVirtualServer(ctx, tenantID, before.GatewayID, spec); err != nil {
		return nil, err
	}
	var after *ent.VirtualServer
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		var err error
		after, err = tx.VirtualServer.UpdateOneID(before.ID).SetUpstreams(spec.Upstreams).SetUnprefixed(spec.Unprefixed).SetRenames(spec.Renames).Save(ctx)
		if err != nil {
			return authz.DBError(fmt.Sprintf("updating virtual server %q", spec.Name), err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "virtual_server.update", TargetType: "virtual_server",
			TargetID: after.ID.String(), TargetName: after.Name, Before: before, After: after})
	})
	if err != nil {
		return nil, err
	}
	return after, s.notify.GatewayChanged(ctx, before.GatewayID)
}

// DeleteVirtualServer removes a virtual server; its URL answers 404 once the
// gateway has the new bundle. Access rules naming it stay (they match nothing).
func (s *Service) DeleteVirtualServer(ctx context.Context, tenantID, vsID uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	vs, err := s.db.VirtualServer.Query().Where(virtualserver.TenantID(tenantID), virtualserver.ID(vsID)).Only(ctx)
	if err != nil {
		return authz.DBError("virtual server "+vsID.String(), err)
	}
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		if err := tx.VirtualServer.DeleteOne(vs).Exec(ctx); err != nil {
			return authz.DBError("deleting virtual server", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "virtual_server.delete", TargetType: "virtual_server",
			TargetID: vs.ID.String(), TargetName: vs.Name, Before: vs})
	})
	if err != nil {
		return err
	}
	return s.notify.GatewayChanged(ctx, vs.GatewayID)
}
