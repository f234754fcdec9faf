package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/interpreter"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/segmentio/encoding/json"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// clientKeyPrefix starts every Portcullis client key.
const clientKeyPrefix = "pcck_"

// identity is who is calling: a principal and its groups; the zero value is
// an anonymous client (allowed only when the gateway does not require auth).
type identity struct {
	principal string
	groups    []string
}

func identityOf(ti *auth.TokenInfo) identity {
	if ti == nil {
		return identity{}
	}
	id := identity{principal: ti.UserID}
	if g, ok := ti.Extra["groups"].([]string); ok {
		id.groups = g
	}
	return id
}

// accessRule is a compiled rule.
type accessRule struct {
	id        string
	principal string // "*", "apikey:…", "user:…" or "group:…"
	vs        string // name or "*"
	pattern   string // glob over "upstream__tool"
	allow     bool
	cond      cel.Program // nil when unconditional
}

// accessIndex holds a bundle's rules with, for every principal the bundle
// knows (its client keys) and for anonymous clients, the indices of the rules
// that can apply to it, in order — so a decision looks only at those.
type accessIndex struct {
	rules       []accessRule
	anonymous   []int32
	byPrincipal map[string][]int32
}

func indexRules(rules []accessRule, keys map[[32]byte]*auth.TokenInfo) *accessIndex {
	ix := &accessIndex{rules: rules, byPrincipal: map[string][]int32{}}
	for i, r := range rules {
		if r.principal == "*" {
			ix.anonymous = append(ix.anonymous, int32(i))
		}
	}
	for _, ti := range keys {
		id := identityOf(ti)
		var l []int32
		for i := range rules {
			if rules[i].mayApplyTo(id) {
				l = append(l, int32(i))
			}
		}
		ix.byPrincipal[id.principal] = l
	}
	return ix
}

// candidates returns the rules that may apply to id, or nil to scan all.
func (ix *accessIndex) candidates(id identity) ([]int32, bool) {
	if id.principal == "" {
		return ix.anonymous, true
	}
	l, ok := ix.byPrincipal[id.principal]
	return l, ok
}

// condEnv must declare what the control plane's access.CondEnv declares.
func condEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("principal", cel.StringType),
		cel.Variable("tool", cel.StringType),
	)
}

// compileAccess turns the bundle's client keys and rules into lookups; CEL
// conditions are compiled once here, so a bad one refuses the bundle. A
// key's TokenInfo is made here too and shared by every request that
// presents it (nothing writes to a TokenInfo).
func compileAccess(b *agentv1.PolicyBundle) (keys map[[32]byte]*auth.TokenInfo, rules []accessRule, err error) {
	keys = map[[32]byte]*auth.TokenInfo{}
	for _, k := range b.GetClientAuth().GetKeys() {
		raw, err := hex.DecodeString(k.GetSha256())
		if err != nil || len(raw) != 32 {
			return nil, nil, fmt.Errorf("client key %q: bad hash", k.GetPrincipal())
		}
		keys[[32]byte(raw)] = &auth.TokenInfo{UserID: k.GetPrincipal(), Extra: map[string]any{"groups": k.GetGroups()}}
	}
	var env *cel.Env
	for _, r := range b.GetAccessRules() {
		if r.GetEffect() != agentv1.Effect_EFFECT_ALLOW && r.GetEffect() != agentv1.Effect_EFFECT_DENY {
			return nil, nil, fmt.Errorf("access rule %s: no effect", r.GetId())
		}
		if _, err := path.Match(r.GetToolPattern(), "x"); err != nil {
			return nil, nil, fmt.Errorf("access rule %s: bad tool pattern %q", r.GetId(), r.GetToolPattern())
		}
		ar := accessRule{id: r.GetId(), principal: r.GetPrincipal(), vs: r.GetVirtualServer(), pattern: r.GetToolPattern(),
			allow: r.GetEffect() == agentv1.Effect_EFFECT_ALLOW}
		if c := r.GetCondition(); c != "" {
			if env == nil {
				if env, err = condEnv(); err != nil {
					return nil, nil, err
				}
			}
			ast, iss := env.Compile(c)
			if iss.Err() != nil {
				return nil, nil, fmt.Errorf("access rule %s: condition: %w", r.GetId(), iss.Err())
			}
			if ar.cond, err = env.Program(ast, cel.CostLimit(100000)); err != nil {
				return nil, nil, fmt.Errorf("access rule %s: condition: %w", r.GetId(), err)
			}
		}
		rules = append(rules, ar)
	}
	return keys, rules, nil
}

func (r *accessRule) mayApplyTo(id identity) bool {
	switch {
	case r.principal == "*":
		return true
	case strings.HasPrefix(r.principal, "group:"):
		return slices.Contains(id.groups, r.principal[len("group:"):])
	}
	return r.principal == id.principal && id.principal != ""
}

func (r *accessRule) applies(id identity, vs, tool string) bool {
	if r.vs != "*" && r.vs != vs || !r.mayApplyTo(id) {
		return false
	}
	ok, _ := path.Match(r.pattern, tool)
	return ok
}

// each calls f for the rules that may apply to id, in order, until f returns true.
func (ix *accessIndex) each(id identity, f func(r *accessRule) bool) {
	if l, ok := ix.candidates(id); ok {
		for _, i := range l {
			if f(&ix.rules[i]) {
				return
			}
		}
		return
	}
	for i := range ix.rules {
		if f(&ix.rules[i]) {
			return
		}
	}
}

// decide runs the rules for one call: the first rule that applies (and whose
// condition holds) decides; with rules and no match the call is refused;
// without rules every approved tool may be called. The arguments are decoded
// only when a condition needs them.
func decide(ix *accessIndex, id identity, vs, tool string, rawArgs json.RawMessage) (allowed bool, rule string) {
	if ix == nil || len(ix.rules) == 0 {
		return true, ""
	}
	var args map[string]any
	decided := false
	ix.each(id, func(r *accessRule) bool {
		if !r.applies(id, vs, tool) {
			return false
		}
		if r.cond != nil {
			if args == nil {
				args = decodeArgs(rawArgs)
			}
			out, _, err := r.cond.Eval(&condVars{args: args, principal: id.principal, tool: tool})
			holds := err == nil && out.Value() == true
			if !holds && (err == nil || r.allow) { // an erroring deny condition still denies
				return false
			}
		}
		allowed, rule, decided = r.allow, r.id, true
		return true
	})
	if !decided {
		return false, ""
	}
	return allowed, rule
}

// condVars are a condition's variables (as condEnv declares them) for one
// call: looked up by name, with no map made per call.
type condVars struct {
	args            map[string]any
	principal, tool string
}

func (v *condVars) ResolveName(name string) (any, bool) {
	switch name {
	case "args":
		return v.args, true
	case "principal":
		return v.principal, true
	case "tool":
		return v.tool, true
	}
	return nil, false
}

func (v *condVars) Parent() interpreter.Activation { return nil }

// decodeArgs is what conditions see of a call's arguments: the object, or
// an empty one when they are not one (the request's parse has checked that
// they are valid JSON; an error here leaves no half-decoded object).
func decodeArgs(raw json.RawMessage) map[string]any {
	args := map[string]any{}
	if len(raw) > 0 && json.Unmarshal(raw, &args) != nil {
		return map[string]any{}
	}
	return args
}

// visible tells whether tools/list should show tool to id: some call to it
// could be allowed (conditions count as possibly true for allow rules and
// possibly false for deny rules).
func visible(ix *accessIndex, id identity, vs, tool string) bool {
	if ix == nil || len(ix.rules) == 0 {
		return true
	}
	shown := false
	ix.each(id, func(r *accessRule) bool {
		if !r.applies(id, vs, tool) {
			return false
		}
		if r.allow {
			shown = true
			return true
		}
		return r.cond == nil // an unconditional deny ends the search
	})
	return shown
}

// maxTokenBytes bounds a bearer credential.
const maxTokenBytes = 16 << 10

// verifyToken authenticates a bearer credential: a client key, by hash, or a
// JWT from the tenant's identity provider, issued for this gateway.
func (p *Proxy) verifyToken(ctx context.Context, token string, r *http.Request) (*auth.TokenInfo, error) {
	pol := p.pol.Load()
	if pol == nil || len(token) > maxTokenBytes {
		return nil, fmt.Errorf("%w: unknown credential", auth.ErrInvalidToken)
	}
	if !strings.HasPrefix(token, clientKeyPrefix) {
		return p.verifyJWT(ctx, pol, token, r.PathValue("vs"))
	}
	// Looked up by the hash of the presented key: the timing of a map lookup
	// tells nothing about any stored key.
	if ti, ok := pol.keys[sha256.Sum256([]byte(token))]; ok {
		return ti, nil
	}
	return nil, fmt.Errorf("%w: unknown or revoked client key", auth.ErrInvalidToken)
}

// filterTools drops from a tools/list result what the caller may not call.
//
// Rules name tools as "upstream__tool" whatever the virtual server exposes
// them as; routes maps the exposed names back.
func (p *Proxy) filterTools(res mcp.Result, vs string, routes map[string]route, extra *mcp.RequestExtra) mcp.Result {
	pol := p.pol.Load()
	lr, ok := res.(*mcp.ListToolsResult)
	if !ok || pol == nil || pol.access == nil || len(pol.access.rules) == 0 {
		return res
	}
	var ti *auth.TokenInfo
	if extra != nil {
		ti = extra.TokenInfo
	}
	id := identityOf(ti)
	out := *lr
	out.Tools = make([]*mcp.Tool, 0, len(lr.Tools))
	for _, t := range lr.Tools {
		r, ok := routes[t.Name]
		if ok && visible(pol.access, id, vs, r.upstream+Separator+r.name) {
			out.Tools = append(out.Tools, t)
		}
	}
	return &out
}

// oidcVerifiers caches one provider per issuer, with the verifier of
// clients' tokens; discovery is retried at most every 10 seconds while the
// issuer is unreachable.
type oidcVerifiers struct {
	mu     sync.Mutex
	byIss  map[string]*oidcIssuer
	failed map[string]time.Time
}

// oidcIssuer is a discovered identity provider.
type oidcIssuer struct {
	prov *oidc.Provider
	// jwt verifies signatures, issuer and expiry, not the audience: the
	// caller checks it (verifyJWT against this gateway's resource URLs,
	// serveLogin against the gateway's login client).
	jwt *oidc.IDTokenVerifier
}

func (p *Proxy) oidcIssuer(issuer string) (*oidcIssuer, error) {
	p.oidc.mu.Lock()
	defer p.oidc.mu.Unlock()
	if i := p.oidc.byIss[issuer]; i != nil {
		return i, nil
	}
	if t, ok := p.oidc.failed[issuer]; ok && time.Since(t) < 10*time.Second {
		return nil, fmt.Errorf("identity provider %s is unreachable; retrying shortly", issuer)
	}
	// The provider's key set keeps this context for fetching rotated keys.
	ctx := oidc.ClientContext(p.ctx, &http.Client{Timeout: 10 * time.Second})
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	prov, err := oidc.NewProvider(dctx, issuer)
	if err != nil {
		if p.oidc.failed == nil {
			p.oidc.failed = map[string]time.Time{}
		}
		p.oidc.failed[issuer] = time.Now()
		p.log.Warn("identity provider discovery failed", "issuer", issuer, "err", err)
		return nil, fmt.Errorf("identity provider %s is unreachable", issuer)
	}
	i := &oidcIssuer{prov: prov, jwt: prov.VerifierContext(ctx, &oidc.Config{SkipClientIDCheck: true})}
	if p.oidc.byIss == nil {
		p.oidc.byIss = map[string]*oidcIssuer{}
	}
	p.oidc.byIss[issuer] = i
	return i, nil
}

// verifyJWT checks a bearer JWT's signature, issuer and expiry with go-oidc,
// and that it was issued for this gateway (audience: its URL or the virtual
// server's). The subject becomes "user:<sub>", groups come from the claim.
func (p *Proxy) verifyJWT(ctx context.Context, pol *policy, token, vs string) (*auth.TokenInfo, error) {
	if pol.oidcIssuer == "" {
		return nil, fmt.Errorf("%w: not a Portcullis client key, and no identity provider is configured", auth.ErrInvalidToken)
	}
	iss, err := p.oidcIssuer(pol.oidcIssuer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
	}
	idt, err := iss.jwt.Verify(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
	}
	resources := []string{p.cfg.PublicURL, p.cfg.PublicURL + "/mcp/" + vs}
	ours := func(a string) bool {
		a = strings.TrimSuffix(a, "/")
		if vs == "" { // not an MCP endpoint (/oauth/connections): any of the gateway's
			name, ok := strings.CutPrefix(a, p.cfg.PublicURL+"/mcp/")
			return a == p.cfg.PublicURL || ok && p.server(name) != nil
		}
		return slices.Contains(resources, a)
	}
	if !slices.ContainsFunc(idt.Audience, ours) {
		return nil, fmt.Errorf("%w: the token was not issued for this gateway (audience %v, want %s)", auth.ErrInvalidToken, idt.Audience, resources[1])
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
	}
	var groups []string
	if raw, ok := claims[pol.groupClaim].([]any); ok {
		for _, g := range raw {
			if s, ok := g.(string); ok && len(groups) < 100 && len(s) <= 128 {
				groups = append(groups, s)
			}
		}
	}
	if p.users != nil {
		p.users.remember("user:"+idt.Subject, token) // for token exchange (userauth.go)
	}
	return &auth.TokenInfo{UserID: "user:" + idt.Subject, Expiration: idt.Expiry, Extra: map[string]any{"groups": groups}}, nil
}
