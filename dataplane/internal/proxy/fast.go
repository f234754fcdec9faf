package proxy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/segmentio/encoding/json"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/metrics"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// The fast path. A tools/call of a client session (protocol ≤ 2025-11-25)
// to a stateful Streamable HTTP upstream is relayed as raw JSON-RPC on the
// client's own upstream session: the gateway decodes the envelope and the
// arguments' bytes the checks read, runs the same checks (admit), forwards
// the request with the upstream's tool name, and sends the upstream's result
// back as it came unless result scanning changed it. What the upstream sends
// before its result goes on the same response stream, as the SDK path does:
// log and progress messages scanned, sampling, elicitation and roots requests
// governed and scanned (screenInputRequests) under a gateway request ID, and
// the client's answers, which come as POSTs of their own, go back upstream
// on that session. A client's notifications/cancelled for a fast call cancels
// it upstream. Everything else — other methods, multi round trips, the
// first request of a session to a restored or stateless upstream — takes the
// SDK path (proxy.go, relay.go).

const (
	// askPrefix starts the IDs of requests the gateway relays to a client
	// on a fast call's stream.
	askPrefix = "pcg-ask-"
	// maxPendingAsks bounds the requests an upstream may have waiting on a
	// client at once, per client session; more are refused.
	maxPendingAsks = 32
)

// fast is a link's state for the fast path.
type fast struct {
	on      atomic.Bool // the session answered initialize and is registered
	user    string      // the session's user (the SDK refuses any other); set before on
	version string      // the protocol version negotiated; set before on
	sdkSeen atomic.Int64
	// streaming is set once the client opened its standalone stream, and
	// asking bounds the requests relayed from the upstreams' (standalone.go).
	streaming atomic.Bool
	asking    chan struct{}
	// calls are the fast calls in flight, by the client's request ID, to
	// cancel; asks are requests relayed to the client awaiting its answer.
	// Both are made when needed and dropped once empty, so that an idle
	// session holds neither; the first call in flight needs no map.
	fmu   sync.Mutex
	call  fastInFlight
	calls map[string]context.CancelFunc
	asks  map[string]*pendingAsk
}

// fastInFlight is a fast call in flight: the client's request ID, and what
// cancels the call.
type fastInFlight struct {
	key    string
	cancel context.CancelFunc
}

// addCall records a call in flight; false if one has its ID already.
// The caller holds fmu.
func (f *fast) addCall(key string, cancel context.CancelFunc) bool {
	if f.cancelOf(key) != nil {
		return false
	}
	if f.call.cancel == nil {
		f.call = fastInFlight{key, cancel}
		return true
	}
	if f.calls == nil {
		f.calls = map[string]context.CancelFunc{}
	}
	f.calls[key] = cancel
	return true
}

// cancelOf is what cancels the call in flight with the ID key (nil: none).
// The caller holds fmu.
func (f *fast) cancelOf(key string) context.CancelFunc {
	if f.call.cancel != nil && f.call.key == key {
		return f.call.cancel
	}
	return f.calls[key]
}

// dropCall forgets the call in flight with the ID key. The caller holds fmu.
func (f *fast) dropCall(key string) {
	if f.call.cancel != nil && f.call.key == key {
		f.call = fastInFlight{}
		return
	}
	delete(f.calls, key)
	if len(f.calls) == 0 {
		f.calls = nil
	}
}

// dropAsk forgets a request relayed to the client. The caller holds fmu.
func (f *fast) dropAsk(id string) {
	delete(f.asks, id)
	if len(f.asks) == 0 {
		f.asks = nil
	}
}

// pendingAsk is a request of the upstream relayed to the client.
type pendingAsk struct {
	upID   json.RawMessage // the upstream's request ID
	method string
	c      *upConn
	ev     *agentv1.CallEvent
	start  time.Time
}

// setUser records the user whose requests the session serves (the SDK
// refuses any other) and the protocol version it negotiated.
func (l *link) setUser(user, version string) {
	if l.ss.ID() == "" {
		return
	}
	l.fmu.Lock()
	l.user, l.version = user, version
	l.fmu.Unlock()
	l.p.fastLinks.Store(l.ss.ID(), l) // for its standalone stream; calls wait for serveFast
}

// serveFast lets the link's tools/calls take the fast path from now on.
func (l *link) serveFast() {
	if l.ss.ID() == "" || l.on.Load() {
		return
	}
	l.sdkSeen.Store(time.Now().UnixNano())
	l.on.Store(true)
}

// rawMessage is a JSON-RPC message as the fast path reads it.
type rawMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

// fast serves r on the fast path and reports whether it did; if not, r is
// as it came (its body restored) for the SDK.
func (p *Proxy) fast(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		// The client opens its standalone stream (the SDK serves it): its
		// upstream sessions open theirs.
		if v, ok := p.fastLinks.Load(r.Header.Get(sessionIDHeader)); ok {
			if l := v.(*link); l.vs == r.PathValue("vs") && requestUser(r) == l.user {
				l.clientStreams()
			}
		}
		return false
	}
	if r.Method != http.MethodPost {
		return false
	}
	v, ok := p.fastLinks.Load(r.Header.Get(sessionIDHeader))
	if !ok {
		return false
	}
	l := v.(*link)
	if !l.on.Load() || l.vs != r.PathValue("vs") || !acceptsBoth(r.Header.Values("Accept")) || !isJSON(r.Header.Get("Content-Type")) {
		return false
	}
	if pv := r.Header.Get("Mcp-Protocol-Version"); pv != "" && pv != l.version {
		return false
	}
	ti := auth.TokenInfoFromContext(r.Context())
	if requestUser(r) != l.user {
		return false // the SDK refuses it
	}
	// The SDK ends sessions it has not seen for the idle time: let it see
	// one request in every half of it.
	if now := time.Now().UnixNano(); time.Duration(now-l.sdkSeen.Load()) > p.cfg.SessionIdle/2 {
		l.sdkSeen.Store(now)
		return false
	}
	m, ok := readMessage(r)
	if !ok {
		return false
	}
	switch {
	case m.Method == "tools/call" && len(m.ID) > 0:
		return p.fastCall(w, r, l, l.vs, &m, ti)
	case m.Method == "" && len(m.ID) > 0:
		return p.fastAnswer(w, r, l, &m)
	case m.Method == "notifications/cancelled":
		var params struct {
			RequestID json.RawMessage `json:"requestId"`
		}
		if json.Unmarshal(m.Params, &params) != nil {
			return false
		}
		l.fmu.Lock()
		cancel := l.cancelOf(string(params.RequestID))
		l.fmu.Unlock()
		if cancel == nil {
			return false
		}
		cancel()
		w.WriteHeader(http.StatusAccepted)
		return true
	}
	return false
}

// readMessage reads r's body (kept for the SDK) as one JSON-RPC message;
// false for batches and invalid messages, which the SDK answers.
func readMessage(r *http.Request) (rawMessage, bool) {
	var m rawMessage
	body, err := io.ReadAll(r.Body) // read whole and bounded already (readBody)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil || len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &m) != nil || m.JSONRPC != "2.0" || string(m.ID) == "null" {
		return rawMessage{}, false
	}
	return m, true
}

// fastStateless serves a session-less tools/call (protocol 2026-07-28) on
// the fast path when its upstream speaks the same revision: the request goes
// on as it came (its _meta carries the client's version, capabilities and
// log level), renamed, after the same checks; anything else (input
// responses, parameter headers, another revision upstream) is left to the
// SDK's stateless handler.
func (p *Proxy) fastStateless(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost || r.Header.Get(methodHeader) != "tools/call" || r.Header.Get(nameHeader) == "" ||
		!acceptsBoth(r.Header.Values("Accept")) || !isJSON(r.Header.Get("Content-Type")) {
		return false
	}
	for k := range r.Header {
		if strings.HasPrefix(k, "Mcp-Param-") {
			return false // the SDK checks them against the tool's schema
		}
	}
	m, ok := readMessage(r)
	if !ok || m.Method != "tools/call" || len(m.ID) == 0 {
		return false
	}
	return p.fastCall(w, r, nil, r.PathValue("vs"), &m, auth.TokenInfoFromContext(r.Context()))
}

// statelessConn is how a session-less fast call reaches u, and what to do
// with it after the call (put(false) when it failed). An upstream of the
// client's revision is reached without a session, if its tool declares no
// parameter headers (those the SDK client sets). A legacy upstream is
// reached on a pooled session, as the SDK path does, for a client that
// declared no capability (the pool's session declared none, so the
// upstream has nothing to ask it mid-call); nil for anything else.
func (p *Proxy) statelessConn(ctx context.Context, u *upstream, version, tool string, meta map[string]json.RawMessage) (*upConn, func(ok bool)) {
	shared := u.currentSession()
	if u.spec.GetTransport() != agentv1.Transport_TRANSPORT_STREAMABLE_HTTP || shared == nil {
		return nil, nil
	}
	if lt, ok := u.liveTool(tool); !ok || bytes.Contains(lt.def, []byte("x-mcp-header")) {
		return nil, nil
	}
	if modern(shared) {
		hc := u.rawClient()
		if hc == nil || shared.InitializeResult().ProtocolVersion != version {
			return nil, nil
		}
		id := "" // read once: the shared session's ID is behind a lock every call would take
		if !u.stateless(shared) {
			id = shared.ID()
		}
		return &upConn{u: u, id: id, version: version, hc: hc}, func(bool) {}
	}
	var caps mcp.ClientCapabilities
	if json.Unmarshal(meta["io.modelcontextprotocol/clientCapabilities"], &caps) != nil || capsKey(&caps) != capsKey(nil) {
		return nil, nil
	}
	pc, put, err := p.checkout(ctx, nil, u)
	if err != nil {
		return nil, nil
	}
	if pc.hc == nil {
		put(true)
		return nil, nil
	}
	return &upConn{u: u, id: pc.cs.ID(), version: versionOf(pc.cs), hc: pc.hc}, put
}

// requestUser is the user a request authenticated as ("" for none).
func requestUser(r *http.Request) string {
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		return ti.UserID
	}
	return ""
}

func acceptsBoth(values []string) bool {
	if len(values) == 1 && strings.Contains(values[0], "application/json") && strings.Contains(values[0], "text/event-stream") {
		return true // what clients send
	}
	var j, s bool
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
			j = j || mt == "application/json" || mt == "*/*"
			s = s || mt == "text/event-stream" || mt == "*/*"
		}
	}
	return j && s
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// fastConn is the link's open session with an upstream if the fast path can
// use it (a stateful Streamable HTTP session of a legacy protocol revision,
// with the upstream as currently configured; the upstream may be modern, and
// serve that revision in sessions), opening it on first use.
func (l *link) fastConn(ctx context.Context, u *upstream) *upConn {
	if u.spec.GetTransport() != agentv1.Transport_TRANSPORT_STREAMABLE_HTTP {
		return nil
	}
	shared := u.currentSession()
	if shared == nil || pooledFor(l.ss, u, shared) {
		return nil
	}
	c, err := l.conn(ctx, u, false)
	if err != nil || c.hc == nil || c.id == "" || c.modern() {
		return nil
	}
	return c
}

// post sends one JSON-RPC message on c's upstream session (none for a
// modern upstream, which is told the request's method and name in headers).
func (c *upConn) post(ctx context.Context, body []byte, method, name string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.u.spec.GetUrl(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if c.id != "" {
		req.Header.Set(sessionIDHeader, c.id)
	}
	if c.version != "" {
		req.Header.Set("Mcp-Protocol-Version", c.version)
		if c.modern() && method != "" {
			req.Header.Set(methodHeader, method)
			req.Header.Set(nameHeader, name)
		}
	}
	return c.hc.Do(req)
}

// send posts a message that needs no answer (a response or a notification)
// and discards what comes back.
func (c *upConn) send(ctx context.Context, msg any) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	resp, err := c.post(ctx, body, "", "")
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("upstream answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// outMessage is a JSON-RPC message the fast path writes.
type outMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      any             `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  any             `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   any             `json:"error,omitempty"`
}

// clientStream writes the answer to a fast call: one JSON body when the
// upstream sent nothing before its result, otherwise an event stream.
type clientStream struct {
	w   http.ResponseWriter
	sse bool
	// modern is a session-less call (2026-07-28), whose errors have HTTP
	// statuses (fastError); status is the one to send, 0 for 200.
	modern bool
	status int
}

func (s *clientStream) start() {
	if !s.sse {
		s.sse = true
		s.w.Header().Set("Content-Type", "text/event-stream")
		s.w.Header().Set("Cache-Control", "no-cache")
		s.w.WriteHeader(http.StatusOK)
	}
}

// event writes a message (JSON without newlines, as json.Marshal writes it)
// on the event stream.
func (s *clientStream) event(msg []byte) {
	s.start()
	_, _ = fmt.Fprintf(s.w, "event: message\ndata: %s\n\n", msg)
	_ = http.NewResponseController(s.w).Flush()
}

// final writes the answer, given in parts so that a large result is not
// copied to join them.
func (s *clientStream) final(parts ...[]byte) {
	if s.sse {
		s.start()
		_, _ = io.WriteString(s.w, "event: message\ndata: ")
		for _, p := range parts {
			_, _ = s.w.Write(p)
		}
		_, _ = io.WriteString(s.w, "\n\n")
		_ = http.NewResponseController(s.w).Flush()
		return
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	s.w.Header().Set("Content-Type", "application/json")
	s.w.Header().Set("Content-Length", strconv.Itoa(n))
	s.w.WriteHeader(cmp.Or(s.status, http.StatusOK))
	for _, p := range parts {
		_, _ = s.w.Write(p)
	}
}

// fastCall relays a tools/call; false leaves it to the SDK path.
func (p *Proxy) fastCall(w http.ResponseWriter, r *http.Request, l *link, vsName string, m *rawMessage, ti *auth.TokenInfo) bool {
	// Made small: the decoder would make a nil map with room for 64 (5 KiB).
	params := make(map[string]json.RawMessage, 4)
	if json.Unmarshal(m.Params, &params) != nil {
		return false
	}
	var name string
	meta := make(map[string]json.RawMessage, 4)
	for k, v := range params {
		switch k {
		case "name":
			if json.Unmarshal(v, &name) != nil {
				return false
			}
		case "_meta":
			if json.Unmarshal(v, &meta) != nil {
				return false
			}
		case "arguments":
		default:
			return false // multi round trips, extensions: the SDK path
		}
	}
	if l == nil && name != r.Header.Get(nameHeader) {
		return false // the SDK answers the mismatch
	}
	args := params["arguments"]
	if string(args) == "null" {
		args = nil
	}
	if len(args) > 0 && args[0] != '{' {
		return false // the SDK answers invalid params
	}
	p.mu.Lock()
	vs := p.servers[vsName]
	p.mu.Unlock()
	if vs == nil {
		return false
	}
	rt, ok := (*vs.routes.Load())[name]
	if !ok || !rt.exposed {
		return false // the SDK path refuses it readably
	}
	u := p.upstream(rt.upstream)
	if u == nil || perPerson(u.spec) {
		return false // per-person authorization: the SDK path asks for consent (userauth.go)
	}
	var c *upConn
	var ss *mcp.ServerSession
	upstreamOK := true // false once the upstream session failed
	if l != nil {
		c, ss = l.fastConn(r.Context(), u), l.ss
	} else {
		var put func(ok bool)
		if c, put = p.statelessConn(r.Context(), u, r.Header.Get("Mcp-Protocol-Version"), rt.name, meta); c != nil {
			defer func() { put(upstreamOK) }()
		}
	}
	if c == nil {
		return false
	}
	if !c.modern() {
		meta = legacyMeta(meta)
	}

	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.UpstreamTimeout)
	defer cancel()
	var asked []string
	if l != nil {
		// The client's request ID, to cancel it by; one in flight at a time.
		key := string(m.ID)
		l.fmu.Lock()
		added := l.addCall(key, cancel)
		l.fmu.Unlock()
		if !added {
			return false // the SDK path answers a duplicate ID
		}
		defer func() {
			l.fmu.Lock()
			l.dropCall(key)
			for _, id := range asked {
				l.dropAsk(id)
			}
			l.fmu.Unlock()
		}()
	}

	start := time.Now()
	ev := &agentv1.CallEvent{Id: newEventID(), Time: timestamppb.New(start), VirtualServer: vsName, Upstream: rt.upstream,
		Method: "tools/call", Tool: rt.name, RequestBytes: int64(len(args)), Decision: agentv1.Decision_DECISION_ALLOW}
	out := &clientStream{w: w, modern: l == nil}
	handled := true
	defer func() {
		if !handled {
			return // the SDK path records it
		}
		ev.LatencyMicros = time.Since(start).Microseconds()
		decision := "allow"
		if ev.Decision == agentv1.Decision_DECISION_DENY {
			decision = "deny"
		}
		metrics.Calls.WithLabelValues(vsName, rt.upstream, decision).Inc()
		p.cfg.Telemetry.Add(ev)
	}()
	answer := func(res *mcp.CallToolResult) {
		b, err := json.Marshal(res)
		if err != nil {
			b, _ = json.Marshal(refusal("the gateway could not encode the result"))
		}
		out.final(resultMessage(m.ID, b)...)
	}
	pol := p.pol.Load()
	a, reason := p.admit(ctx, pol, ss, ti, rt.upstream, rt.name, args, ev)
	if reason != "" {
		ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, reason
		answer(refusal("%s", reason))
		return true
	}

	// The call reaches the tool: whatever it answers (a result, an error,
	// nothing), the caller has touched what its labels say.
	p.touch(ctx, a.fk, a.labels)
	upID := "pcg-call-" + strconv.FormatUint(p.fastSeq.Add(1), 36)
	body, err := json.Marshal(outMessage{JSONRPC: "2.0", ID: upID, Method: "tools/call", Params: struct {
		Meta      map[string]json.RawMessage `json:"_meta,omitempty"`
		Name      string                     `json:"name"`
		Arguments json.RawMessage            `json:"arguments,omitempty"`
	}{meta, rt.name, args}})
	if err != nil {
		ev.Error = err.Error()
		answer(refusal("the gateway could not encode the call"))
		return true
	}
	metrics.RawCalls.WithLabelValues(rt.upstream).Inc()
	t0 := time.Now()
	resp, err := c.post(ctx, body, "tools/call", rt.name)
	defer func() { metrics.UpstreamSeconds.WithLabelValues(rt.upstream).Observe(time.Since(t0).Seconds()) }()
	if err != nil {
		if ctx.Err() != nil {
			p.cancelUpstream(c, upID, ctx)
			return true
		}
		upstreamOK = false
		if l != nil {
			l.drop(rt.upstream, c)
		}
		ev.Error = truncate(err.Error(), 1024)
		answer(refusal("upstream %q is unavailable", rt.upstream))
		return true
	}
	defer func() {
		// The answer is out: let the client have it now, then read the
		// upstream's stream to its end (it ends after the response) so
		// that the connection is used again rather than closed.
		if out.sse || out.w.Header().Get("Content-Length") != "" {
			_ = http.NewResponseController(out.w).Flush()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode == http.StatusNotFound {
		// The upstream ended the session before it ran anything: open a
		// new one through the SDK path.
		upstreamOK = false
		if l != nil {
			l.drop(rt.upstream, c)
		}
		handled = false
		return false
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode/100 != 2 || (mt != "application/json" && mt != "text/event-stream") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var em rawMessage
		if json.Unmarshal(b, &em) == nil && len(em.Error) > 0 {
			p.fastError(out, m.ID, em.Error, ev)
			return true
		}
		ev.Error = fmt.Sprintf("upstream answered HTTP %d", resp.StatusCode)
		answer(refusal("upstream %q is unavailable", rt.upstream))
		return true
	}
	final := func(um *rawMessage) {
		if len(um.Error) > 0 {
			p.fastError(out, m.ID, um.Error, ev)
			return
		}
		var res mcp.CallToolResult
		if err := json.Unmarshal(um.Result, &res); err != nil {
			ev.Error = truncate("invalid result from the upstream: "+err.Error(), 1024)
			msg, _ := json.Marshal(outMessage{JSONRPC: "2.0", ID: m.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the upstream sent an invalid tool result"}})
			out.final(msg)
			return
		}
		if len(res.InputRequests) > 0 {
			if reason := screenInputRequests(res.InputRequests, pol, rt.upstream, ev); reason != "" {
				ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, reason
				answer(refusal("%s", reason))
				return
			}
		} else if scanned, changed := scanToolResult(&res, pol.results, ev); changed {
			answer(scanned)
			return
		}
		result := um.Result
		if out.sse && bytes.IndexByte(result, '\n') >= 0 {
			// Sent over several data lines: one line on the client's stream.
			var buf bytes.Buffer
			if json.Compact(&buf, result) == nil {
				result = buf.Bytes()
			}
		}
		out.final(resultMessage(m.ID, result)...)
	}
	if mt == "application/json" {
		b, err := io.ReadAll(io.LimitReader(resp.Body, int64(p.cfg.MaxMessageBytes)+1))
		var um rawMessage
		switch {
		case err != nil:
			ev.Error = truncate(err.Error(), 1024)
			answer(refusal("upstream %q is unavailable", rt.upstream))
		case len(b) > p.cfg.MaxMessageBytes:
			ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, tooLargeReason(p.cfg.MaxMessageBytes)
			answer(refusal("%s", ev.Reason))
		case json.Unmarshal(b, &um) != nil || string(um.ID) != strconv.Quote(upID):
			ev.Error = "the upstream's answer is not the response to the call"
			answer(refusal("upstream %q sent an invalid answer", rt.upstream))
		default:
			final(&um)
		}
		return true
	}
	err = readEvents(resp.Body, p.cfg.MaxMessageBytes, func(data []byte) bool {
		// Not copied: the result is written out before data is reused.
		var um rawMessage
		if _, err := json.Parse(data, &um, json.ZeroCopy); err != nil {
			return true
		}
		um.Method = strings.Clone(um.Method)
		if um.Method == "" {
			if string(um.ID) == strconv.Quote(upID) {
				final(&um)
				return false
			}
			return true
		}
		if id := p.fastRelay(ctx, l, vsName, meta, c, rt.upstream, &um, out); id != "" {
			asked = append(asked, id)
		}
		return true
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		p.cancelUpstream(c, upID, ctx)
	case errors.Is(err, errEventTooLarge):
		ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, tooLargeReason(p.cfg.MaxMessageBytes)
		answer(refusal("%s", ev.Reason))
	default:
		ev.Error = truncate(err.Error(), 1024)
		answer(refusal("upstream %q ended the call without a result", rt.upstream))
	}
	return true
}

// resultMessage frames a result the upstream sent (valid JSON, as it was
// decoded) without encoding or copying it again.
func resultMessage(id, result json.RawMessage) [][]byte {
	return [][]byte{[]byte(`{"jsonrpc":"2.0","id":`), id, []byte(`,"result":`), result, []byte("}")}
}

// fastError passes an upstream's JSON-RPC error for a call on to the client,
// scanned, as the SDK path does (upstreamError).
func (p *Proxy) fastError(out *clientStream, id json.RawMessage, e json.RawMessage, ev *agentv1.CallEvent) {
	var je jsonrpc.Error
	if json.Unmarshal(e, &je) != nil {
		je = jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the upstream sent an invalid error"}
	}
	se := scanError(&je, p.pol.Load().scanAction())
	ev.Error = truncate(se.Error(), 1024)
	if out.modern {
		// As the SDK's stateless handler answers these (2026-07-28).
		switch je.Code {
		case jsonrpc.CodeMethodNotFound:
			out.status = http.StatusNotFound
		case jsonrpc.CodeInvalidParams, mcp.CodeUnsupportedProtocolVersion, mcp.CodeMissingRequiredClientCapabilities:
			out.status = http.StatusBadRequest
		}
	}
	msg, _ := json.Marshal(outMessage{JSONRPC: "2.0", ID: id, Error: se})
	out.final(msg)
}

// cancelUpstream tells the upstream a fast call was cancelled (by the client
// or its deadline), as the SDK does for its own requests.
func (p *Proxy) cancelUpstream(c *upConn, upID string, ctx context.Context) {
	if c.modern() {
		return // no session to say it on: the request it closed says it (2026-07-28)
	}
	reason := "the client cancelled the request"
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		reason = "the gateway's upstream timeout passed"
	}
	go func() {
		sctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		_ = c.send(sctx, outMessage{JSONRPC: "2.0", Method: "notifications/cancelled",
			Params: map[string]any{"requestId": upID, "reason": reason}})
	}()
}

// legacyMeta is the client's _meta for a legacy upstream (forwardMeta).
func legacyMeta(m map[string]json.RawMessage) map[string]json.RawMessage {
	for k := range m {
		if strings.HasPrefix(k, "io.modelcontextprotocol/") && k != "io.modelcontextprotocol/logLevel" {
			delete(m, k)
		}
	}
	return m
}

// fastRelay handles what an upstream sends on a fast call's stream before
// its result; it returns the gateway ID of a request relayed to the client.
// A session-less call (l nil) has no session to relay requests on (a modern
// upstream asks in its result instead; a legacy one was told the client
// declared nothing to ask) and its log level in meta.
func (p *Proxy) fastRelay(ctx context.Context, l *link, vs string, meta map[string]json.RawMessage, c *upConn, upName string, um *rawMessage, out *clientStream) string {
	pol := p.pol.Load()
	if len(um.ID) > 0 {
		if l == nil {
			// The client declared nothing the upstream may ask of it.
			_ = c.send(ctx, outMessage{JSONRPC: "2.0", ID: json.RawMessage(bytes.Clone(um.ID)),
				Error: &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "Portcullis: the client declared no capability for " + um.Method}})
			return ""
		}
		return p.fastAsk(ctx, l, c, upName, um, out, pol)
	}
	switch um.Method {
	case "notifications/progress":
		var params mcp.ProgressNotificationParams
		if json.Unmarshal(um.Params, &params) != nil {
			return ""
		}
		params.Message = scanProgress(params.Message, pol)
		p.fastNotify(out, um.Method, &params)
	case "notifications/message":
		var params mcp.LoggingMessageParams
		if json.Unmarshal(um.Params, &params) != nil {
			return ""
		}
		// As the SDK's ServerSession.Log: nothing until the client set a
		// level, nothing below it.
		var level mcp.LoggingLevel
		if l != nil {
			l.mu.Lock()
			level = l.level
			l.mu.Unlock()
		} else {
			_ = json.Unmarshal(meta["io.modelcontextprotocol/logLevel"], &level)
		}
		if level == "" || severity[params.Level] < severity[level] {
			return ""
		}
		scanLog(&params, pol.scanAction(), upName)
		p.fastNotify(out, um.Method, &params)
	case "notifications/elicitation/complete":
		var params mcp.ElicitationCompleteParams
		if json.Unmarshal(um.Params, &params) != nil {
			return ""
		}
		p.fastNotify(out, um.Method, &params)
	case "notifications/resources/updated":
		var params mcp.ResourceUpdatedNotificationParams
		if json.Unmarshal(um.Params, &params) == nil {
			if srv := p.server(vs); srv != nil {
				_ = srv.ResourceUpdated(ctx, &params)
			}
		}
	case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
		c.u.kick()
	}
	return ""
}

// severity orders the logging levels (RFC 5424); an unknown level is 0.
var severity = map[mcp.LoggingLevel]int{"debug": 1, "info": 2, "notice": 3, "warning": 4, "error": 5, "critical": 6, "alert": 7, "emergency": 8}

func (p *Proxy) fastNotify(out *clientStream, method string, params any) {
	if msg, err := json.Marshal(outMessage{JSONRPC: "2.0", Method: method, Params: params}); err == nil {
		out.event(msg)
	}
}

// fastAsk relays a request of the upstream (sampling, elicitation, roots) to
// the client on the call's stream, after the governance and scanning the
// SDK path applies (toClient); the client's answer comes in fastAnswer.
func (p *Proxy) fastAsk(ctx context.Context, l *link, c *upConn, upName string, um *rawMessage, out *clientStream, pol *policy) string {
	upID := json.RawMessage(bytes.Clone(um.ID)) // um is not kept
	reply := func(result json.RawMessage, e *jsonrpc.Error) {
		msg := outMessage{JSONRPC: "2.0", ID: upID, Result: result}
		if e != nil {
			msg.Error = e
		}
		go func() {
			sctx, cancel := context.WithTimeout(p.ctx, p.cfg.UpstreamTimeout)
			defer cancel()
			if err := c.send(sctx, msg); err != nil {
				p.log.Debug("answering an upstream's request", "upstream", upName, "err", err)
			}
		}()
	}
	var ir mcp.InputRequest
	var caps *mcp.ClientCapabilities
	if ip := l.ss.InitializeParams(); ip != nil {
		caps = ip.Capabilities
	}
	capable := caps != nil
	switch um.Method {
	case "ping":
		reply(json.RawMessage("{}"), nil)
		return ""
	case "sampling/createMessage":
		ir, capable = new(mcp.CreateMessageWithToolsParams), capable && caps.Sampling != nil
	case "elicitation/create":
		ir, capable = new(mcp.ElicitParams), capable && caps.Elicitation != nil
	case "roots/list":
		ir, capable = new(mcp.ListRootsParams), capable && caps.RootsV2 != nil
	default:
		reply(nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found: " + truncate(um.Method, 128)})
		return ""
	}
	start := time.Now()
	ev := &agentv1.CallEvent{Id: newEventID(), Time: timestamppb.New(start), VirtualServer: l.vs, Upstream: upName,
		Method: um.Method, Decision: agentv1.Decision_DECISION_ALLOW}
	if ip := l.ss.InitializeParams(); ip != nil && ip.ClientInfo != nil {
		ev.Tool = truncate(ip.ClientInfo.Name, 128)
	}
	refuse := func(reason string) string {
		ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, reason
		ev.LatencyMicros = time.Since(start).Microseconds()
		p.cfg.Telemetry.Add(ev)
		reply(nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "Portcullis refused this request: " + reason})
		return ""
	}
	if len(um.Params) > 0 && json.Unmarshal(um.Params, ir) != nil {
		return refuse("the upstream sent invalid " + um.Method + " parameters")
	}
	// What the SDK's ServerSession does before sending these (the SDK path).
	switch x := ir.(type) {
	case *mcp.ElicitParams:
		if x.Mode == "" {
			x.Mode = "form"
			if x.URL != "" || x.ElicitationID != "" {
				x.Mode = "url"
			}
		}
		if capable {
			ec := caps.Elicitation
			capable = (x.Mode == "url" && ec.URL != nil) || (x.Mode == "form" && (ec.Form != nil || ec.URL == nil))
		}
	case *mcp.CreateMessageWithToolsParams:
		if x.Messages == nil {
			x.Messages = []*mcp.SamplingMessageV2{}
		}
	}
	if !capable {
		return refuse("the client did not declare the capability for " + um.Method)
	}
	if reason := screenInputRequests(mcp.InputRequestMap{"r": ir}, pol, upName, ev); reason != "" {
		return refuse(reason)
	}
	id := askPrefix + strconv.FormatUint(p.fastSeq.Add(1), 36)
	msg, err := json.Marshal(outMessage{JSONRPC: "2.0", ID: id, Method: um.Method, Params: ir})
	if err != nil {
		return refuse("the gateway could not encode the request")
	}
	l.fmu.Lock()
	full := len(l.asks) >= maxPendingAsks
	if !full {
		if l.asks == nil {
			l.asks = map[string]*pendingAsk{}
		}
		l.asks[id] = &pendingAsk{upID: bytes.Clone(um.ID), method: um.Method, c: c, ev: ev, start: start}
	}
	l.fmu.Unlock()
	if full {
		return refuse(fmt.Sprintf("the upstream has %d requests waiting on the client already", maxPendingAsks))
	}
	out.event(msg)
	return id
}

// fastAnswer takes the client's answer to a request relayed by fastAsk back
// to the upstream session that asked.
func (p *Proxy) fastAnswer(w http.ResponseWriter, r *http.Request, l *link, m *rawMessage) bool {
	var id string
	if json.Unmarshal(m.ID, &id) != nil || !strings.HasPrefix(id, askPrefix) {
		return false
	}
	l.fmu.Lock()
	pa := l.asks[id]
	l.dropAsk(id)
	l.fmu.Unlock()
	if pa == nil {
		return false
	}
	ev := pa.ev
	defer func() {
		ev.LatencyMicros = time.Since(pa.start).Microseconds()
		p.cfg.Telemetry.Add(ev)
	}()
	msg := outMessage{JSONRPC: "2.0", ID: pa.upID}
	if len(m.Error) > 0 {
		var je jsonrpc.Error
		if json.Unmarshal(m.Error, &je) != nil {
			je = jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the client sent an invalid error"}
		}
		ev.Error = truncate(je.Error(), 1024)
		msg.Error = &je
	} else {
		var res mcp.Result
		switch pa.method {
		case "sampling/createMessage":
			res = new(mcp.CreateMessageWithToolsResult)
		case "elicitation/create":
			res = new(mcp.ElicitResult)
		default:
			res = new(mcp.ListRootsResult)
		}
		if err := json.Unmarshal(m.Result, res); err != nil {
			ev.Error = "the client sent an invalid result"
			msg.Error = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the client sent an invalid " + pa.method + " result"}
		} else {
			msg.Result = m.Result
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.UpstreamTimeout)
	defer cancel()
	if err := pa.c.send(ctx, msg); err != nil {
		ev.Error = truncate("relaying the client's answer: "+err.Error(), 1024)
	}
	w.WriteHeader(http.StatusAccepted)
	return true
}

// errEventTooLarge is an upstream event larger than the limit.
var errEventTooLarge = errors.New("upstream event too large")

// Pools for readEvents: a bufio reader, and blocks for an event's data.
var (
	eventReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	eventBlocks  = sync.Pool{New: func() any { b := make([]byte, 0, eventBlock); return &b }}
)

// eventBlock is the size of the blocks an event's data is gathered in.
const eventBlock = 64 << 10

// eventData is an event's data, gathered in pooled blocks: an event of one
// block is handed on as it is, a larger one copied once into a slice of its
// size (growing one slice as it came would allocate several times that).
type eventData struct {
	blocks []*[]byte
	n      int
}

func (e *eventData) write(p []byte) {
	e.n += len(p)
	for len(p) > 0 {
		if len(e.blocks) == 0 || len(*e.blocks[len(e.blocks)-1]) == eventBlock {
			e.blocks = append(e.blocks, eventBlocks.Get().(*[]byte))
		}
		b := e.blocks[len(e.blocks)-1]
		k := min(len(p), eventBlock-len(*b))
		*b = append(*b, p[:k]...)
		p = p[k:]
	}
}

// trimEOL drops the line ends (CR, LF) the data ends with.
func (e *eventData) trimEOL() {
	for len(e.blocks) > 0 {
		b := e.blocks[len(e.blocks)-1]
		t := bytes.TrimRight(*b, "\r\n")
		e.n -= len(*b) - len(t)
		if *b = t; len(t) > 0 {
			return
		}
		eventBlocks.Put(b)
		e.blocks = e.blocks[:len(e.blocks)-1]
	}
}

// bytes is the data, valid until reset.
func (e *eventData) bytes() []byte {
	if len(e.blocks) == 1 {
		return *e.blocks[0]
	}
	out := make([]byte, 0, e.n)
	for _, b := range e.blocks {
		out = append(out, *b...)
	}
	return out
}

func (e *eventData) reset() {
	for _, b := range e.blocks {
		*b = (*b)[:0]
		eventBlocks.Put(b)
	}
	e.blocks, e.n = e.blocks[:0], 0
}

// readEvents reads a server-sent event stream and calls f with the data of
// each message event until f returns false or the stream ends; an event's
// data is bounded by limit, and f may hold it only until it returns.
func readEvents(r io.Reader, limit int, f func(data []byte) bool) error {
	br := eventReaders.Get().(*bufio.Reader)
	br.Reset(r)
	var data eventData
	defer func() {
		br.Reset(nil)
		eventReaders.Put(br)
		data.reset()
	}()
	name := ""
	for {
		line, err := br.ReadSlice('\n')
		if long := errors.Is(err, bufio.ErrBufferFull); long || bytes.HasPrefix(line, []byte("data:")) {
			// A data line, gathered straight into data even when it is
			// longer than the buffer (only data lines can be).
			if !bytes.HasPrefix(line, []byte("data:")) {
				return fmt.Errorf("server-sent event line longer than %d bytes", br.Size())
			}
			if data.n > 0 {
				data.write([]byte{'\n'})
			}
			line = bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))
			for {
				if data.n+len(line) > limit {
					return errEventTooLarge
				}
				data.write(line)
				if !errors.Is(err, bufio.ErrBufferFull) {
					break
				}
				line, err = br.ReadSlice('\n')
			}
			data.trimEOL()
			if err != nil {
				return eventStreamEnd(err)
			}
			continue
		}
		if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
			return eventStreamEnd(err)
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if data.n > 0 && (name == "" || name == "message") {
				if !f(data.bytes()) {
					return nil
				}
			}
			data.reset()
			name = ""
		case bytes.HasPrefix(line, []byte("event:")):
			name = string(bytes.TrimSpace(bytes.TrimPrefix(line, []byte("event:"))))
		}
		if err != nil {
			return eventStreamEnd(err)
		}
	}
}

// eventStreamEnd is the error for a stream that ended before f was done.
func eventStreamEnd(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
