// Package proxy is the gateway's MCP front: one MCP server per virtual
// server at /mcp/{name}, aggregating the upstreams' tools (namespaced
// "upstream__tool"), prompts and resources. A tool is exposed only while it is
// pinned in the enforced bundle and its live definition hashes to the pin;
// anything else is quarantined: hidden from tools/list and refused on call.
package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/grants"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/metrics"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/ratelimit"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/resultscan"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/tracing"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Separator joins an upstream name and a tool or prompt name.
const Separator = "__"

// statelessProtocol is the first protocol revision without sessions.
const statelessProtocol = "2026-07-28"

// DefaultMaxDefinitionAge is the default of Config.MaxDefinitionAge.
const DefaultMaxDefinitionAge = 30 * time.Second

// MaxRequestBytes bounds one HTTP request body from a client.
const MaxRequestBytes = 4 << 20

// Config configures a Proxy.
type Config struct {
	Logger    *slog.Logger
	Telemetry *telemetry.Queue
	// DiscoveryInterval between periodic re-listings of each upstream (default 60s).
	DiscoveryInterval time.Duration
	// UpstreamTimeout bounds connecting, listing and each call (default 60s).
	UpstreamTimeout time.Duration
	Version         string
	// PublicURL is how clients reach this gateway, e.g. https://mcp.example.com;
	// resource URLs in auth metadata are built from it.
	PublicURL string
	// RateLimiter counts calls against the bundle's limits (default: in process).
	RateLimiter ratelimit.Limiter
	// Sessions, when set, shares MCP client sessions among the gateway's
	// replicas; without it a session lives in the process that started it.
	Sessions *RedisSessions
	// SessionIdle ends a client session after this long without requests (default 1h).
	SessionIdle time.Duration
	// MaxMessageBytes bounds one message read from an upstream: a tool
	// result, a resource, a listing (default DefaultMaxMessageBytes).
	MaxMessageBytes int
	// Credentials is what upstream credential references may reach.
	Credentials Credentials
	// Stdio is what stdio upstreams may run and how (none by default).
	Stdio Stdio
	// MaxSessions bounds the client sessions this replica serves, and
	// MaxClientSessions those of one principal (or anonymous address).
	MaxSessions, MaxClientSessions int
	// RequestReadTimeout bounds reading a client's request body.
	RequestReadTimeout time.Duration
	// MaxDefinitionAge bounds how long ago an upstream's definitions were
	// listed when a call uses one (default 30s): older, they are listed
	// again before the call.
	MaxDefinitionAge time.Duration
	// FlowWindow is how long a principal's data-flow labels last after it
	// last touched labelled data, across its sessions (default 1h).
	FlowWindow time.Duration
	// Grants keeps people's tokens for upstreams that act as each person
	// (userauth.go); without it such upstreams refuse calls.
	Grants *grants.Store
	// Login is the gateway's OpenID Connect client at its clients' identity
	// provider, which verifies who opens a consent link; without it
	// people cannot authorize upstreams.
	Login LoginClient
}

// kind is what a pin approves.
type kind uint8

const (
	kindTool kind = iota
	kindPrompt
	kindResource
	kindTemplate
	kindPackage // a package upstream's dependency tree; name: "ECOSYSTEM:NAME"
)

func (k kind) String() string {
	return [...]string{"tool", "prompt", "resource", "resource template", "package"}[k]
}

type pinKey struct {
	kind           kind
	upstream, name string // name: tool or prompt name, resource URI or URI template
}

// policy is the enforced part of a bundle, indexed for lookups.
type policy struct {
	pins    map[pinKey]string    // → sha256
	labels  map[pinKey]flowLabel // tools' data-flow labels
	results resultscan.Action
	// Client authentication and access rules.
	authRequired bool
	keys         map[[32]byte]*auth.TokenInfo
	access       *accessIndex
	oidcIssuer   string
	groupClaim   string
	// Rate limits in calls per minute (0 = unlimited), counted per gateway.
	gatewayID               string
	ratePrincipal, rateTool int
	vs                      map[string]*vsPolicy
	serverRequests          map[string]*agentv1.ServerRequests // by upstream; nil allows everything
}

// packagePin is the approved dependency tree (its hash) of a package
// upstream, or "".
func (pol *policy) packagePin(u *agentv1.Upstream) string {
	if u.GetTransport() != agentv1.Transport_TRANSPORT_PACKAGE {
		return ""
	}
	return pol.pins[pinKey{kindPackage, u.GetName(), u.GetPackage().GetEcosystem() + ":" + u.GetPackage().GetName()}]
}

// vsPolicy is how a virtual server names what its upstreams offer.
type vsPolicy struct {
	upstreams  []string
	unprefixed bool
	renames    map[[2]string]string // (upstream, tool) → exposed name
}

// exposed is the name clients see for an upstream's tool (or prompt, which
// has no renames).
func (v *vsPolicy) exposed(k kind, upstream, name string) string {
	if k == kindTool {
		if n, ok := v.renames[[2]string{upstream, name}]; ok {
			return n
		}
	}
	if v.unprefixed {
		return name
	}
	return upstream + Separator + name
}

// Proxy serves MCP to clients and enforces the bundle.
type Proxy struct {
	cfg   Config
	log   *slog.Logger
	ctx   context.Context
	pol   atomic.Pointer[policy]
	relay *progressRelay
	// sessionCount counts client sessions for the limits (limits.go).
	sessionCount sessionCounts

	mu        sync.Mutex // guards upstreams, servers and registrations
	upstreams map[string]*upstream
	servers   map[string]*vserver
	warned    map[pinKey]string // quarantine already logged for this live hash

	ends      sync.Map // weak.Pointer[mcp.ServerSession] → *ends, what to do when it ends
	flows     sync.Map // *mcp.ServerSession → *atomic.Uint32 of flowLabels touched here
	links     sync.Map // *mcp.ServerSession → *link, its upstream sessions
	fastLinks sync.Map // session ID → *link, from initialize (fast.go)
	fastSeq   atomic.Uint64
	held      sync.Map // id → *heldCall: calls waiting for a modern client's input
	// principalFlows are principals' data-flow windows (flow.go).
	principalFlows sync.Map // principal → *principalFlow
	flowSweeps     atomic.Uint64
	// sealKey MACs the requestState of held calls.
	sealKey [32]byte
	shared  *sharedSessions // nil without Config.Sessions
	oidc    oidcVerifiers
	users   *userAuth // nil without Config.Grants

	invChanged chan struct{}
	invMu      sync.Mutex
	invDigest  [32]byte // of the inventory last signalled
	invAt      time.Time
}

// vserver is one /mcp/{name} endpoint.
type vserver struct {
	name      string
	server    *mcp.Server
	upstreams []string
	tools     map[string]string                // exposed name → sha256 and where it leads
	routes    atomic.Pointer[map[string]route] // exposed tool name → upstream tool, approved or not
	prompts   map[string]string                // exposed name → fingerprint
	promptsAt map[string]route                 // exposed prompt name → upstream prompt
	resources map[string]string                // uri → fingerprint
	templates map[string]string                // uri template → fingerprint
}

// New returns a Proxy; upstream sessions live until ctx ends.
func New(ctx context.Context, cfg Config) (*Proxy, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Telemetry == nil {
		return nil, errors.New("proxy.New: a telemetry queue is required")
	}
	if cfg.DiscoveryInterval <= 0 {
		cfg.DiscoveryInterval = time.Minute
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = time.Minute
	}
	if cfg.RateLimiter == nil {
		cfg.RateLimiter = ratelimit.NewLocal()
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = time.Hour
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxClientSessions <= 0 {
		cfg.MaxClientSessions = DefaultMaxClientSessions
	}
	if cfg.MaxDefinitionAge <= 0 {
		cfg.MaxDefinitionAge = DefaultMaxDefinitionAge
	}
	if cfg.FlowWindow <= 0 {
		cfg.FlowWindow = time.Hour
	}
	if cfg.RequestReadTimeout <= 0 {
		cfg.RequestReadTimeout = DefaultRequestReadTimeout
	}
	p := &Proxy{
		cfg: cfg, log: cfg.Logger.With("component", "proxy"), ctx: ctx, relay: newProgressRelay(),
		upstreams: map[string]*upstream{}, servers: map[string]*vserver{}, warned: map[pinKey]string{},
		invChanged: make(chan struct{}, 1),
	}
	if _, err := rand.Read(p.sealKey[:]); err != nil {
		return nil, err
	}
	if cfg.Grants != nil {
		p.users = newUserAuth(p, cfg.Grants)
		go func() {
			t := time.NewTicker(time.Hour)
			defer t.Stop()
			for cfg.Grants.Sweep(); ; cfg.Grants.Sweep() {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	if cfg.Sessions != nil {
		p.shared = &sharedSessions{p: p, store: cfg.Sessions, idle: cfg.SessionIdle, live: map[string]*liveSession{}}
		go p.shared.sweep(ctx)
	}
	go func() {
		<-ctx.Done()
		p.mu.Lock()
		ups := p.upstreams
		p.upstreams = map[string]*upstream{}
		p.mu.Unlock()
		for _, u := range ups {
			u.stop()
		}
	}()
	return p, nil
}

// route is where an exposed name leads.
type route struct {
	upstream, name string
	exposed        bool // approved and registered; otherwise calls are refused
}

func validate(b *agentv1.PolicyBundle) error {
	ups := map[string]bool{}
	for _, u := range b.GetUpstreams() {
		if u.GetName() == "" || strings.Contains(u.GetName(), Separator) || ups[u.GetName()] {
			return fmt.Errorf("upstream name %q is empty, contains %q or is repeated", u.GetName(), Separator)
		}
		ups[u.GetName()] = true
		switch u.GetTransport() {
		case agentv1.Transport_TRANSPORT_STREAMABLE_HTTP:
			pu, err := url.Parse(u.GetUrl())
			if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				return fmt.Errorf("upstream %q: bad URL %q", u.GetName(), u.GetUrl())
			}
		case agentv1.Transport_TRANSPORT_STDIO:
			if u.GetCommand() == "" {
				return fmt.Errorf("upstream %q: stdio without a command", u.GetName())
			}
		case agentv1.Transport_TRANSPORT_PACKAGE:
			if u.GetPackage().GetName() == "" {
				return fmt.Errorf("upstream %q: package upstream without a package", u.GetName())
			}
		default:
			return fmt.Errorf("upstream %q: unsupported transport %v", u.GetName(), u.GetTransport())
		}
	}
	seen := map[string]bool{}
	for _, vs := range b.GetVirtualServers() {
		if vs.GetName() == "" || seen[vs.GetName()] || strings.ContainsAny(vs.GetName(), "/?#") {
			return fmt.Errorf("virtual server name %q is empty, repeated or not a path segment", vs.GetName())
		}
		seen[vs.GetName()] = true
		for _, u := range vs.GetUpstreams() {
			if !ups[u] {
				return fmt.Errorf("virtual server %q refers to unknown upstream %q", vs.GetName(), u)
			}
		}
		names := map[string]bool{}
		for _, r := range vs.GetRenames() {
			if !slices.Contains(vs.GetUpstreams(), r.GetUpstream()) || r.GetTool() == "" || r.GetName() == "" || names[r.GetName()] {
				return fmt.Errorf("virtual server %q: rename of %q on %q to %q is incomplete, repeated or not on its upstreams",
					vs.GetName(), r.GetTool(), r.GetUpstream(), r.GetName())
			}
			names[r.GetName()] = true
		}
	}
	return nil
}

// Apply switches enforcement to b. It is called by the agent with verified bundles.
func (p *Proxy) Apply(b *agentv1.PolicyBundle) error {
	if err := validate(b); err != nil {
		return err
	}
	pol := &policy{pins: map[pinKey]string{}, labels: map[pinKey]flowLabel{}, vs: map[string]*vsPolicy{},
		serverRequests: map[string]*agentv1.ServerRequests{}, results: resultAction(b.GetResultScanning())}
	keys, rules, err := compileAccess(b)
	if err != nil {
		return err
	}
	pol.authRequired, pol.keys, pol.access = b.GetClientAuth().GetRequired(), keys, indexRules(rules, keys)
	pol.gatewayID = b.GetGatewayId()
	pol.oidcIssuer, pol.groupClaim = b.GetClientAuth().GetOidcIssuer(), b.GetClientAuth().GetGroupClaim()
	if pol.groupClaim == "" {
		pol.groupClaim = "groups"
	}
	pol.ratePrincipal, pol.rateTool = int(b.GetRateLimits().GetPrincipalPerMinute()), int(b.GetRateLimits().GetToolPerMinute())
	for k, pins := range map[kind][]*agentv1.ToolPin{kindTool: b.GetToolPins(), kindPrompt: b.GetPromptPins(),
		kindResource: b.GetResourcePins(), kindTemplate: b.GetResourceTemplatePins()} {
		for _, pin := range pins {
			if l := parseLabels(pin.GetFlowLabels()); l != 0 {
				pol.labels[pinKey{k, pin.GetUpstream(), pin.GetTool()}] = l
			}
		}
	}
	for k, pins := range map[kind][]*agentv1.ToolPin{kindTool: b.GetToolPins(), kindPrompt: b.GetPromptPins(),
		kindResource: b.GetResourcePins(), kindTemplate: b.GetResourceTemplatePins(), kindPackage: b.GetPackagePins()} {
		for _, pin := range pins {
			pol.pins[pinKey{k, pin.GetUpstream(), pin.GetTool()}] = pin.GetSha256()
		}
	}
	for _, vs := range b.GetVirtualServers() {
		v := &vsPolicy{upstreams: vs.GetUpstreams(), unprefixed: vs.GetUnprefixed(), renames: map[[2]string]string{}}
		for _, r := range vs.GetRenames() {
			v.renames[[2]string{r.GetUpstream(), r.GetTool()}] = r.GetName()
		}
		pol.vs[vs.GetName()] = v
	}
	for _, u := range b.GetUpstreams() {
		if sr := u.GetServerRequests(); sr != nil {
			pol.serverRequests[u.GetName()] = sr
		}
	}
	if p.users != nil {
		p.users.exchanging.Store(slices.ContainsFunc(b.GetUpstreams(), func(u *agentv1.Upstream) bool {
			return u.GetAuth().GetMode() == agentv1.AuthMode_AUTH_MODE_TOKEN_EXCHANGE
		}))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pol.Store(pol)

	// Upstreams: start new or changed ones, stop removed ones.
	want := map[string]*agentv1.Upstream{}
	for _, u := range b.GetUpstreams() {
		want[u.GetName()] = u
	}
	for name, u := range p.upstreams {
		// A package runs only with its approved tree: a new approval restarts it.
		if spec, ok := want[name]; !ok || !sameSpec(spec, u.spec) || pol.packagePin(spec) != u.packagePin {
			delete(p.upstreams, name)
			go u.stop()
		}
	}
	for name, spec := range want {
		if _, ok := p.upstreams[name]; !ok {
			u := newUpstream(spec, p.log, p.relay, p.pol.Load, p.cfg.DiscoveryInterval, p.cfg.UpstreamTimeout, p.upstreamChanged)
			u.maxMessage, u.creds, u.stdio, u.packagePin = p.cfg.MaxMessageBytes, &p.cfg.Credentials, &p.cfg.Stdio, pol.packagePin(spec)
			u.users = p.users
			p.upstreams[name] = u
			u.start(p.ctx)
		}
	}
	// Virtual servers.
	for name, vs := range p.servers {
		if _, ok := pol.vs[name]; !ok {
			delete(p.servers, name)
			for ss := range vs.server.Sessions() {
				_ = ss.Close()
			}
		}
	}
	for name, v := range pol.vs {
		vs, ok := p.servers[name]
		if !ok {
			vs = p.newVServer(name)
			p.servers[name] = vs
		}
		vs.upstreams = v.upstreams
	}
	p.refreshLocked()
	if p.users != nil && len(b.GetGrantRevocations()) > 0 {
		go p.users.revoke(p.ctx, b.GetGrantRevocations())
	}
	return nil
}

func (p *Proxy) newVServer(name string) *vserver {
	vs := &vserver{name: name, tools: map[string]string{}, prompts: map[string]string{}, promptsAt: map[string]route{},
		resources: map[string]string{}, templates: map[string]string{}}
	vs.routes.Store(&map[string]route{})
	srv := mcp.NewServer(&mcp.Implementation{Name: "portcullis/" + name, Version: p.cfg.Version}, &mcp.ServerOptions{
		Capabilities: &mcp.ServerCapabilities{
			Tools:       &mcp.ToolCapabilities{ListChanged: true},
			Prompts:     &mcp.PromptCapabilities{ListChanged: true},
			Resources:   &mcp.ResourceCapabilities{ListChanged: true, Subscribe: true},
			Logging:     &mcp.LoggingCapabilities{},
			Completions: &mcp.CompletionCapabilities{},
		},
		SessionClosedHandler: p.sessionClosed,
		CompletionHandler: func(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return p.complete(ctx, vs, req)
		},
		SubscribeHandler: func(ctx context.Context, req *mcp.SubscribeRequest) error {
			cs, done, err := p.resourceSession(ctx, vs, req.Session, req.Params.URI)
			if err != nil {
				return err
			}
			err = cs.Subscribe(ctx, req.Params)
			done(err)
			return p.upstreamError(err)
		},
		UnsubscribeHandler: func(ctx context.Context, req *mcp.UnsubscribeRequest) error {
			cs, done, err := p.resourceSession(ctx, vs, req.Session, req.Params.URI)
			if err != nil {
				return err
			}
			err = cs.Unsubscribe(ctx, req.Params)
			done(err)
			return p.upstreamError(err)
		},
		RootsListChangedHandler: func(_ context.Context, req *mcp.RootsListChangedRequest) {
			if l, ok := p.links.Load(req.Session); ok {
				go l.(*link).rootsChanged()
			}
		},
	})
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil {
				ctx = withPrincipal(ctx, extra.TokenInfo.UserID) // whose upstream sessions serve it (userauth.go)
			}
			switch method {
			case "tools/call":
				// Its handler records a richer event. A name that is not
				// exposed gets the readable refusal and a deny event here,
				// not the SDK's "unknown tool".
				if r, ok := req.(*mcp.CallToolRequest); ok && r.Params != nil {
					if rt, ok := (*vs.routes.Load())[r.Params.Name]; !ok || !rt.exposed {
						return p.refuseUnexposed(ctx, vs, r)
					}
				}
				return next(ctx, method, req)
			case "logging/setLevel":
				res, err := next(ctx, method, req)
				if ss, ok := req.GetSession().(*mcp.ServerSession); ok && err == nil && ss.ID() != "" {
					if params, ok := req.GetParams().(*mcp.SetLoggingLevelParams); ok {
						p.linkOf(ss, name).setLevel(ctx, params.Level)
					}
				}
				return res, err
			}
			start := time.Now()
			var res mcp.Result
			var err error
			if method == "tools/list" {
				p.rediscover(ctx, name)
				if res, err = next(ctx, method, req); err == nil {
					res = p.filterTools(res, name, *vs.routes.Load(), req.GetExtra())
				}
			} else {
				res, err = next(ctx, method, req)
			}
			if err == nil && (method == "initialize" || method == "notifications/initialized") {
				err = p.onInitialize(ctx, name, method, req, res)
			}
			p.record(name, method, req, start, err)
			return res, err
		}
	})
	vs.server = srv
	return vs
}

// refuseUnexposed answers a call to a tool the virtual server does not
// expose: quarantined, unapproved, or unknown. It is a tool error the model
// can read and a deny CallEvent, like every other refusal.
func (p *Proxy) refuseUnexposed(ctx context.Context, vs *vserver, req *mcp.CallToolRequest) (mcp.Result, error) {
	if r, ok := (*vs.routes.Load())[req.Params.Name]; ok {
		// A live tool that is not approved or drifted: the call handler's
		// pin check says which.
		return p.callHandler(vs.name, r.upstream, r.name)(ctx, req)
	}
	ev := &agentv1.CallEvent{Id: newEventID(), Time: timestamppb.Now(), VirtualServer: vs.name, Method: "tools/call",
		Tool: truncate(req.Params.Name, 128), RequestBytes: int64(len(req.Params.Arguments)), Decision: agentv1.Decision_DECISION_DENY}
	if req.Extra != nil && req.Extra.TokenInfo != nil {
		ev.Principal = req.Extra.TokenInfo.UserID
	}
	ev.Reason = fmt.Sprintf("tool %q is not offered on virtual server %q", truncate(req.Params.Name, 128), vs.name)
	metrics.Calls.WithLabelValues(vs.name, "", "deny").Inc()
	p.cfg.Telemetry.Add(ev)
	return refusal("%s", ev.Reason), nil
}

// recordedMethods are the MCP requests other than tools/call that get a CallEvent.
var recordedMethods = map[string]bool{
	"initialize": true, "tools/list": true, "prompts/list": true, "prompts/get": true,
	"resources/list": true, "resources/templates/list": true, "resources/read": true,
}

// record adds a CallEvent for an MCP request other than tools/call.
func (p *Proxy) record(vs, method string, req mcp.Request, start time.Time, err error) {
	if !recordedMethods[method] {
		return
	}
	ev := &agentv1.CallEvent{Id: newEventID(), Time: timestamppb.New(start), VirtualServer: vs, Method: method,
		Decision: agentv1.Decision_DECISION_ALLOW, LatencyMicros: time.Since(start).Microseconds()}
	if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil {
		ev.Principal = extra.TokenInfo.UserID
	}
	switch x := req.GetParams().(type) {
	case *mcp.GetPromptParams:
		p.mu.Lock()
		if v := p.servers[vs]; v != nil {
			r := v.promptsAt[x.Name]
			ev.Upstream, ev.Tool = r.upstream, r.name
		}
		p.mu.Unlock()
		if ev.Tool == "" {
			ev.Tool = x.Name
		}
	case *mcp.ReadResourceParams:
		ev.Tool = x.URI
	}
	ev.Tool = truncate(ev.Tool, 128)
	if err != nil {
		ev.Error = err.Error()
		if strings.HasPrefix(ev.Error, "portcullis refused") {
			ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, ev.Error
		}
	}
	p.cfg.Telemetry.Add(ev)
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// rediscover re-lists a virtual server's upstreams in parallel and waits.
func (p *Proxy) rediscover(ctx context.Context, vsName string) {
	p.mu.Lock()
	var ups []*upstream
	if vs := p.servers[vsName]; vs != nil {
		for _, name := range vs.upstreams {
			if u := p.upstreams[name]; u != nil {
				ups = append(ups, u)
			}
		}
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Go(func() { u.refreshNow(ctx) })
	}
	wg.Wait()
}

// inventoryRefresh is how often an unchanged inventory is reported anyway,
// so the control plane's "last seen" stays current.
const inventoryRefresh = 5 * time.Minute

// upstreamChanged is called by an upstream after discovery or loss. The
// inventory is signalled only when it differs from the last one signalled
// (or that one is old): discovery runs on every client tools/list, and the
// control plane need not hear the same report each time.
func (p *Proxy) upstreamChanged(string) {
	p.mu.Lock()
	p.refreshLocked()
	p.mu.Unlock()
	digest, err := proto.MarshalOptions{Deterministic: true}.Marshal(p.Inventory())
	if err != nil {
		return
	}
	sum := sha256.Sum256(digest)
	p.invMu.Lock()
	same := sum == p.invDigest && time.Since(p.invAt) < inventoryRefresh
	if !same {
		p.invDigest, p.invAt = sum, time.Now()
	}
	p.invMu.Unlock()
	if same {
		return
	}
	select {
	case p.invChanged <- struct{}{}:
	default:
	}
}

// refreshLocked makes every virtual server expose exactly what the policy
// and the live upstreams allow.
func (p *Proxy) refreshLocked() {
	pol := p.pol.Load()
	if pol == nil {
		return
	}
	for _, vs := range p.servers {
		p.refreshTools(pol, vs)
		p.refreshPrompts(pol, vs)
		p.refreshResources(pol, vs)
	}
}

func (p *Proxy) refreshTools(pol *policy, vs *vserver) {
	v := pol.vs[vs.name]
	if v == nil {
		return
	}
	want := map[string]string{}
	defs := map[string]*mcp.Tool{}
	routes := map[string]route{}
	clash := map[string]bool{}
	for _, upName := range vs.upstreams {
		u := p.upstreams[upName]
		if u == nil {
			continue
		}
		u.mu.RLock()
		for name, lt := range u.tools {
			exposed := v.exposed(kindTool, upName, name)
			if _, dup := routes[exposed]; dup {
				clash[exposed] = true
				continue
			}
			routes[exposed] = route{upstream: upName, name: name}
			if !p.approved(pol, pinKey{kindTool, upName, name}, lt.sha) {
				continue // not approved, or drifted: hidden
			}
			want[exposed] = lt.sha + " " + upName + "/" + name // a new route re-registers the handler
			t := *lt.tool
			t.Name = exposed
			defs[exposed] = &t
		}
		u.mu.RUnlock()
	}
	for name := range clash {
		// Two upstreams offer the same exposed name: neither is exposed.
		if p.warned[pinKey{kindTool, "", name}] != "clash" {
			p.warned[pinKey{kindTool, "", name}] = "clash"
			p.log.Warn("tool name offered by more than one upstream; not exposed (rename one, or use prefixed names)", "virtual_server", vs.name, "tool", name)
		}
		delete(routes, name)
		delete(want, name)
	}
	var remove []string
	for name, sha := range vs.tools {
		if want[name] != sha {
			remove = append(remove, name)
			delete(vs.tools, name)
		}
	}
	if len(remove) > 0 {
		vs.server.RemoveTools(remove...)
	}
	for name, sha := range want {
		if _, ok := vs.tools[name]; ok {
			continue
		}
		r := routes[name]
		if err := addTool(vs.server, defs[name], p.callHandler(vs.name, r.upstream, r.name)); err != nil {
			p.log.Warn("tool not exposed", "tool", name, "err", err)
			continue
		}
		vs.tools[name] = sha
	}
	for name, r := range routes {
		_, r.exposed = vs.tools[name]
		routes[name] = r
	}
	vs.routes.Store(&routes)
}

// addTool registers t, refusing schemas the SDK would panic on.
func addTool(s *mcp.Server, t *mcp.Tool, h mcp.ToolHandler) (err error) {
	raw, err := json.Marshal(t.InputSchema)
	if err != nil {
		return fmt.Errorf("input schema: %w", err)
	}
	var schema struct {
		Type any `json:"type"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil || schema.Type != "object" {
		return errors.New(`input schema must be a JSON object with "type": "object"`)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("refused by the MCP SDK: %v", r)
		}
	}()
	s.AddTool(t, h)
	return nil
}

func fingerprint(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// approved reports whether an item's live hash is the pinned one; a drift
// is logged once per live hash.
func (p *Proxy) approved(pol *policy, key pinKey, sha string) bool {
	pin, pinned := pol.pins[key]
	if !pinned {
		return false
	}
	if pin != sha {
		if p.warned[key] != sha {
			p.warned[key] = sha
			p.log.Warn("quarantined: live definition differs from its pin", "upstream", key.upstream, "name", key.name, "kind", key.kind, "pinned", pin, "live", sha)
		}
		return false
	}
	return true
}

// refreshPrompts exposes the approved prompts, namespaced like tools.
func (p *Proxy) refreshPrompts(pol *policy, vs *vserver) {
	v := pol.vs[vs.name]
	if v == nil {
		return
	}
	want := map[string]*mcp.Prompt{}
	at := map[string]route{}
	clash := map[string]bool{}
	for _, upName := range vs.upstreams {
		if u := p.upstreams[upName]; u != nil {
			u.mu.RLock()
			for name, pr := range u.prompts {
				exposed := v.exposed(kindPrompt, upName, name)
				if _, dup := at[exposed]; dup {
					clash[exposed] = true
					continue
				}
				at[exposed] = route{upstream: upName, name: name}
				if !p.approved(pol, pinKey{kindPrompt, upName, name}, pr.sha) {
					continue
				}
				c := *pr.item
				c.Name = exposed
				want[c.Name] = &c
			}
			u.mu.RUnlock()
		}
	}
	for name := range clash {
		delete(want, name)
		delete(at, name)
	}
	var remove []string
	for name, fp := range vs.prompts {
		if w, ok := want[name]; !ok || fingerprint(w) != fp {
			remove = append(remove, name)
			delete(vs.prompts, name)
		}
	}
	if len(remove) > 0 {
		vs.server.RemovePrompts(remove...)
	}
	for name, pr := range want {
		if _, ok := vs.prompts[name]; ok && vs.promptsAt[name] == at[name] {
			continue
		}
		r := at[name]
		vs.server.AddPrompt(pr, p.promptHandler(vs.name, r.upstream, r.name))
		vs.prompts[name] = fingerprint(pr)
	}
	vs.promptsAt = at
}

// refreshResources exposes the upstreams' resources by their own URIs; on a
// URI collision the first upstream of the virtual server wins.
func (p *Proxy) refreshResources(pol *policy, vs *vserver) {
	want := map[string]*mcp.Resource{}
	owner := map[string]string{}
	wantT := map[string]*mcp.ResourceTemplate{}
	ownerT := map[string]string{}
	for _, upName := range vs.upstreams {
		if u := p.upstreams[upName]; u != nil {
			u.mu.RLock()
			for uri, r := range u.resources {
				if _, dup := want[uri]; !dup && p.approved(pol, pinKey{kindResource, upName, uri}, r.sha) {
					want[uri], owner[uri] = r.item, upName
				}
			}
			for tmpl, t := range u.templates {
				if _, dup := wantT[tmpl]; !dup && p.approved(pol, pinKey{kindTemplate, upName, tmpl}, t.sha) {
					wantT[tmpl], ownerT[tmpl] = t.item, upName
				}
			}
			u.mu.RUnlock()
		}
	}
	var remove []string
	for uri, fp := range vs.resources {
		if w, ok := want[uri]; !ok || fingerprint(w)+owner[uri] != fp {
			remove = append(remove, uri)
			delete(vs.resources, uri)
		}
	}
	if len(remove) > 0 {
		vs.server.RemoveResources(remove...)
	}
	for uri, r := range want {
		if _, ok := vs.resources[uri]; !ok {
			vs.server.AddResource(r, p.resourceHandler(vs.name, pinKey{kindResource, owner[uri], uri}))
			vs.resources[uri] = fingerprint(r) + owner[uri]
		}
	}
	remove = remove[:0]
	for tmpl, fp := range vs.templates {
		if w, ok := wantT[tmpl]; !ok || fingerprint(w)+ownerT[tmpl] != fp {
			remove = append(remove, tmpl)
			delete(vs.templates, tmpl)
		}
	}
	if len(remove) > 0 {
		vs.server.RemoveResourceTemplates(remove...)
	}
	for tmpl, t := range wantT {
		if _, ok := vs.templates[tmpl]; !ok {
			func() {
				defer func() {
					if r := recover(); r != nil {
						p.log.Warn("resource template not exposed", "template", tmpl, "err", r)
					}
				}()
				vs.server.AddResourceTemplate(t, p.resourceHandler(vs.name, pinKey{kindTemplate, ownerT[tmpl], tmpl}))
				vs.templates[tmpl] = fingerprint(t) + ownerT[tmpl]
			}()
		}
	}
}

func (p *Proxy) upstream(name string) *upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upstreams[name]
}

// upstreamList is the running upstreams, by name.
func (p *Proxy) upstreamList() []*upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*upstream, 0, len(p.upstreams))
	for _, u := range p.upstreams {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *upstream) int { return strings.Compare(a.spec.GetName(), b.spec.GetName()) })
	return out
}

// newEventID is a call event's ID: a UUIDv7 (RFC 9562) in hex, ordered by
// time so that the control plane's index on it grows at one end rather than
// taking random pages (a third less work per event in SQLite).
func newEventID() string {
	u, err := uuid.NewV7()
	if err != nil {
		u = uuid.New()
	}
	return hex.EncodeToString(u[:])
}

func refusal(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "Portcullis refused this call: " + fmt.Sprintf(format, args...)}}}
}

// callHandler forwards tools/call to the upstream after checking, at call
// time, that the live definition still matches the pin.
func (p *Proxy) callHandler(vsName, upName, toolName string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		start := time.Now()
		ev := &agentv1.CallEvent{
			Id: newEventID(), Time: timestamppb.New(start), VirtualServer: vsName, Upstream: upName,
			Method: "tools/call", Tool: toolName, RequestBytes: int64(len(req.Params.Arguments)),
			Decision: agentv1.Decision_DECISION_ALLOW,
		}
		res, err := p.forwardCall(ctx, req, upName, toolName, ev)
		ev.LatencyMicros = time.Since(start).Microseconds()
		decision := "allow"
		if ev.Decision == agentv1.Decision_DECISION_DENY {
			decision = "deny"
		}
		metrics.Calls.WithLabelValues(vsName, upName, decision).Inc()
		if err != nil {
			ev.Error = err.Error()
		}
		p.cfg.Telemetry.Add(ev)
		return res, err
	}
}

func (p *Proxy) forwardCall(ctx context.Context, req *mcp.CallToolRequest, upName, toolName string, ev *agentv1.CallEvent) (*mcp.CallToolResult, error) {
	var ti *auth.TokenInfo
	if req.Extra != nil {
		ti = req.Extra.TokenInfo
	}
	pol := p.pol.Load()
	a, reason := p.admit(ctx, pol, req.Session, ti, upName, toolName, req.Params.Arguments, ev)
	if reason != "" {
		ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, reason
		return refusal("%s", reason), nil
	}
	// The call reaches the tool: whatever it answers (a result, an error,
	// nothing), the caller has touched what its labels say.
	p.touch(ctx, a.fk, a.labels)
	if perPerson(a.u.spec) {
		if res, err := p.personal(ctx, req, a.u, ev); res != nil || err != nil {
			return res, err
		}
	}
	t0 := time.Now()
	res, err := p.callUpstream(ctx, req, a.u, ev.VirtualServer, ev.Principal, toolName)
	metrics.UpstreamSeconds.WithLabelValues(upName).Observe(time.Since(t0).Seconds())
	if err != nil || res == nil {
		var ue unavailableError
		if errors.As(err, &ue) {
			ev.Error = err.Error()
			return refusal("upstream %q is unavailable", upName), nil
		}
		if je := (*jsonrpc.Error)(nil); errors.As(err, &je) && je.Code == codeTooLarge {
			ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, tooLargeReason(p.cfg.MaxMessageBytes)
			return refusal("%s", ev.Reason), nil
		}
		return res, p.upstreamError(err)
	}
	if len(res.InputRequests) > 0 {
		if reason := screenInputRequests(res.InputRequests, pol, upName, ev); reason != "" {
			ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, reason
			return refusal("%s", reason), nil
		}
		return res, nil
	}
	res, _ = scanToolResult(res, pol.results, ev)
	return res, nil
}

// admission is what a tools/call that passed the checks needs afterwards.
type admission struct {
	u      *upstream
	labels flowLabel // the tool's data-flow labels
	fk     flowKey   // whose labels the call adds to
}

// admit runs every check before a tools/call reaches its upstream — the
// upstream is part of the virtual server, the pin, access rules and their
// conditions on args (exactly the bytes forwarded), rate limits, data flow —
// and returns why the call is refused, or "". It sets the event's principal.
func (p *Proxy) admit(ctx context.Context, pol *policy, ss *mcp.ServerSession, ti *auth.TokenInfo, upName, toolName string, args json.RawMessage, ev *agentv1.CallEvent) (admission, string) {
	u := p.upstream(upName)
	if pol == nil || u == nil || pol.vs[ev.VirtualServer] == nil || !slices.Contains(pol.vs[ev.VirtualServer].upstreams, upName) {
		return admission{}, "the upstream is not part of this virtual server"
	}
	u.fresh(ctx, p.cfg.MaxDefinitionAge)
	lt, live := u.liveTool(toolName)
	if reason := pol.pinRefusal(pinKey{kindTool, upName, toolName}, lt.sha, live); reason != "" {
		return admission{}, reason
	}
	id := identityOf(ti)
	ev.Principal = id.principal
	exposed := upName + Separator + toolName
	if reason := ambiguousArgs(args); reason != "" {
		return admission{}, reason
	}
	if ok, rule := decide(pol.access, id, ev.VirtualServer, exposed, args); !ok {
		who := id.principal
		if who == "" {
			who = "an anonymous client"
		}
		if rule == "" {
			return admission{}, fmt.Sprintf("no access rule lets %s call %q on this gateway", who, exposed)
		}
		return admission{}, fmt.Sprintf("access rule %s does not let %s call %q with these arguments", rule, who, exposed)
	}
	if reason := p.rateLimited(ctx, pol, id, exposed); reason != "" {
		return admission{}, reason
	}
	a := admission{u: u, labels: pol.labels[pinKey{kindTool, upName, toolName}], fk: flowKey{ss: ss, principal: id.principal}}
	if reason := p.flowRefusal(ctx, a.fk, a.labels, exposed); reason != "" {
		return admission{}, reason
	}
	return a, ""
}

// forwardMeta is the client's _meta as it goes upstream. To a modern upstream
// (2026-07-28) it goes as it is: its per-request keys (SEP-2575: version,
// client capabilities and info, log level) are what the upstream must honour.
// A legacy upstream would refuse the version key, so it gets a copy without
// them, but for the log level.
func forwardMeta(m mcp.Meta, up *mcp.ClientSession) mcp.Meta {
	if len(m) == 0 {
		return nil
	}
	if modern(up) {
		return maps.Clone(m)
	}
	out := make(mcp.Meta, len(m))
	for k, v := range m {
		if !strings.HasPrefix(k, "io.modelcontextprotocol/") || k == "io.modelcontextprotocol/logLevel" {
			out[k] = v
		}
	}
	return out
}

// callUpstream sends tools/call to the upstream on the session that serves
// this client request: the client session's own (sessions of ≤ 2025-11-25 with
// a stateful upstream), or a pooled one (session-less requests of 2026-07-28,
// stateless upstreams), where a legacy upstream's requests of the client
// become input requests (held.go). _meta, input responses and request state
// pass through.
func (p *Proxy) callUpstream(ctx context.Context, req *mcp.CallToolRequest, u *upstream, vs, principal, toolName string) (*mcp.CallToolResult, error) {
	if strings.HasPrefix(req.Params.RequestState, heldStatePrefix) {
		return p.resumeHeld(ctx, req, principal, vs, toolName)
	}
	params := &mcp.CallToolParams{Name: toolName, InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState}
	if len(req.Params.Arguments) > 0 {
		params.Arguments = req.Params.Arguments
	}
	var progress any
	if tok := req.Params.GetProgressToken(); tok != nil {
		gtok, done := p.relay.register(ctx, tok, req.Session)
		defer done()
		progress = gtok
	}
	shared := u.currentSession()
	if shared == nil {
		return nil, unavailableError{fmt.Errorf("upstream %q is unavailable", u.spec.GetName())}
	}
	if !pooledFor(req.Session, u, shared) {
		sess, done, err := p.linkSession(ctx, req.Session, vs, u)
		if err != nil {
			return nil, unavailableError{err}
		}
		params.Meta = forwardMeta(req.Params.Meta, sess)
		if progress != nil {
			params.SetProgressToken(progress)
		}
		ctx, cancel := context.WithTimeout(ctx, p.cfg.UpstreamTimeout)
		defer cancel()
		res, err := sess.CallTool(ctx, params)
		done(err)
		return res, err
	}
	pc, put, err := p.checkout(ctx, req.Session, u)
	if err != nil {
		return nil, unavailableError{err}
	}
	params.Meta = forwardMeta(req.Params.Meta, pc.cs)
	if progress != nil {
		params.SetProgressToken(progress)
	}
	if modern(pc.cs) {
		// A modern upstream asks in its result; nothing to hold.
		ctx, cancel := context.WithTimeout(ctx, p.cfg.UpstreamTimeout)
		defer cancel()
		res, err := pc.cs.CallTool(ctx, params)
		put(!failed(err))
		return res, err
	}
	return p.callHeld(ctx, pc, put, params, principal, vs, toolName)
}

// upstreamError passes a JSON-RPC error the upstream answered on to the
// client as that error (its code matters: -32021 for a missing client
// capability is an HTTP 400, for example), not wrapped in the SDK's text.
// Its text is the upstream's, so it is scanned like a result (scanError).
func (p *Proxy) upstreamError(err error) error {
	if err == nil {
		return nil
	}
	a := p.pol.Load().scanAction()
	var je *jsonrpc.Error
	if errors.As(err, &je) && !failed(err) {
		return scanError(je, a)
	}
	// Any other error may quote the upstream too (an HTTP body, a reason).
	var rep resultscan.Report
	msg := resultscan.Text(err.Error(), a, &rep)
	switch {
	case a == resultscan.Block && rep.Suspicious():
		return errors.New("the upstream's error was withheld because it contained " + rep.Summary())
	case rep.Modified():
		return errors.New(msg)
	}
	return err
}

// unavailableError is a failure to reach the upstream at all, as opposed to
// an error the upstream answered.
type unavailableError struct{ error }

func (e unavailableError) Unwrap() error { return e.error }

// modern reports whether an upstream session speaks protocol 2026-07-28 or later.
func modern(cs *mcp.ClientSession) bool {
	ir := cs.InitializeResult()
	return ir != nil && ir.ProtocolVersion >= statelessProtocol
}

// screenedInput screens the input requests of a prompt or resource result
// like a tool's; a refusal is an error.
func (p *Proxy) screenedInput(irs mcp.InputRequestMap, upName string) error {
	ev := &agentv1.CallEvent{}
	if reason := screenInputRequests(irs, p.pol.Load(), upName, ev); reason != "" {
		return fmt.Errorf("portcullis refused: %s", reason)
	}
	return nil
}

// screenInputRequests applies the upstream's governance and result scanning
// to the input requests of a multi round-trip result (protocol 2026-07-28)
// before they reach the client; it returns why they are refused, or "".
func screenInputRequests(irs mcp.InputRequestMap, pol *policy, upName string, ev *agentv1.CallEvent) string {
	deny := serverRequestsOf(pol, upName)
	var rep resultscan.Report
	for _, ir := range irs {
		switch x := ir.(type) {
		case *mcp.ElicitParams:
			if deny.GetDenyElicitation() {
				return fmt.Sprintf("upstream %q may not ask clients for input (elicitation) on this gateway", upName)
			}
			x.Message = resultscan.Text(x.Message, pol.results, &rep)
			x.URL = resultscan.Text(x.URL, pol.results, &rep)
			// The schema's titles, descriptions and choices are shown to
			// the person too.
			x.RequestedSchema = scanSchema(x.RequestedSchema, pol.results, &rep)
		case *mcp.CreateMessageParams:
			if deny.GetDenySampling() {
				return fmt.Sprintf("upstream %q may not ask clients for sampling on this gateway", upName)
			}
			x.SystemPrompt = resultscan.Text(x.SystemPrompt, pol.results, &rep)
			for _, m := range x.Messages {
				if m != nil {
					scanContent([]mcp.Content{m.Content}, pol.results, &rep)
				}
			}
		case *mcp.CreateMessageWithToolsParams:
			if deny.GetDenySampling() {
				return fmt.Sprintf("upstream %q may not ask clients for sampling on this gateway", upName)
			}
			scanSampling(x, pol.results, &rep)
		case *mcp.ListRootsParams:
			if deny.GetDenyRoots() {
				return fmt.Sprintf("upstream %q may not list the client's roots on this gateway", upName)
			}
		}
	}
	return scanVerdict(pol.results, &rep, ev)
}

// rateLimited counts the call against the principal's and the tool's budget
// and returns why it is refused, or "".
func (p *Proxy) rateLimited(ctx context.Context, pol *policy, id identity, exposed string) string {
	who := id.principal
	if who == "" {
		who = "anonymous"
	}
	if pol.ratePrincipal == 0 && pol.rateTool == 0 {
		return ""
	}
	if ok, retry := p.cfg.RateLimiter.Allow(ctx, "p:"+pol.gatewayID+":"+who, pol.ratePrincipal); !ok {
		return fmt.Sprintf("rate limit: %s may make %d calls a minute on this gateway; try again in %s", who, pol.ratePrincipal, retry.Round(time.Second))
	}
	if ok, retry := p.cfg.RateLimiter.Allow(ctx, "t:"+pol.gatewayID+":"+exposed, pol.rateTool); !ok {
		return fmt.Sprintf("rate limit: %q may be called %d times a minute on this gateway; try again in %s", exposed, pol.rateTool, retry.Round(time.Second))
	}
	return ""
}

// stillApproved repeats the pin check when a prompt or resource is used, as
// tools/call does: a definition that drifted since the list is refused.
func (p *Proxy) stillApproved(ctx context.Context, key pinKey) (*upstream, error) {
	pol := p.pol.Load()
	u := p.upstream(key.upstream)
	if pol == nil || u == nil {
		return nil, fmt.Errorf("upstream %q is not available on this gateway", key.upstream)
	}
	u.fresh(ctx, p.cfg.MaxDefinitionAge)
	u.mu.RLock()
	var sha string
	var offered bool
	switch key.kind {
	case kindPrompt:
		it, ok := u.prompts[key.name]
		sha, offered = it.sha, ok
	case kindResource:
		it, ok := u.resources[key.name]
		sha, offered = it.sha, ok
	case kindTemplate:
		it, ok := u.templates[key.name]
		sha, offered = it.sha, ok
	}
	u.mu.RUnlock()
	if reason := pol.pinRefusal(key, sha, offered); reason != "" {
		return nil, fmt.Errorf("portcullis refused: %s", reason)
	}
	return u, nil
}

// pinRefusal is why an item may not be used now, or "": it must be pinned,
// still offered, and its live definition must hash to the pin.
func (pol *policy) pinRefusal(key pinKey, liveSha string, offered bool) string {
	pin, pinned := pol.pins[key]
	switch {
	case !pinned:
		return fmt.Sprintf("%s %q is not approved", key.kind, key.name)
	case !offered:
		return fmt.Sprintf("%s %q is no longer offered by upstream %q", key.kind, key.name, key.upstream)
	case pin != liveSha:
		return fmt.Sprintf("%s %q is quarantined: its definition changed since it was approved", key.kind, key.name)
	}
	return ""
}

func (p *Proxy) promptHandler(vs, upName, promptName string) mcp.PromptHandler {
	return func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		key := pinKey{kindPrompt, upName, promptName}
		u, err := p.stillApproved(ctx, key)
		if err != nil {
			return nil, err
		}
		if err := p.flowGate(ctx, req.Session, req.Extra, key, "prompt "+upName+Separator+promptName); err != nil {
			return nil, err
		}
		sess, done, err := p.session(ctx, req.Session, vs, u)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, p.cfg.UpstreamTimeout)
		defer cancel()
		res, err := sess.GetPrompt(ctx, &mcp.GetPromptParams{Meta: forwardMeta(req.Params.Meta, sess), Name: promptName, Arguments: req.Params.Arguments,
			InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState})
		done(err)
		if err != nil || res == nil {
			return res, p.upstreamError(err)
		}
		if len(res.InputRequests) > 0 {
			return res, p.screenedInput(res.InputRequests, upName)
		}
		return scanPrompt(res, p.pol.Load().results)
	}
}

func (p *Proxy) resourceHandler(vs string, key pinKey) mcp.ResourceHandler {
	return func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		u, err := p.stillApproved(ctx, key)
		if err != nil {
			return nil, err
		}
		if err := p.flowGate(ctx, req.Session, req.Extra, key, "resource "+req.Params.URI); err != nil {
			return nil, err
		}
		sess, done, err := p.session(ctx, req.Session, vs, u)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, p.cfg.UpstreamTimeout)
		defer cancel()
		res, err := sess.ReadResource(ctx, &mcp.ReadResourceParams{Meta: forwardMeta(req.Params.Meta, sess), URI: req.Params.URI,
			InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState})
		done(err)
		if err != nil || res == nil {
			return res, p.upstreamError(err)
		}
		if len(res.InputRequests) > 0 {
			return res, p.screenedInput(res.InputRequests, key.upstream)
		}
		return scanResource(res, p.pol.Load().results)
	}
}

// Inventory reports every upstream's discovered tools, prompts and resources.
func (p *Proxy) Inventory() *agentv1.InventoryReport {
	rep := &agentv1.InventoryReport{}
	for _, u := range p.upstreamList() { // by name
		rep.Upstreams = append(rep.Upstreams, u.inventory())
	}
	// Within the control plane's message limit whatever the upstreams
	// offer: an upstream that does not fit is reported without its items,
	// as unreachable, so the control plane keeps what it knew of it.
	total := 0
	for i, inv := range rep.Upstreams {
		n := proto.Size(inv)
		if total+n <= maxReportBytes {
			total += n
			continue
		}
		rep.Upstreams[i] = &agentv1.UpstreamInventory{Upstream: inv.Upstream, Error: fmt.Sprintf(
			"inventory not reported: its definitions (%d bytes) would take the gateway's report past %d bytes; the gateway still serves what is pinned", n, maxReportBytes)}
	}
	return rep
}

// maxReportBytes bounds an inventory report, below the control plane's 16 MiB
// gRPC message limit (a variable for tests).
var maxReportBytes = 12 << 20

// InventoryChanged is signalled after discovery.
func (p *Proxy) InventoryChanged() <-chan struct{} { return p.invChanged }

func (p *Proxy) server(name string) *mcp.Server {
	p.mu.Lock()
	defer p.mu.Unlock()
	if vs, ok := p.servers[name]; ok {
		return vs.server
	}
	return nil
}

// isLoopback reports whether a host or host:port is localhost or a loopback
// address (as the SDK's DNS rebinding protection reads it).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Handler serves /mcp/{virtual-server} and the RFC 9728 protected-resource
// metadata that tells clients how to authenticate.
func (p *Proxy) Handler() http.Handler {
	getServer := func(r *http.Request) *mcp.Server { return p.server(r.PathValue("vs")) }
	var h http.Handler = mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{SessionTimeout: p.cfg.SessionIdle})
	if p.shared != nil {
		p.shared.sdk = h // it tries the fast path for the sessions it serves
		h = p.shared
	} else {
		sdk := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !p.fast(w, r) {
				sdk.ServeHTTP(w, r)
			}
		})
	}
	// Protocol 2026-07-28 has no sessions: each request stands alone and says
	// its version in a header. Those go to a stateless handler of the same
	// servers; everything else (initialize, session requests) to the stateful one.
	stateful, stateless := h, mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{Stateless: true})
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(sessionIDHeader) == "" && r.Header.Get("Mcp-Protocol-Version") >= statelessProtocol {
			if !p.fastStateless(w, r) {
				stateless.ServeHTTP(w, r)
			}
			return
		}
		r.Header.Del(clientHeader)
		if r.Method == http.MethodPost && r.Header.Get(sessionIDHeader) == "" {
			// It opens a session (an initialize; the SDK refuses anything
			// else without one): within the limits.
			who := clientOf(r)
			r.Header.Set(clientHeader, who)
			if reason, status := p.admitSession(who); reason != "" {
				w.Header().Set("Retry-After", "30")
				http.Error(w, "Portcullis refused a new session: "+reason, status)
				return
			}
		}
		stateful.ServeHTTP(w, r)
	})
	// W3C trace context from the client continues through the gateway to the upstream.
	h = tracing.Handler(h, "mcp", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "mcp " + r.PathValue("vs") }))
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp/{vs}", func(w http.ResponseWriter, r *http.Request) {
		// DNS rebinding: a request that reached a loopback address under
		// another host name is refused, as the SDK's handler does, before
		// the fast path too.
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && la != nil && isLoopback(la.String()) && !isLoopback(r.Host) {
			http.Error(w, fmt.Sprintf("Forbidden: invalid Host header %q", r.Host), http.StatusForbidden)
			return
		}
		vs := r.PathValue("vs")
		if p.server(vs) == nil {
			http.Error(w, fmt.Sprintf("no virtual server %q on this gateway", vs), http.StatusNotFound)
			return
		}
		if !p.readBody(w, r) {
			return
		}
		pol := p.pol.Load()
		if (pol != nil && pol.authRequired) || r.Header.Get("Authorization") != "" {
			// Client credentials are checked here and never forwarded: upstream
			// sessions are the gateway's own.
			auth.RequireBearerToken(p.verifyToken, &auth.RequireBearerTokenOptions{
				ResourceMetadataURL:    p.cfg.PublicURL + "/.well-known/oauth-protected-resource/mcp/" + url.PathEscape(vs),
				AllowMissingExpiration: true, // client keys do not expire; revocation removes them from the bundle
			})(h).ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
	metadata := func(w http.ResponseWriter, r *http.Request) {
		resource := p.cfg.PublicURL
		if vs := r.PathValue("vs"); vs != "" {
			if p.server(vs) == nil {
				http.NotFound(w, r)
				return
			}
			resource += "/mcp/" + url.PathEscape(vs)
		}
		servers := []string{}
		if pol := p.pol.Load(); pol != nil && pol.oidcIssuer != "" {
			servers = append(servers, pol.oidcIssuer)
		}
		auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
			Resource: resource, AuthorizationServers: servers, BearerMethodsSupported: []string{"header"},
			ResourceName: "Portcullis MCP gateway",
		}).ServeHTTP(w, r)
	}
	if p.users != nil {
		mux.HandleFunc("GET "+consentPath+"{state}", p.users.serveConsent)
		mux.HandleFunc("POST "+consentPath+"{state}", p.users.serveConsent)
		mux.HandleFunc("GET "+callbackPath, p.users.serveCallback)
		mux.HandleFunc("GET "+loginPath, p.users.serveLogin)
		connections := auth.RequireBearerToken(p.verifyToken, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(http.HandlerFunc(p.users.serveConnections))
		mux.Handle("GET "+connectionsPath, connections)
		mux.Handle("DELETE "+connectionsPath+"/{upstream}", connections)
	}
	mux.HandleFunc("GET /.well-known/oauth-protected-resource", metadata)
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp/{vs}", metadata)
	return mux
}
