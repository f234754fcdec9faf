package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/resultscan"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// The relay: every client session gets its own session with each upstream it
// uses, opened on first use with the client's capabilities and protocol
// version, and closed when the client session ends. What an upstream asks of
// a client (sampling, elicitation, roots) and what it tells it (logging,
// progress, resource updates) goes to that client session only, after the
// bundle's governance and result scanning. See DESIGN.md beside this file.

// link is one client session's upstream sessions.
type link struct {
	p  *Proxy
	ss *mcp.ServerSession
	vs string
	// principal is whom the client session authenticated as, from the
	// request that first opened an upstream session (the SDK holds a
	// session to one user).
	principal string

	mu     sync.Mutex
	ups    map[string]*upConn // by upstream name
	level  mcp.LoggingLevel   // the client's logging/setLevel, replayed on sessions opened later
	closed bool
	// inflight are the contexts of the client's requests being relayed now,
	// newest last. What an upstream asks during one is sent in the newest's
	// context, so that the SDK puts it on that request's response stream.
	inflight []*context.Context

	fast // tools/call relayed as raw JSON-RPC (fast.go)
}

// track records a client request in flight until the returned func is called.
func (l *link) track(ctx context.Context) func() {
	c := &ctx
	l.mu.Lock()
	l.inflight = append(l.inflight, c)
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		l.inflight = slices.DeleteFunc(l.inflight, func(x *context.Context) bool { return x == c })
		l.mu.Unlock()
	}
}

// clientContext is the context to send a request to the client in: the
// newest client request in flight (its values), ended when upCtx ends too.
func (l *link) clientContext(upCtx context.Context) (context.Context, context.CancelFunc) {
	l.mu.Lock()
	base := context.WithoutCancel(upCtx)
	if n := len(l.inflight); n > 0 {
		base = *l.inflight[n-1]
	}
	l.mu.Unlock()
	ctx, cancel := context.WithCancel(base)
	stop := context.AfterFunc(upCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// upConn is one upstream session of a link, opened once.
type upConn struct {
	ready   chan struct{} // closed once the session is open or err is set
	l       *link
	u       *upstream
	id      string // the session's ID, read once (the SDK locks the connection to read it)
	version string // its protocol revision
	err     error
	hc      *http.Client // the session's HTTP client, for raw requests on it (fast.go)
	// watching is set once its standalone stream is relayed (standalone.go).
	watching atomic.Bool
	ends     ends // when the session ends (or failed to open)

	// The session's SDK client, while requests use it (park.go).
	mu     sync.Mutex
	client *mcp.Client
	cs     *mcp.ClientSession
	rt     *resumable            // cs's HTTP transport
	init   *mcp.InitializeResult // the upstream's, to take the session up again
	users  int                   // requests using cs
	idle   *time.Timer           // parks cs once no request used it for parkAfter
	closed bool
}

// linkOf returns the link of a client session, creating it on first use; it
// closes its upstream sessions when the client session ends.
func (p *Proxy) linkOf(ss *mcp.ServerSession, vs string) *link {
	if l, ok := p.links.Load(ss); ok {
		return l.(*link)
	}
	l, loaded := p.links.LoadOrStore(ss, &link{p: p, ss: ss, vs: vs, ups: map[string]*upConn{}, fast: fast{asking: make(chan struct{}, maxPendingAsks)}})
	if !loaded {
		p.onEnd(ss, func() {
			p.links.Delete(ss)
			p.fastLinks.CompareAndDelete(ss.ID(), l)
			l.(*link).close()
		})
	}
	return l.(*link)
}

// ends is what to do when a session ends. The SDK says when
// (SessionClosedHandler, patch 3 of third_party/go-sdk), so an idle session
// has no goroutine of the gateway's waiting for its end: what the gateway
// keeps for a client session (its link, its flow labels, its place in the
// session count) and for an upstream session is forgotten from there.
type ends struct {
	mu    sync.Mutex
	fns   []func()
	ended bool
}

// add runs fn when it ends, or now if it has; in a goroutine, so fn may
// take locks its caller holds.
func (e *ends) add(fn func()) {
	e.mu.Lock()
	if e.ended {
		e.mu.Unlock()
		go fn()
		return
	}
	e.fns = append(e.fns, fn)
	e.mu.Unlock()
}

// end runs what was added, once, in a goroutine of its own: the SDK calls
// its handler as the session's connection finishes, where nothing may block.
func (e *ends) end() {
	e.mu.Lock()
	fns := e.fns
	e.fns, e.ended = nil, true
	e.mu.Unlock()
	if len(fns) > 0 {
		go func() {
			for _, fn := range fns {
				fn()
			}
		}()
	}
}

// onEnd runs fn when ss ends, or now if it has ended. It is called while ss
// serves a request, or right after it was connected (or on the fast path,
// which may race with the end).
func (p *Proxy) onEnd(ss *mcp.ServerSession, fn func()) {
	v, _ := p.ends.LoadOrStore(weak.Make(ss), &ends{})
	v.(*ends).add(fn)
}

// sessionClosed is the virtual servers' SessionClosedHandler. What ended is
// kept a while (endedGrace), so that a late onEnd still finds it ended; by
// a weak key, so that it does not keep the session itself.
func (p *Proxy) sessionClosed(ss *mcp.ServerSession) {
	k := weak.Make(ss)
	v, _ := p.ends.LoadOrStore(k, &ends{})
	e := v.(*ends)
	e.end()
	time.AfterFunc(endedGrace, func() { p.ends.CompareAndDelete(k, e) })
}

// endedGrace is how long an ended session's record is kept.
const endedGrace = time.Minute

func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	conns := l.ups
	l.ups = map[string]*upConn{}
	l.mu.Unlock()
	for _, c := range conns {
		go c.close()
	}
}

// close closes the session once it is open.
func (c *upConn) close() {
	<-c.ready
	if c.err != nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	cs := c.cs
	c.mu.Unlock()
	if cs != nil {
		_ = cs.Close() // its SessionClosedHandler ends c
		return
	}
	c.hangUp()
	c.ends.end()
}

// open returns the link's session with u, opening it on first use, and
// acquires its SDK client (release it once done). A failed open is
// forgotten, so the next request tries again.
func (l *link) open(ctx context.Context, u *upstream) (*upConn, *mcp.ClientSession, error) {
	c, err := l.conn(ctx, u, true)
	if err != nil {
		return nil, nil, err
	}
	cs, err := c.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, cs, nil
}

// conn returns the link's session with u, opening it on first use. A failed
// open is forgotten, so the next request tries again. Unless sdk, a session
// it opens is parked at once: its caller makes raw requests (fast.go).
func (l *link) conn(ctx context.Context, u *upstream, sdk bool) (*upConn, error) {
	name := u.spec.GetName()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("the client session has ended")
	}
	c := l.ups[name]
	if c != nil && c.u != u { // the upstream was reconfigured: start afresh
		delete(l.ups, name)
		go c.close()
		c = nil
	}
	owner := c == nil
	if owner {
		c = &upConn{ready: make(chan struct{}), l: l, u: u}
		l.ups[name] = c
	}
	if pr := principalFrom(ctx); l.principal == "" && pr != "" {
		l.principal = pr
	}
	level := l.level
	l.mu.Unlock()
	if owner {
		var rt *resumable
		if u.spec.GetTransport() == agentv1.Transport_TRANSPORT_STREAMABLE_HTTP {
			rt = &resumable{}
		}
		c.client, c.cs, c.err = l.dial(ctx, u, "", rt, c.ended(rt))
		if c.err == nil {
			c.rt, c.init = rt, c.cs.InitializeResult()
			if c.init != nil {
				c.version = c.init.ProtocolVersion
			}
		}
		if c.err == nil && rt != nil {
			c.hc, _ = u.clientFor(l.principal)
			c.id = c.cs.ID()
			if shared := u.currentSession(); c.id == "" && shared != nil && modern(shared) && !c.modern() {
				u.noLegacySessions.Store(shared) // the next clients are pooled
			}
		}
		if c.err == nil && level != "" {
			if err := c.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: level}); err != nil {
				l.p.log.Debug("upstream refused the client's logging level", "upstream", name, "err", err)
			}
		}
		close(c.ready)
		// An upstream session that ends (the upstream restarted, or dropped
		// it) is opened afresh on the client's next request; a failed open too.
		forget := func() {
			l.mu.Lock()
			if l.ups[name] == c {
				delete(l.ups, name)
			}
			l.mu.Unlock()
		}
		c.ends.add(forget)
		if c.err != nil {
			forget()
		} else {
			if l.streaming.Load() {
				l.watch(c)
			}
			if !sdk {
				c.park()
			}
		}
	} else {
		select {
		case <-c.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c, c.err
}

// dial connects to u on behalf of the link's client: its declared
// capabilities, in version ("" for the client's), over rt (nil but for
// Streamable HTTP), with handlers that route what the upstream sends to this
// client.
func (l *link) dial(ctx context.Context, u *upstream, version string, rt *resumable, ended func()) (*mcp.Client, *mcp.ClientSession, error) {
	var caps *mcp.ClientCapabilities
	if ip := l.ss.InitializeParams(); ip != nil {
		caps = ip.Capabilities
		if version == "" {
			version = ip.ProtocolVersion
		}
	}
	name := u.spec.GetName()
	return l.p.dialUpstream(ctx, u, caps, version, l.principal, upstreamHandlers{
		onRequest: func(ctx context.Context, method string, params mcp.Params) (mcp.Result, error) {
			cctx, done := l.clientContext(ctx)
			defer done()
			return l.p.toClient(cctx, l.ss, l.vs, name, method, params)
		},
		onLog: func(ctx context.Context, params *mcp.LoggingMessageParams) {
			cctx, done := l.clientContext(ctx)
			defer done()
			l.p.relayLog(cctx, context.WithoutCancel(ctx), l.ss, name, params)
		},
		onProgress: func(ctx context.Context, params *mcp.ProgressNotificationParams) {
			l.p.relay.forward(ctx, params, l.p.pol.Load())
		},
		onResourceUpdated: func(ctx context.Context, params *mcp.ResourceUpdatedNotificationParams) {
			if srv := l.p.server(l.vs); srv != nil {
				_ = srv.ResourceUpdated(ctx, params)
			}
		},
		onElicitationComplete: func(ctx context.Context, params *mcp.ElicitationCompleteParams) {
			_ = l.ss.NotifyElicitationComplete(ctx, params)
		},
		onEnd: ended,
		rt:    rt,
	})
}

// upstreamHandlers route what an upstream sends on a session the gateway
// opened for clients; nil ones drop it.
type upstreamHandlers struct {
	// onRequest answers sampling/createMessage, elicitation/create and roots/list.
	onRequest             func(ctx context.Context, method string, params mcp.Params) (mcp.Result, error)
	onLog                 func(context.Context, *mcp.LoggingMessageParams)
	onProgress            func(context.Context, *mcp.ProgressNotificationParams)
	onResourceUpdated     func(context.Context, *mcp.ResourceUpdatedNotificationParams)
	onElicitationComplete func(context.Context, *mcp.ElicitationCompleteParams)
	// onEnd is called once the session has ended; it must not block.
	onEnd func()
	// rt, if set, carries a Streamable HTTP session's requests (park.go).
	rt *resumable
}

// dialUpstream opens a session with u declaring a client's capabilities (less
// what the bundle denies this upstream) in the client's protocol version
// ("" for the newest both speak).
func (p *Proxy) dialUpstream(ctx context.Context, u *upstream, c *mcp.ClientCapabilities, version, principal string, h upstreamHandlers) (*mcp.Client, *mcp.ClientSession, error) {
	t, err := u.transport(false, principal)
	if err != nil {
		return nil, nil, err
	}
	if st, ok := t.(*mcp.StreamableClientTransport); ok && h.rt != nil {
		h.rt.base = st.HTTPClient.Transport
		st.HTTPClient = &http.Client{Transport: h.rt}
	}
	caps := &mcp.ClientCapabilities{}
	if c != nil {
		caps.Sampling, caps.Elicitation = c.Sampling, c.Elicitation
		caps.Experimental, caps.Extensions = c.Experimental, c.Extensions
		if c.RootsV2 != nil { // the SDK sets it when the client declared roots
			caps.RootsV2 = &mcp.RootCapabilities{ListChanged: c.RootsV2.ListChanged}
		}
	}
	deny := serverRequestsOf(p.pol.Load(), u.spec.GetName())
	if deny.GetDenySampling() {
		caps.Sampling = nil
	}
	if deny.GetDenyElicitation() {
		caps.Elicitation = nil
	}
	if deny.GetDenyRoots() {
		caps.RootsV2 = nil
	}
	name := u.spec.GetName()
	opts := &mcp.ClientOptions{
		Capabilities:               caps,
		ToolListChangedHandler:     func(context.Context, *mcp.ToolListChangedRequest) { u.kick() },
		PromptListChangedHandler:   func(context.Context, *mcp.PromptListChangedRequest) { u.kick() },
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { u.kick() },
		// Input requests of a modern upstream go to the client as they are:
		// the SDK's server asks a legacy client itself and retries the handler.
		MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
	}
	// Each handler holds only the function it calls (not a copy of h): they
	// are kept for as long as the session.
	if f := h.onResourceUpdated; f != nil {
		opts.ResourceUpdatedHandler = func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) { f(ctx, req.Params) }
	}
	if f := h.onLog; f != nil {
		opts.LoggingMessageHandler = func(ctx context.Context, req *mcp.LoggingMessageRequest) { f(ctx, req.Params) }
	}
	if f := h.onProgress; f != nil {
		opts.ProgressNotificationHandler = func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) { f(ctx, req.Params) }
	}
	if f := h.onEnd; f != nil {
		opts.SessionClosedHandler = func(*mcp.ClientSession) { f() }
	}
	if f := h.onElicitationComplete; f != nil {
		opts.ElicitationCompleteHandler = func(ctx context.Context, req *mcp.ElicitationCompleteNotificationRequest) { f(ctx, req.Params) }
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "portcullis-gateway", Version: p.cfg.Version}, opts)
	onRequest := h.onRequest
	client.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "sampling/createMessage", "elicitation/create", "roots/list":
				if onRequest == nil {
					return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "Portcullis: " + method + " cannot be routed to a client"}
				}
				return onRequest(ctx, method, req.GetParams())
			}
			return next(ctx, method, req)
		}
	})
	// The session outlives this request (it ends with the client session or
	// the gateway), and must not carry the request's values: the SDK would
	// route what the upstream sends later to that request's stream.
	cctx, cancel := context.WithTimeout(p.ctx, u.timeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	cs, err := client.Connect(cctx, t, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to upstream %q for this client: %w", name, err)
	}
	return client, cs, nil
}

// conns returns the link's open upstream sessions.
func (l *link) conns() []*upConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*upConn, 0, len(l.ups))
	for _, c := range l.ups {
		out = append(out, c)
	}
	return out
}

// setLevel forwards the client's logging level to its open upstream sessions
// and remembers it for those opened later.
func (l *link) setLevel(ctx context.Context, level mcp.LoggingLevel) {
	l.mu.Lock()
	l.level = level
	l.mu.Unlock()
	for _, c := range l.conns() {
		select {
		case <-c.ready:
		case <-ctx.Done():
			return
		}
		if cs, err := c.acquire(ctx); err == nil {
			_ = cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: level})
			c.release()
		}
	}
}

// rootsChanged tells the link's upstream sessions that the client's roots
// changed; they ask again with roots/list, which the gateway relays.
func (l *link) rootsChanged() {
	for _, c := range l.conns() {
		<-c.ready
		if _, err := c.acquire(l.p.ctx); err == nil {
			// The SDK notifies on every AddRoots; the list itself is never
			// read, since roots/list is relayed to the client.
			c.mu.Lock()
			client := c.client
			c.mu.Unlock()
			client.AddRoots(&mcp.Root{URI: "portcullis:relay"})
			c.release()
		}
	}
}

// pooledFor reports whether requests of the client session ss to u go to a
// pooled session by capability set (pool.go) rather than ss's own: when ss is
// session-less (protocol 2026-07-28) or the upstream is stateless (it gave
// the gateway's session, shared, no ID, so per-client sessions would hold
// nothing). A modern upstream's session (shared) has no ID by the revision's
// design, yet it may well serve clients of earlier revisions in sessions, as
// the go-sdk's servers do: those get sessions of their own, in their
// revision, as with any stateful upstream, unless one came back without an ID.
func pooledFor(ss *mcp.ServerSession, u *upstream, shared *mcp.ClientSession) bool {
	if ss == nil || ss.ID() == "" {
		return true
	}
	if modern(shared) {
		return u.noLegacySessions.Load() == shared
	}
	return u.stateless(shared)
}

// session returns the upstream session that serves a request of the client
// session ss: its own (linkSession) or a pooled one (pooledFor), checked out
// until the caller calls done with the request's outcome. A session that
// failed (not an error the upstream answered) is not used again.
// Server-initiated requests on a pooled session are refused here: only
// tools/call holds calls for them (held.go).
func (p *Proxy) session(ctx context.Context, ss *mcp.ServerSession, vs string, u *upstream) (cs *mcp.ClientSession, done func(error), err error) {
	shared := u.currentSession()
	if shared == nil {
		return nil, nil, fmt.Errorf("upstream %q is unavailable", u.spec.GetName())
	}
	if pooledFor(ss, u, shared) {
		pc, put, err := p.checkout(ctx, ss, u)
		if err != nil {
			return nil, nil, err
		}
		return pc.cs, func(err error) { put(!failed(err)) }, nil
	}
	return p.linkSession(ctx, ss, vs, u)
}

// linkSession returns the client session's own session with u, opened on
// first use, and done, which ends the request's tracking and drops the
// session if the request found it failed.
func (p *Proxy) linkSession(ctx context.Context, ss *mcp.ServerSession, vs string, u *upstream) (cs *mcp.ClientSession, done func(error), err error) {
	l := p.linkOf(ss, vs)
	c, cs, err := l.open(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	untrack := l.track(ctx)
	return cs, func(err error) {
		untrack()
		c.release()
		if failed(err) {
			l.drop(u.spec.GetName(), c)
		}
	}, nil
}

// codeRejected is the go-sdk's code for a message its transport could not
// deliver (jsonrpc2.ErrRejected, internal to the SDK): no answer from the
// upstream, though it is a *jsonrpc.Error.
const codeRejected = -32005

// brokenCodes are the go-sdk's codes for a session that is going or gone
// (internal/jsonrpc2: client closing, server closing, rejected by transport).
var brokenCodes = map[int64]bool{-32003: true, -32004: true, codeRejected: true}

// failed reports whether a request's error means its session failed (the
// upstream lost it, or the transport broke), as opposed to an error the
// upstream answered or the request's own deadline.
func failed(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, mcp.ErrSessionMissing) || errors.Is(err, mcp.ErrConnectionClosed) {
		return true
	}
	var je *jsonrpc.Error
	return !errors.As(err, &je) || brokenCodes[je.Code]
}

// drop closes and forgets the link's session with an upstream if it is c,
// so that the client's next request opens a new one.
func (l *link) drop(name string, c *upConn) {
	l.mu.Lock()
	if l.ups[name] != c {
		c = nil
	} else {
		delete(l.ups, name)
	}
	l.mu.Unlock()
	if c != nil {
		go c.close()
	}
}

// serverRequestsOf is what the bundle says an upstream may ask of clients.
func serverRequestsOf(pol *policy, upstream string) *agentv1.ServerRequests {
	if pol == nil {
		return nil
	}
	return pol.serverRequests[upstream]
}

// toClient relays a request an upstream sends to a client (sampling,
// elicitation, roots) to the client session that caused it, if the bundle
// allows it, with the upstream's text scanned. Every relayed or refused
// request is a CallEvent.
func (p *Proxy) toClient(ctx context.Context, ss *mcp.ServerSession, vs, upName, method string, params mcp.Params) (res mcp.Result, err error) {
	start := time.Now()
	pol := p.pol.Load()
	ev := &agentv1.CallEvent{Id: newEventID(), Time: timestamppb.New(start), VirtualServer: vs, Upstream: upName,
		Method: method, Decision: agentv1.Decision_DECISION_ALLOW}
	if ss != nil {
		if ip := ss.InitializeParams(); ip != nil && ip.ClientInfo != nil {
			ev.Tool = truncate(ip.ClientInfo.Name, 128)
		}
	}
	defer func() {
		ev.LatencyMicros = time.Since(start).Microseconds()
		if err != nil && ev.Error == "" {
			ev.Error = truncate(err.Error(), 1024)
		}
		p.cfg.Telemetry.Add(ev)
	}()
	refuse := func(reason string) (mcp.Result, error) {
		ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, reason
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "Portcullis refused this request: " + reason}
	}
	if pol == nil || ss == nil {
		return refuse("the gateway has no client session to ask")
	}
	ir, ok := params.(mcp.InputRequest)
	if !ok {
		return refuse(fmt.Sprintf("%s is not relayed", method))
	}
	// The same governance and scanning as input requests of held calls and
	// of multi round-trip results.
	if reason := screenInputRequests(mcp.InputRequestMap{"r": ir}, pol, upName, ev); reason != "" {
		return refuse(reason)
	}
	switch x := ir.(type) {
	case *mcp.CreateMessageWithToolsParams:
		return ss.CreateMessageWithTools(ctx, x)
	case *mcp.ElicitParams:
		return ss.Elicit(ctx, x)
	case *mcp.ListRootsParams:
		return ss.ListRoots(ctx, x)
	}
	return refuse(fmt.Sprintf("%s is not relayed", method))
}

// scanVerdict records what scanning found on the event and returns why the
// text is withheld, or "".
func scanVerdict(a resultscan.Action, rep *resultscan.Report, ev *agentv1.CallEvent) string {
	if !rep.Modified() {
		return ""
	}
	if a == resultscan.Block && rep.Suspicious() {
		return "the upstream's request was withheld because it contained " + rep.Summary()
	}
	ev.Reason = "scanned: " + rep.Summary()
	return ""
}

// scanSampling cleans the text of a sampling request in place.
func scanSampling(x *mcp.CreateMessageWithToolsParams, a resultscan.Action, rep *resultscan.Report) {
	x.SystemPrompt = resultscan.Text(x.SystemPrompt, a, rep)
	for _, m := range x.Messages {
		if m != nil {
			m.Content = scanContent(m.Content, a, rep)
		}
	}
}

// relayLog sends an upstream's log message to the client session, scanned;
// the SDK drops it when it is below the client's level. ctx places it on the
// stream of the client request in flight; fallback, if that is gone.
func (p *Proxy) relayLog(ctx, fallback context.Context, ss *mcp.ServerSession, upName string, params *mcp.LoggingMessageParams) {
	if ss == nil || params == nil {
		return
	}
	scanLog(params, p.pol.Load().scanAction(), upName)
	if err := ss.Log(ctx, params); err != nil && fallback != nil {
		// The request it belonged to was answered first (the SDK hands
		// notifications to handlers after it has seen the response): send it
		// on the session's own stream instead.
		_ = ss.Log(fallback, params)
	}
}

// scanLog cleans an upstream's log message in place.
func scanLog(params *mcp.LoggingMessageParams, a resultscan.Action, upName string) {
	var rep resultscan.Report
	params.Logger = resultscan.Text(params.Logger, a, &rep)
	params.Data = resultscan.Value(params.Data, a, &rep)
	if a == resultscan.Block && rep.Suspicious() {
		params.Data = fmt.Sprintf("[Portcullis withheld a log message from upstream %q: it contained %s]", upName, rep.Summary())
	}
}

// resourceSession is the client's session with the upstream that offers a
// resource URI on the virtual server (resources first, then templates).
func (p *Proxy) resourceSession(ctx context.Context, vs *vserver, ss *mcp.ServerSession, uri string) (*mcp.ClientSession, func(error), error) {
	p.mu.Lock()
	var owner string
	for _, upName := range vs.upstreams {
		u := p.upstreams[upName]
		if u == nil {
			continue
		}
		u.mu.RLock()
		_, ok := u.resources[uri]
		if !ok {
			for tmpl := range u.templates {
				if templateMatches(tmpl, uri) {
					ok = true
					break
				}
			}
		}
		u.mu.RUnlock()
		if ok {
			owner = upName
			break
		}
	}
	u := p.upstreams[owner]
	p.mu.Unlock()
	if u == nil {
		return nil, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("no upstream of this virtual server offers %q", truncate(uri, 256))}
	}
	return p.session(ctx, ss, vs.name, u)
}

// complete relays completion/complete to the upstream that offers the prompt
// or resource, under its own name there.
func (p *Proxy) complete(ctx context.Context, vs *vserver, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	if req.Params == nil || req.Params.Ref == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "completion/complete needs a ref"}
	}
	params := *req.Params
	ref := *req.Params.Ref
	params.Ref = &ref
	var cs *mcp.ClientSession
	var done func(error)
	var err error
	switch ref.Type {
	case "ref/prompt":
		p.mu.Lock()
		r, ok := vs.promptsAt[ref.Name]
		p.mu.Unlock()
		if !ok {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("no prompt %q on this virtual server", truncate(ref.Name, 128))}
		}
		u, err := p.stillApproved(ctx, pinKey{kindPrompt, r.upstream, r.name})
		if err != nil {
			return nil, err
		}
		ref.Name = r.name
		if cs, done, err = p.session(ctx, req.Session, vs.name, u); err != nil {
			return nil, err
		}
	case "ref/resource":
		if cs, done, err = p.resourceSession(ctx, vs, req.Session, ref.URI); err != nil {
			return nil, err
		}
	default:
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown completion ref type %q", truncate(ref.Type, 64))}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.UpstreamTimeout)
	defer cancel()
	res, err := cs.Complete(ctx, &params)
	done(err)
	if err != nil || res == nil {
		return res, p.upstreamError(err)
	}
	a := p.pol.Load().scanAction()
	var rep resultscan.Report
	for i, v := range res.Completion.Values {
		res.Completion.Values[i] = resultscan.Text(v, a, &rep)
	}
	if a == resultscan.Block && rep.Suspicious() {
		return nil, &blockedError{rep.Summary()}
	}
	return res, nil
}

// templateMatches reports whether uri fits an RFC 6570 URI template.
func templateMatches(tmpl, uri string) bool {
	t, err := uritemplate.New(tmpl)
	return err == nil && t.Regexp().MatchString(uri)
}
