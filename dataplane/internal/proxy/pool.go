package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Upstream sessions for session-less client requests (protocol 2026-07-28).
//
// Such a request has no client session to hang upstream sessions on, but it
// declares the client's capabilities (SEP-2575 _meta), and the upstream must
// see those, not the gateway's: it may ask only for what the client can give.
// So each upstream keeps a pool of sessions per capability set, and a request
// checks one out for as long as it runs. Being exclusive, a pooled session
// knows which request a server-initiated request (sampling, elicitation,
// roots) of a legacy upstream belongs to: the gateway holds it and hands it
// to the modern client as an InputRequiredResult (see held.go).

// Bounds on pooled sessions.
const (
	maxPoolKeys    = 64 // capability sets per upstream; beyond, sessions are not kept
	maxIdlePerPool = 16 // idle sessions per capability set
)

// pooled is one upstream session of a pool.
type pooled struct {
	cs   *mcp.ClientSession
	hc   *http.Client             // the credentialed client it was dialled with (Streamable HTTP), for raw requests on it (fast.go)
	call atomic.Pointer[heldCall] // the translated call it serves now, if any
}

// sessionPool is an upstream's pooled sessions, by capability set.
type sessionPool struct {
	mu   sync.Mutex
	idle map[string][]*pooled
}

// capsKey is a capability set's pool key.
func capsKey(c *mcp.ClientCapabilities) string {
	if c == nil {
		return "{}"
	}
	b, err := json.Marshal(struct {
		*mcp.ClientCapabilities
		Roots *mcp.RootCapabilities `json:"roots,omitempty"`
	}{c, c.RootsV2})
	if err != nil {
		return "{}"
	}
	return string(b)
}

// checkout returns an idle session for the capability set, or dials one;
// put gives it back (or closes it, when it failed or the pool is full).
func (p *Proxy) checkout(ctx context.Context, ss *mcp.ServerSession, u *upstream) (*pooled, func(ok bool), error) {
	var caps *mcp.ClientCapabilities
	if ss != nil {
		if ip := ss.InitializeParams(); ip != nil {
			caps = ip.Capabilities
		}
	}
	key := capsKey(caps)
	principal := ""
	if perPerson(u.spec) {
		// A person's token: sessions of one principal only.
		principal = principalFrom(ctx)
		key += "\x00" + principal
	}
	u.pool.mu.Lock()
	var pc *pooled
	if l := u.pool.idle[key]; len(l) > 0 {
		pc, u.pool.idle[key] = l[len(l)-1], l[:len(l)-1]
	}
	u.pool.mu.Unlock()
	if pc == nil {
		pc = &pooled{}
		cs, err := p.dialPooled(ctx, u, caps, principal, pc)
		if err != nil {
			return nil, nil, err
		}
		pc.cs = cs
		if u.spec.GetTransport() == agentv1.Transport_TRANSPORT_STREAMABLE_HTTP {
			pc.hc, _ = u.clientFor(principal) // as the link's (relay.go): resolved once it is connected
		}
	}
	put := func(ok bool) {
		pc.call.Store(nil)
		u.pool.mu.Lock()
		if u.pool.idle == nil {
			u.pool.idle = map[string][]*pooled{}
		}
		l, known := u.pool.idle[key]
		keep := ok && !u.stopped.Load() && len(l) < maxIdlePerPool && (known || len(u.pool.idle) < maxPoolKeys)
		if keep {
			u.pool.idle[key] = append(l, pc)
		}
		u.pool.mu.Unlock()
		if !keep {
			_ = pc.cs.Close()
		}
	}
	return pc, put, nil
}

// closePrincipal closes the idle pooled sessions of one principal (its
// grant was removed).
func (sp *sessionPool) closePrincipal(principal string) {
	sp.mu.Lock()
	var gone []*pooled
	for k, l := range sp.idle {
		if strings.HasSuffix(k, "\x00"+principal) {
			gone = append(gone, l...)
			delete(sp.idle, k)
		}
	}
	sp.mu.Unlock()
	for _, pc := range gone {
		_ = pc.cs.Close()
	}
}

// closeAll closes the idle pooled sessions (the upstream is going away).
func (sp *sessionPool) closeAll() {
	sp.mu.Lock()
	idle := sp.idle
	sp.idle = nil
	sp.mu.Unlock()
	for _, l := range idle {
		for _, pc := range l {
			_ = pc.cs.Close()
		}
	}
}

// dialPooled connects a pooled session declaring caps (less what the bundle
// denies the upstream). What the upstream asks of the client goes to the
// translated call the session serves, if any.
func (p *Proxy) dialPooled(ctx context.Context, u *upstream, caps *mcp.ClientCapabilities, principal string, pc *pooled) (*mcp.ClientSession, error) {
	name := u.spec.GetName()
	onRequest := func(ctx context.Context, method string, params mcp.Params) (mcp.Result, error) {
		hc := pc.call.Load()
		if hc == nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "Portcullis: " + method + " outside of a client request cannot reach the client"}
		}
		return hc.ask(ctx, p, hc.vs, name, method, params) // pools are per upstream: the call knows its virtual server
	}
	_, cs, err := p.dialUpstream(ctx, u, caps, "", principal, upstreamHandlers{onRequest: onRequest, onProgress: func(ctx context.Context, params *mcp.ProgressNotificationParams) {
		p.relay.forward(ctx, params, p.pol.Load())
	}})
	return cs, err
}
