// Package access manages who may use a tenant's gateways: client keys, the
// per-gateway "credentials required" switch, and access rules (principal ×
// virtual server × tool pattern → allow or deny, with an optional CEL
// condition on the call's arguments).
package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"time"

	"cel.dev/cel-go/cel"
	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/accessrule"
	"github.com/portcullis-mcp/portcullis/ent/clientkey"
	"github.com/portcullis-mcp/portcullis/ent/gateway"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// ClientKeyPrefix starts every client key.
const ClientKeyPrefix = "pcck_"

// Limits.
const (
	maxGroups          = 20
	maxRulesPerGateway = 1000
)

// Notifier is told when a gateway's bundle must be recompiled.
type Notifier interface {
	GatewayChanged(ctx context.Context, gatewayID uuid.UUID) error
}

// Service manages client keys and access rules.
type Service struct {
	db     *ent.Client
	notify Notifier
	now    func() time.Time
}

// New returns a Service.
func New(db *ent.Client, notify Notifier) (*Service, error) {
	if db == nil || notify == nil {
		return nil, errors.New("access.New: db and notifier are required")
	}
	return &Service{db: db, notify: notify, now: time.Now}, nil
}

var (
	nameRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	principalRE = regexp.MustCompile(`^(\*|(apikey|group|user):[A-Za-z0-9._@:|+-]{1,128})$`)
)

// HashKey is the stored and distributed form of a client key.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ClientKeys lists the tenant's client keys.
func (s *Service) ClientKeys(ctx context.Context, tenantID uuid.UUID) ([]*ent.ClientKey, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	return s.db.ClientKey.Query().Where(clientkey.TenantID(tenantID)).Order(clientkey.ByName()).All(ctx)
}

// CreateClientKey creates a key and returns its secret, which is not stored.
func (s *Service) CreateClientKey(ctx context.Context, tenantID uuid.UUID, name string, groups []string) (string, *ent.ClientKey, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return "", nil, err
	}
	if !nameRE.MatchString(name) {
		return "", nil, authz.Invalid("key name %q must be 1 to 63 letters, digits, '.', '-' or '_'", name)
	}
	if len(groups) > maxGroups {
		return "", nil, authz.Invalid("at most %d groups", maxGroups)
	}
	for _, g := range groups {
		if !nameRE.MatchString(g) {
			return "", nil, authz.Invalid("group %q must be 1 to 63 letters, digits, '.', '-' or '_'", g)
		}
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	secret := ClientKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	var k *ent.ClientKey
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		var err error
		k, err = tx.ClientKey.Create().SetTenantID(tenantID).SetName(name).SetGroups(groups).SetSecretHash(HashKey(secret)).Save(ctx)
		if err != nil {
			return authz.DBError(fmt.Sprintf("client key %q", name), err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "client_key.create", TargetType: "client_key",
			TargetID: k.ID.String(), TargetName: name, After: k})
	})
	if err != nil {
		return "", nil, err
	}
	return secret, k, tenant.NotifyGateways(ctx, s.db, s.notify, tenantID)
}

// RevokeClientKey revokes a key; gateways refuse it once they apply the new bundle.
func (s *Service) RevokeClientKey(ctx context.Context, tenantID, id uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		k, err := tx.ClientKey.Query().Where(clientkey.TenantID(tenantID), clientkey.ID(id)).Only(ctx)
		if err != nil {
			return authz.DBError("client key "+id.String(), err)
		}
		after, err := tx.ClientKey.UpdateOne(k).SetRevokedAt(s.now()).Save(ctx)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "client_key.revoke", TargetType: "client_key",
			TargetID: k.ID.String(), TargetName: k.Name, Before: k, After: after})
	})
	if err != nil {
		return err
	}
	return tenant.NotifyGateways(ctx, s.db, s.notify, tenantID)
}

// SetClientAuth makes a gateway require client credentials, or not.
func (s *Service) SetClientAuth(ctx context.Context, tenantID, gatewayID uuid.UUID, required bool) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	return s.updateGateway(ctx, tenantID, gatewayID, "gateway.client_auth", func(u *ent.GatewayUpdateOne) *ent.GatewayUpdateOne {
		return u.SetClientAuthRequired(required)
	})
}

// updateGateway changes one of the tenant's gateways in an audited
// transaction (before and after), then tells the gateway.
func (s *Service) updateGateway(ctx context.Context, tenantID, gatewayID uuid.UUID, action string, set func(*ent.GatewayUpdateOne) *ent.GatewayUpdateOne) error {
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		g, err := gatewayOf(ctx, tx, tenantID, gatewayID)
		if err != nil {
			return err
		}
		after, err := set(tx.Gateway.UpdateOne(g)).Save(ctx)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: action, TargetType: "gateway",
			TargetID: g.ID.String(), TargetName: g.Name, Before: g, After: after})
	})
	if err != nil {
		return err
	}
	return s.notify.GatewayChanged(ctx, gatewayID)
}

// Rules lists a gateway's rules in evaluation order.
func (s *Service) Rules(ctx context.Context, tenantID, gatewayID uuid.UUID) ([]*ent.AccessRule, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	if _, err := gatewayOf(ctx, s.db, tenantID, gatewayID); err != nil {
		return nil, err
	}
	return s.db.AccessRule.Query().Where(accessrule.TenantID(tenantID), accessrule.GatewayID(gatewayID)).
		Order(accessrule.ByPosition(), accessrule.ByCreatedAt()).All(ctx)
}

// gatewayOf returns one of the tenant's gateways through db (a client or a
// transaction's), or ErrNotFound.
func gatewayOf(ctx context.Context, db *ent.Client, tenantID, gatewayID uuid.UUID) (*ent.Gateway, error) {
	g, err := db.Gateway.Query().Where(gateway.TenantID(tenantID), gateway.ID(gatewayID)).Only(ctx)
	return g, authz.DBError("gateway "+gatewayID.String(), err)
}

// Rule is a rule to create.
type Rule struct {
	Principal, VirtualServer, ToolPattern, Effect, Condition, Description string
}

// CondEnv is the CEL environment of rule conditions; gateways use the same.
func CondEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("principal", cel.StringType),
		cel.Variable("tool", cel.StringType),
	)
}

// Validate checks a rule as a gateway will read it.
func (r Rule) Validate() error {
	if !principalRE.MatchString(r.Principal) {
		return authz.Invalid(`principal %q must be "*", "apikey:<name>", "group:<name>" or "user:<subject>"`, r.Principal)
	}
	if r.VirtualServer != "*" && !nameRE.MatchString(r.VirtualServer) {
		return authz.Invalid("virtual server %q must be a name or \"*\"", r.VirtualServer)
	}
	if r.ToolPattern == "" || len(r.ToolPattern) > 200 {
		return authz.Invalid("tool pattern must be 1 to 200 characters")
	}
	if _, err := path.Match(r.ToolPattern, "x"); err != nil {
		return authz.Invalid("tool pattern %q is not a valid glob: %v", r.ToolPattern, err)
	}
	if r.Effect != "allow" && r.Effect != "deny" {
		return authz.Invalid("effect must be allow or deny, not %q", r.Effect)
	}
	if r.Condition != "" {
		if len(r.Condition) > 2000 {
			return authz.Invalid("condition is longer than 2000 characters")
		}
		env, err := CondEnv()
		if err != nil {
			return err
		}
		ast, iss := env.Compile(r.Condition)
		if iss.Err() != nil {
			return authz.Invalid("condition does not compile: %v", iss.Err())
		}
		if ast.OutputType() != cel.BoolType {
			return authz.Invalid("condition must be a boolean expression, not %v", ast.OutputType())
		}
	}
	if len(r.Description) > 500 {
		return authz.Invalid("description is longer than 500 characters")
	}
	return nil
}

// CreateRule appends a rule to a gateway's list.
func (s *Service) CreateRule(ctx context.Context, tenantID, gatewayID uuid.UUID, r Rule) (*ent.AccessRule, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	g, err := gatewayOf(ctx, s.db, tenantID, gatewayID) // before validating, so another tenant's gateway is simply not found
	if err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var out *ent.AccessRule
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		n, err := tx.AccessRule.Query().Where(accessrule.GatewayID(g.ID)).Count(ctx)
		if err != nil {
			return err
		}
		if n >= maxRulesPerGateway {
			return authz.Invalid("gateway %q already has %d rules", g.Name, n)
		}
		last, err := tx.AccessRule.Query().Where(accessrule.GatewayID(g.ID)).Order(accessrule.ByPosition(sql.OrderDesc())).First(ctx)
		pos := 1
		if err == nil {
			pos = last.Position + 1
		} else if !ent.IsNotFound(err) {
			return err
		}
		out, err = tx.AccessRule.Create().SetTenantID(tenantID).SetGatewayID(g.ID).SetPosition(pos).SetPrincipal(r.Principal).
			SetVirtualServer(r.VirtualServer).SetToolPattern(r.ToolPattern).SetEffect(accessrule.Effect(r.Effect)).
			SetCondition(r.Condition).SetDescription(r.Description).Save(ctx)
		if err != nil {
			return authz.DBError("creating rule", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "access_rule.create", TargetType: "access_rule",
			TargetID: out.ID.String(), TargetName: r.Principal + " " + r.ToolPattern, After: out})
	})
	if err != nil {
		return nil, err
	}
	return out, s.notify.GatewayChanged(ctx, gatewayID)
}

// DeleteRule removes a rule.
func (s *Service) DeleteRule(ctx context.Context, tenantID, id uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	var gatewayID uuid.UUID
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		r, err := tx.AccessRule.Query().Where(accessrule.TenantID(tenantID), accessrule.ID(id)).Only(ctx)
		if err != nil {
			return authz.DBError("rule "+id.String(), err)
		}
		gatewayID = r.GatewayID
		if err := tx.AccessRule.DeleteOne(r).Exec(ctx); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "access_rule.delete", TargetType: "access_rule",
			TargetID: r.ID.String(), TargetName: r.Principal + " " + r.ToolPattern, Before: r})
	})
	if err != nil {
		return err
	}
	return s.notify.GatewayChanged(ctx, gatewayID)
}

// maxRate bounds a rate limit (calls per minute).
const maxRate = 1000000

// SetRateLimits sets a gateway's tools/call limits in calls per minute (0 = unlimited).
func (s *Service) SetRateLimits(ctx context.Context, tenantID, gatewayID uuid.UUID, perPrincipal, perTool int) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	if perPrincipal < 0 || perPrincipal > maxRate || perTool < 0 || perTool > maxRate {
		return authz.Invalid("rate limits must be between 0 (unlimited) and %d calls per minute", maxRate)
	}
	return s.updateGateway(ctx, tenantID, gatewayID, "gateway.rate_limits", func(u *ent.GatewayUpdateOne) *ent.GatewayUpdateOne {
		return u.SetRatePrincipalPerMinute(perPrincipal).SetRateToolPerMinute(perTool)
	})
}

var groupClaimRE = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,128}$`)

// ClientIdentityProvider returns the issuer whose bearer JWTs gateways accept
// from MCP clients, and the claim holding groups.
func (s *Service) ClientIdentityProvider(ctx context.Context, tenantID uuid.UUID) (issuer, groupClaim string, err error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return "", "", err
	}
	t, err := s.db.Tenant.Get(ctx, tenantID)
	if err != nil {
		return "", "", authz.DBError("tenant", err)
	}
	return t.ClientOidcIssuer, t.ClientGroupClaim, nil
}

// SetClientIdentityProvider sets them; an empty issuer turns JWTs off.
func (s *Service) SetClientIdentityProvider(ctx context.Context, tenantID uuid.UUID, issuer, groupClaim string) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	if issuer != "" {
		u, err := url.Parse(issuer)
		if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname()))) {
			return authz.Invalid("issuer %q must be an https URL (http only on loopback, for development)", issuer)
		}
	}
	if groupClaim == "" {
		groupClaim = "groups"
	}
	if !groupClaimRE.MatchString(groupClaim) {
		return authz.Invalid("group claim %q is not a claim name", groupClaim)
	}
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		before, err := tx.Tenant.Get(ctx, tenantID)
		if err != nil {
			return authz.DBError("tenant", err)
		}
		if err := tx.Tenant.UpdateOneID(tenantID).SetClientOidcIssuer(issuer).SetClientGroupClaim(groupClaim).Exec(ctx); err != nil {
			return authz.DBError("updating tenant", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "tenant.client_idp", TargetType: "tenant",
			TargetID: tenantID.String(), TargetName: before.Name,
			Before: map[string]any{"issuer": before.ClientOidcIssuer, "group_claim": before.ClientGroupClaim},
			After:  map[string]any{"issuer": issuer, "group_claim": groupClaim}})
	})
	if err != nil {
		return err
	}
	return tenant.NotifyGateways(ctx, s.db, s.notify, tenantID)
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
