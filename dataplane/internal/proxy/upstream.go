package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/backoff"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/canonical"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/pkgstore"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/tracing"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Bounds on what an upstream may offer. Items past them are not offered,
// and the upstream's status says which and why. The control plane accepts
// the same sizes (inventory.MaxDefinitionBytes, MaxToolNameLen, MaxURILen).
const (
	maxTools     = 2048
	maxPrompts   = 2048
	maxResources = 4096
	// maxDefinitionBytes bounds one canonical definition.
	maxDefinitionBytes = 256 << 10
	// maxUpstreamDefinitions bounds all of one upstream's definitions.
	maxUpstreamDefinitions = 8 << 20
	maxNameBytes           = 128
	maxURIBytes            = 1024
)

// itemBudget admits an upstream's listed items within the bounds, and
// remembers what it refused.
type itemBudget struct {
	total   int
	refused []string
}

func (b *itemBudget) admit(kind kind, name string, def []byte) bool {
	limit := maxNameBytes
	if kind == kindResource || kind == kindTemplate {
		limit = maxURIBytes
	}
	switch {
	case len(name) > limit:
		b.refused = append(b.refused, fmt.Sprintf("a %s whose name is longer than %d bytes (%q…)", kind, limit, truncate(name, 48)))
	case len(def) > maxDefinitionBytes:
		b.refused = append(b.refused, fmt.Sprintf("%s %q, whose definition is %d bytes (at most %d)", kind, truncate(name, 64), len(def), maxDefinitionBytes))
	case b.total+len(def) > maxUpstreamDefinitions:
		b.refused = append(b.refused, fmt.Sprintf("%s %q, past the %d bytes all of an upstream's definitions may take", kind, truncate(name, 64), maxUpstreamDefinitions))
	default:
		b.total += len(def)
		return true
	}
	return false
}

// status is the upstream's error text for what was refused, or "".
func (b *itemBudget) status() string {
	if len(b.refused) == 0 {
		return ""
	}
	const shown = 3
	msg := fmt.Sprintf("%d items not offered (too large for the gateway): %s", len(b.refused), strings.Join(b.refused[:min(shown, len(b.refused))], "; "))
	if len(b.refused) > shown {
		msg += fmt.Sprintf("; and %d more", len(b.refused)-shown)
	}
	return msg
}

// upstreamHTTPClient is shared by all Streamable HTTP upstreams; the default
// transport keeps only 2 idle connections per host, which churns TCP
// connections under concurrent calls.
var upstreamHTTPClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	return tracing.Transport(t) // passes the caller's trace context upstream
}()}

// liveTool is a tool as the upstream currently lists it.
type liveTool struct {
	tool *mcp.Tool
	def  []byte
	sha  string
}

// live is a prompt, resource or resource template as the upstream currently
// lists it, with its canonical definition and hash.
type live[T any] struct {
	item T
	def  []byte
	sha  string
}

// upstream is the gateway's session with one upstream MCP server, shared by
// all client sessions. It reconnects with backoff and rediscovers on
// list_changed notifications and periodically.
type upstream struct {
	spec     *agentv1.Upstream
	log      *slog.Logger
	onChange func(name string)
	relay    *progressRelay
	pol      func() *policy
	interval time.Duration
	timeout  time.Duration
	// maxMessage bounds one message read from the upstream (limits.go).
	maxMessage int
	// creds is what its credential reference may reach.
	creds *Credentials
	// stdio is how a stdio server may run, if at all.
	stdio *Stdio
	// packagePin is the approved dependency tree of a package upstream ("" if none).
	packagePin string
	// users holds per-person tokens (userauth.go).
	users *userAuth

	mu      sync.RWMutex
	session *mcp.ClientSession
	// sessionless is whether session has no ID (a stateless upstream).
	sessionless bool
	// noLegacySessions is the gateway's session of a modern upstream
	// (2026-07-28) under which a client's session of an earlier revision
	// came back without an ID: that upstream has no sessions for anyone, and
	// session clients use pooled sessions (pooledFor).
	noLegacySessions atomic.Pointer[mcp.ClientSession]
	// hc is the credentialed HTTP client of this connection (Streamable
	// HTTP), for raw requests without a session (fast.go).
	hc        *http.Client
	tools     map[string]liveTool
	prompts   map[string]live[*mcp.Prompt]           // by name
	resources map[string]live[*mcp.Resource]         // by URI
	templates map[string]live[*mcp.ResourceTemplate] // by URI template
	reachable bool
	lastErr   string
	listedAt  time.Time               // when the listing the state comes from began
	pkgTree   *agentv1.DiscoveredTool // a package's tree as last installed

	pool    sessionPool // sessions for session-less and stateless requests
	stopped atomic.Bool

	discoverMu sync.Mutex // one discovery at a time, so results land in order
	refreshing singleflight.Group

	rediscover chan struct{}
	cancel     context.CancelFunc
	done       chan struct{}
}

func newUpstream(spec *agentv1.Upstream, log *slog.Logger, relay *progressRelay, pol func() *policy, interval, timeout time.Duration, onChange func(string)) *upstream {
	return &upstream{
		spec: spec, log: log.With("upstream", spec.GetName()), relay: relay, pol: pol, interval: interval, timeout: timeout,
		onChange: onChange, rediscover: make(chan struct{}, 1), done: make(chan struct{}),
		tools: map[string]liveTool{}, prompts: map[string]live[*mcp.Prompt]{}, resources: map[string]live[*mcp.Resource]{},
		templates: map[string]live[*mcp.ResourceTemplate]{},
	}
}

func sameSpec(a, b *agentv1.Upstream) bool { return proto.Equal(a, b) }

// credentialTransport adds the upstream's credential to every request. The
// client's own credential never reaches it: upstream sessions are the gateway's.
type credentialTransport struct {
	base          http.RoundTripper
	header, value string
}

func (t *credentialTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(t.header, t.value)
	return t.base.RoundTrip(r)
}

func (u *upstream) start(ctx context.Context) {
	ctx, u.cancel = context.WithCancel(ctx)
	go u.run(ctx)
}

func (u *upstream) stop() {
	u.stopped.Store(true)
	u.cancel()
	<-u.done
	u.pool.closeAll()
}

func (u *upstream) kick() {
	select {
	case u.rediscover <- struct{}{}:
	default:
	}
}

// transport connects to u; standalone opens the SDK's standalone stream of a
// Streamable HTTP session (for the gateway's own session; a client's
// sessions get one only while the client has its own: standalone.go).
//
// The gateway's own session (standalone) carries the upstream's credential;
// a client's carries what clientFor says for its principal.
func (u *upstream) transport(standalone bool, principal string) (mcp.Transport, error) {
	switch u.spec.GetTransport() {
	case agentv1.Transport_TRANSPORT_STREAMABLE_HTTP:
		var client *http.Client
		var err error
		if standalone {
			client, err = u.httpClient()
		} else {
			client, err = u.clientFor(principal)
		}
		if err != nil {
			return nil, err
		}
		limit := u.limit()
		client = &http.Client{Transport: &limitedTransport{base: client.Transport, limit: limit}}
		return &mcp.StreamableClientTransport{Endpoint: u.spec.GetUrl(), HTTPClient: client, DisableStandaloneSSE: !standalone,
			MaxEventSize: limit + 64}, nil
	case agentv1.Transport_TRANSPORT_STDIO, agentv1.Transport_TRANSPORT_PACKAGE:
		// Only what the operator allows, as the stdio user (stdio.go); its
		// credential is the variable its reference names. A package is
		// installed and verified first (pkgstore).
		var credEnv string
		if ref := u.spec.GetCredentialRef(); ref != "" {
			kind, name, _ := strings.Cut(ref, ":")
			if kind != "env" {
				return nil, fmt.Errorf("credential %s: a stdio server's credential is a variable (env:NAME) it is given", ref)
			}
			v, err := u.creds.resolve(ref)
			if err != nil {
				return nil, err
			}
			credEnv = name + "=" + v
		}
		var cmd *exec.Cmd
		var err error
		if pkg := u.spec.GetPackage(); u.spec.GetTransport() == agentv1.Transport_TRANSPORT_PACKAGE {
			var installed pkgstore.Installed
			cmd, installed, err = u.stdio.packageCommand(context.Background(), u.spec.GetName(), pkgstore.Spec{Ecosystem: pkg.GetEcosystem(),
				Name: pkg.GetName(), Version: pkg.GetVersion(), Integrity: pkg.GetIntegrity(), Bin: pkg.GetBin()}, u.packagePin, u.spec.GetArgs(), credEnv)
			tree, sha := installed.Tree, installed.TreeSHA
			if served := (*pkgstore.ServedError)(nil); errors.As(err, &served) {
				// Another archive than the pinned one: reported for approval.
				if t, s, terr := served.Tree(); terr == nil {
					tree, sha = t, s
				}
			}
			if tree != nil {
				u.mu.Lock()
				u.pkgTree = &agentv1.DiscoveredTool{Name: pkg.GetEcosystem() + ":" + pkg.GetName(), Sha256: sha, Definition: tree}
				u.mu.Unlock()
			}
		} else {
			cmd, err = u.stdio.command(u.spec.GetName(), append([]string{u.spec.GetCommand()}, u.spec.GetArgs()...), credEnv)
		}
		if err != nil {
			return nil, err
		}
		return &commandTransport{cmd: cmd, limit: u.limit(), user: u.stdio.Username}, nil
	default:
		return nil, fmt.Errorf("unsupported transport %v", u.spec.GetTransport())
	}
}

// httpClient is the HTTP client for a Streamable HTTP upstream, with its
// credential.
func (u *upstream) httpClient() (*http.Client, error) {
	ref := u.spec.GetCredentialRef()
	if ref == "" || u.spec.GetAuth().GetMode() == agentv1.AuthMode_AUTH_MODE_NONE {
		return upstreamHTTPClient, nil
	}
	secret, err := u.creds.resolve(ref)
	if err != nil {
		return nil, err
	}
	header, value := u.spec.GetCredentialHeader(), secret
	if header == "" || strings.EqualFold(header, "Authorization") {
		header, value = "Authorization", "Bearer "+secret
	}
	return &http.Client{Transport: &credentialTransport{base: upstreamHTTPClient.Transport, header: header, value: value}}, nil
}

// clientFor is the HTTP client of requests made for a client's principal:
// with per-person authorization, one that adds the principal's own token
// (userauth.go), and refuses an anonymous client (never the upstream's
// credential, which serves only the gateway's discovery); otherwise the
// upstream's credential.
func (u *upstream) clientFor(principal string) (*http.Client, error) {
	if !perPerson(u.spec) {
		return u.httpClient()
	}
	if u.users == nil {
		return nil, fmt.Errorf("upstream %q acts as each person, and this gateway keeps no tokens", u.spec.GetName())
	}
	return &http.Client{Transport: &userTransport{base: upstreamHTTPClient.Transport, a: u.users, u: u, principal: principal}}, nil
}

// run connects, discovers, and waits for the session to end, then reconnects.
func (u *upstream) run(ctx context.Context) {
	defer close(u.done)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := u.connectAndServe(ctx)
		if ctx.Err() != nil {
			break
		}
		u.setDown(err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff.Delay(attempt, 500*time.Millisecond, 30*time.Second)):
		}
	}
	u.mu.Lock()
	if u.session != nil {
		_ = u.session.Close()
		u.session = nil
	}
	u.mu.Unlock()
}

func (u *upstream) setDown(err error) {
	u.mu.Lock()
	u.session = nil
	u.reachable = false
	if err != nil {
		u.lastErr = err.Error()
	}
	u.mu.Unlock()
	u.log.Warn("upstream unavailable", "err", err)
	u.onChange(u.spec.GetName())
}

func (u *upstream) connectAndServe(ctx context.Context) error {
	t, err := u.transport(true, "")
	if err != nil {
		return err
	}
	if u.spec.GetTransport() == agentv1.Transport_TRANSPORT_STREAMABLE_HTTP {
		hc, err := u.httpClient()
		if err != nil {
			return err
		}
		u.mu.Lock()
		u.hc = hc
		u.mu.Unlock()
	}
	// The gateway's own session declares every client capability, so that it
	// discovers the tools an upstream offers only to clients that can sample,
	// elicit or list roots. Requests the upstream sends on it reach no client.
	client := mcp.NewClient(&mcp.Implementation{Name: "portcullis-gateway", Version: "0.1.0"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{
			Sampling:    &mcp.SamplingCapabilities{},
			Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}, URL: &mcp.URLElicitationCapabilities{}},
			RootsV2:     &mcp.RootCapabilities{ListChanged: true},
		},
		ToolListChangedHandler:     func(context.Context, *mcp.ToolListChangedRequest) { u.kick() },
		PromptListChangedHandler:   func(context.Context, *mcp.PromptListChangedRequest) { u.kick() },
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { u.kick() },
		ProgressNotificationHandler: func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
			u.relay.forward(ctx, req.Params, u.pol())
		},
		MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
	})
	client.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "sampling/createMessage", "elicitation/create", "roots/list":
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
					Message: "Portcullis: this upstream session is shared by clients, so " + method + " cannot be routed to one; use a stateful session"}
			}
			return next(ctx, method, req)
		}
	})
	cctx, cancel := context.WithTimeout(ctx, u.timeout)
	sess, err := client.Connect(cctx, t, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer sess.Close()
	if err := u.discover(ctx, sess); err != nil {
		return err
	}
	ended := make(chan error, 1)
	go func() { ended <- sess.Wait() }()
	ticker := time.NewTicker(u.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-ended:
			if err == nil {
				err = errors.New("session closed by upstream")
			}
			return err
		case <-u.rediscover:
		case <-ticker.C:
		}
		if err := u.discover(ctx, sess); err != nil {
			return err
		}
	}
}

// refreshNow re-lists the upstream before a client's tools/list is answered,
// so a definition changed upstream is quarantined in that very answer, not
// at the next periodic discovery. Concurrent callers share one listing; a
// failure leaves the last known state (the session loop handles reconnects).
func (u *upstream) refreshNow(ctx context.Context) {
	sess := u.currentSession()
	if sess == nil {
		return
	}
	ch := u.refreshing.DoChan("", func() (any, error) {
		// Detached from the first caller, so its cancellation does not fail the others.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(u.timeout, syncRefreshTimeout))
		defer cancel()
		return nil, u.discover(dctx, sess)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			u.log.Warn("rediscovery before tools/list failed; answering from the last listing", "err", r.Err)
		}
	case <-ctx.Done():
	}
}

// syncRefreshTimeout bounds how long a client's tools/list waits for an upstream.
const syncRefreshTimeout = 10 * time.Second

// discover lists tools, prompts and resources and publishes the result.
func (u *upstream) discover(ctx context.Context, sess *mcp.ClientSession) error {
	u.discoverMu.Lock()
	defer u.discoverMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	started := time.Now()
	caps := sess.InitializeResult().Capabilities
	var budget itemBudget
	tools := map[string]liveTool{}
	if caps == nil || caps.Tools != nil {
		for t, err := range sess.Tools(ctx, nil) {
			if err != nil {
				return fmt.Errorf("listing tools: %w", err)
			}
			if len(tools) >= maxTools {
				return fmt.Errorf("upstream lists more than %d tools", maxTools)
			}
			def, sha, err := canonical.Tool(t)
			if err != nil {
				u.log.Warn("tool skipped", "tool", t.Name, "err", err)
				continue
			}
			if !budget.admit(kindTool, t.Name, def) {
				continue
			}
			tools[t.Name] = liveTool{tool: t, def: def, sha: sha}
		}
	}
	prompts := map[string]live[*mcp.Prompt]{}
	if caps != nil && caps.Prompts != nil {
		for p, err := range sess.Prompts(ctx, nil) {
			if err != nil {
				return fmt.Errorf("listing prompts: %w", err)
			}
			if len(prompts) >= maxPrompts {
				break
			}
			def, sha, err := canonical.Prompt(p)
			if err != nil {
				u.log.Warn("prompt skipped", "prompt", p.Name, "err", err)
				continue
			}
			if !budget.admit(kindPrompt, p.Name, def) {
				continue
			}
			prompts[p.Name] = live[*mcp.Prompt]{p, def, sha}
		}
	}
	resources := map[string]live[*mcp.Resource]{}
	templates := map[string]live[*mcp.ResourceTemplate]{}
	if caps != nil && caps.Resources != nil {
		for r, err := range sess.Resources(ctx, nil) {
			if err != nil {
				return fmt.Errorf("listing resources: %w", err)
			}
			if len(resources) >= maxResources {
				break
			}
			def, sha, err := canonical.Resource(r)
			if err != nil {
				u.log.Warn("resource skipped", "uri", r.URI, "err", err)
				continue
			}
			if !budget.admit(kindResource, r.URI, def) {
				continue
			}
			resources[r.URI] = live[*mcp.Resource]{r, def, sha}
		}
		for rt, err := range sess.ResourceTemplates(ctx, nil) {
			if err != nil {
				return fmt.Errorf("listing resource templates: %w", err)
			}
			if len(templates) >= maxResources {
				break
			}
			def, sha, err := canonical.ResourceTemplate(rt)
			if err != nil {
				u.log.Warn("resource template skipped", "template", rt.URITemplate, "err", err)
				continue
			}
			if !budget.admit(kindTemplate, rt.URITemplate, def) {
				continue
			}
			templates[rt.URITemplate] = live[*mcp.ResourceTemplate]{rt, def, sha}
		}
	}
	sessionless := sess.ID() == ""
	u.mu.Lock()
	if u.session != nil && u.session != sess {
		u.mu.Unlock()
		return nil // the session was replaced while listing; its own discovery wins
	}
	u.session, u.tools, u.prompts, u.resources, u.templates = sess, tools, prompts, resources, templates
	u.sessionless = sessionless
	u.listedAt = started
	u.reachable, u.lastErr = true, budget.status()
	u.mu.Unlock()
	if len(budget.refused) > 0 {
		u.log.Warn("upstream items not offered", "reason", u.lastErr)
	}
	u.log.Debug("discovered", "tools", len(tools), "prompts", len(prompts), "resources", len(resources))
	u.onChange(u.spec.GetName())
	return nil
}

func (u *upstream) liveTool(name string) (liveTool, bool) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	t, ok := u.tools[name]
	return t, ok
}

// fresh makes sure the upstream's definitions were listed at most maxAge
// ago, listing again first if not (one listing for every caller waiting).
// A tool that changed silently is then seen at its next call.
func (u *upstream) fresh(ctx context.Context, maxAge time.Duration) {
	u.mu.RLock()
	age := time.Since(u.listedAt)
	u.mu.RUnlock()
	if age > maxAge {
		u.refreshNow(ctx)
	}
}

// stateless reports whether the upstream serves without sessions: over HTTP it
// gave the gateway's session no ID, so per-client sessions would hold no
// state of their own and the gateway's session is shared instead. A stdio
// upstream is one process with one session: each client gets its own.
func (u *upstream) stateless(shared *mcp.ClientSession) bool {
	if u.spec.GetTransport() != agentv1.Transport_TRANSPORT_STREAMABLE_HTTP {
		return false
	}
	u.mu.RLock()
	known, none := u.session == shared, u.sessionless
	u.mu.RUnlock()
	if known {
		// As discovery found it: the SDK locks the connection to read the ID,
		// a lock every call of every client would take.
		return none
	}
	return shared.ID() == ""
}

// rawClient is the credentialed HTTP client of the current connection.
func (u *upstream) rawClient() *http.Client {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.hc
}

func (u *upstream) currentSession() *mcp.ClientSession {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.session
}

func (u *upstream) inventory() *agentv1.UpstreamInventory {
	u.mu.RLock()
	defer u.mu.RUnlock()
	inv := &agentv1.UpstreamInventory{Upstream: u.spec.GetName(), Reachable: u.reachable, Error: u.lastErr, Package: u.pkgTree}
	for name, t := range u.tools {
		inv.Tools = append(inv.Tools, &agentv1.DiscoveredTool{Name: name, Sha256: t.sha, Definition: t.def})
	}
	for name, p := range u.prompts {
		inv.Prompts = append(inv.Prompts, &agentv1.DiscoveredTool{Name: name, Sha256: p.sha, Definition: p.def})
	}
	for uri, r := range u.resources {
		inv.Resources = append(inv.Resources, &agentv1.DiscoveredTool{Name: uri, Sha256: r.sha, Definition: r.def})
	}
	for tmpl, t := range u.templates {
		inv.ResourceTemplates = append(inv.ResourceTemplates, &agentv1.DiscoveredTool{Name: tmpl, Sha256: t.sha, Definition: t.def})
	}
	for _, l := range [][]*agentv1.DiscoveredTool{inv.Tools, inv.Prompts, inv.Resources, inv.ResourceTemplates} {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	return inv
}
