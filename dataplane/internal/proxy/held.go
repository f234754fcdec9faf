package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Held calls: a legacy upstream (≤ 2025-11-25) asks for sampling, elicitation
// or roots in the middle of a tools/call, on its session, and waits for the
// answer. A modern client (2026-07-28) has no session to be asked on: it
// expects an InputRequiredResult and calls again with the answers. So the
// gateway holds the upstream's call (on a pooled session that serves only
// it), answers the client with the upstream's request as an input request
// and a sealed requestState naming the held call, and, when the client calls
// again with the answer, gives it to the upstream and waits for what comes
// next: another request, or the result. A held call waits at most the
// upstream timeout for its client; it is bound to the principal, virtual
// server and tool that started it, and lives in the replica that holds it.

// heldStatePrefix starts a requestState sealed by this gateway.
const heldStatePrefix = "pcg1."

// heldCall is a translated tools/call in progress.
type heldCall struct {
	id                  string
	principal, vs, tool string
	events              chan heldEvent // from the upstream: a request, then the result
	cancel              context.CancelFunc

	turn    sync.Mutex // one client round at a time
	pending *heldEvent // the request the client was last asked, not yet answered
	keys    atomic.Int64
}

// heldEvent is a request the upstream made of the client, or the call's end.
type heldEvent struct {
	key    string
	params mcp.InputRequest
	reply  chan mcp.InputResponse // for a request
	res    *mcp.CallToolResult    // for the end
	err    error
}

// ask is what a pooled session does with a request of the upstream: screen
// it, hand it to the call's client round, and wait for the answer.
func (hc *heldCall) ask(ctx context.Context, p *Proxy, vs, upName, method string, params mcp.Params) (mcp.Result, error) {
	ev := &agentv1.CallEvent{Id: newEventID(), Time: timestamppb.Now(), VirtualServer: vs, Upstream: upName, Method: method,
		Principal: hc.principal, Decision: agentv1.Decision_DECISION_ALLOW}
	defer p.cfg.Telemetry.Add(ev)
	ir, ok := params.(mcp.InputRequest)
	if !ok {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "Portcullis: " + method + " has no parameters the client can be asked with"}
	}
	if reason := screenInputRequests(mcp.InputRequestMap{"r": ir}, p.pol.Load(), upName, ev); reason != "" {
		ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, reason
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "Portcullis refused this request: " + reason}
	}
	e := heldEvent{key: fmt.Sprintf("portcullis-%d", hc.keys.Add(1)), params: ir, reply: make(chan mcp.InputResponse, 1)}
	select {
	case hc.events <- e:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-e.reply:
		res, ok := r.(mcp.Result)
		if !ok || !answers(ir, r) {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("Portcullis: the client answered %s with a %T", method, r)}
		}
		return res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answers reports whether r is the kind of answer request ir asks for.
func answers(ir mcp.InputRequest, r mcp.InputResponse) bool {
	switch ir.(type) {
	case *mcp.ElicitParams:
		_, ok := r.(*mcp.ElicitResult)
		return ok
	case *mcp.ListRootsParams:
		_, ok := r.(*mcp.ListRootsResult)
		return ok
	case *mcp.CreateMessageParams, *mcp.CreateMessageWithToolsParams:
		switch r.(type) {
		case *mcp.CreateMessageResult, *mcp.CreateMessageWithToolsResult:
			return true
		}
	}
	return false
}

// callHeld runs a tools/call on a pooled session that serves only it, and
// answers the client with the first thing that comes: the result, or a
// request of the upstream as an input request.
func (p *Proxy) callHeld(ctx context.Context, pc *pooled, put func(bool), params *mcp.CallToolParams, principal, vs, tool string) (*mcp.CallToolResult, error) {
	hc := &heldCall{id: newEventID(), principal: principal, vs: vs, tool: tool, events: make(chan heldEvent, 4)}
	// The upstream call outlives this client request while it is held.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.UpstreamTimeout)
	hc.cancel = cancel
	pc.call.Store(hc)
	go func() {
		res, err := pc.cs.CallTool(hctx, params)
		cancel()
		// A call that ended otherwise than with an answer may leave the
		// upstream session mid-request: it is not reused.
		put(err == nil)
		select {
		case hc.events <- heldEvent{res: res, err: err}:
		case <-time.After(p.cfg.UpstreamTimeout): // nobody came back for it
		}
		// A client that never comes back for the result: forget the call.
		time.AfterFunc(p.cfg.UpstreamTimeout, func() { p.held.Delete(hc.id) })
	}()
	hc.turn.Lock()
	defer hc.turn.Unlock()
	return p.awaitHeld(ctx, hc)
}

// awaitHeld waits for the held call's next event and answers the client with it.
func (p *Proxy) awaitHeld(ctx context.Context, hc *heldCall) (*mcp.CallToolResult, error) {
	if hc.pending == nil {
		select {
		case ev := <-hc.events:
			if ev.reply == nil { // the end
				p.held.Delete(hc.id)
				return ev.res, ev.err
			}
			hc.pending = &ev
		case <-ctx.Done():
			p.held.Delete(hc.id)
			hc.cancel() // the client went away: so does the upstream call
			return nil, ctx.Err()
		}
	}
	p.held.Store(hc.id, hc)
	return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{hc.pending.key: hc.pending.params}, RequestState: p.seal(hc.id)}, nil
}

// resumeHeld continues a held call with the client's answers.
func (p *Proxy) resumeHeld(ctx context.Context, req *mcp.CallToolRequest, principal, vs, tool string) (*mcp.CallToolResult, error) {
	id, ok := p.unseal(req.Params.RequestState)
	if !ok {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "requestState was not issued by this gateway or was altered"}
	}
	v, ok := p.held.Load(id)
	if !ok {
		return refusal("the call that asked for this input has ended (answered, expired, or held by another gateway replica); call the tool again"), nil
	}
	hc := v.(*heldCall)
	if hc.principal != principal || hc.vs != vs || hc.tool != tool {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "requestState belongs to another call"}
	}
	if !hc.turn.TryLock() {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "this call is already being answered"}
	}
	defer hc.turn.Unlock()
	if hc.pending != nil {
		if r, ok := req.Params.InputResponses[hc.pending.key]; ok && r != nil {
			hc.pending.reply <- r
			hc.pending = nil
		}
	}
	return p.awaitHeld(ctx, hc)
}

// seal makes a requestState naming a held call, MACed with the gateway's key.
func (p *Proxy) seal(id string) string {
	m := hmac.New(sha256.New, p.sealKey[:])
	m.Write([]byte(id))
	return heldStatePrefix + id + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// unseal returns the held call a requestState names, if this gateway sealed it.
func (p *Proxy) unseal(state string) (string, bool) {
	id, mac, ok := strings.Cut(strings.TrimPrefix(state, heldStatePrefix), ".")
	if !ok || len(id) > 64 {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil {
		return "", false
	}
	m := hmac.New(sha256.New, p.sealKey[:])
	m.Write([]byte(id))
	return id, hmac.Equal(got, m.Sum(nil))
}
