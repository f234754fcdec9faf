package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/backoff"
)

// Standalone streams. What an upstream sends outside of any request (log
// messages, resource updates, list changes, requests of its own) comes on
// the GET stream of its session. A client's upstream sessions open that
// stream only once the client has opened its own with the gateway — before
// that there is nowhere to deliver it — so an idle client session without
// one holds no upstream connection (the SDK's own standalone stream is
// disabled on them). What comes on it goes to the client's own stream
// through its SDK session, with the same governance and scanning as on the
// stream of a request.

// clientStreams records that the link's client opened its standalone
// stream, and opens the upstream sessions' streams.
func (l *link) clientStreams() {
	if !l.streaming.CompareAndSwap(false, true) {
		return
	}
	for _, c := range l.conns() {
		l.watch(c)
	}
}

// watch relays what c's upstream sends on its standalone stream until the
// session ends, reconnecting (with backoff) when the stream drops.
func (l *link) watch(c *upConn) {
	select {
	case <-c.ready:
	default:
		return // its opener watches it once open
	}
	if c.err != nil || c.hc == nil || c.id == "" || !c.watching.CompareAndSwap(false, true) {
		return
	}
	ctx, cancel := context.WithCancel(l.p.ctx)
	c.ends.add(cancel)
	go func() {
		defer cancel()
		for attempt := 0; ctx.Err() == nil; attempt++ {
			started := time.Now()
			if !l.stream(ctx, c) {
				return // the upstream offers no stream
			}
			if time.Since(started) > time.Minute {
				attempt = 0
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff.Delay(attempt, 100*time.Millisecond, 30*time.Second)):
			}
		}
	}()
}

// stream reads one GET stream of c's session; false means the upstream
// offers none (405) or the session is gone.
func (l *link) stream(ctx context.Context, c *upConn) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.u.spec.GetUrl(), nil)
	if err != nil {
		return false
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(sessionIDHeader, c.id)
	if c.version != "" {
		req.Header.Set("Mcp-Protocol-Version", c.version)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return true
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotFound:
		return false
	case resp.StatusCode/100 != 2:
		return true
	}
	name := c.u.spec.GetName()
	_ = readEvents(resp.Body, l.p.cfg.MaxMessageBytes, func(data []byte) bool {
		var m rawMessage
		if json.Unmarshal(data, &m) != nil || m.Method == "" {
			return true
		}
		if len(m.ID) > 0 {
			select {
			case l.asking <- struct{}{}:
				go func() { defer func() { <-l.asking }(); l.answer(ctx, c, name, &m) }()
			default:
				l.refuseAsk(ctx, c, &m) // here: the stream waits for it
			}
			return true
		}
		l.notified(ctx, c, name, &m)
		return true
	})
	return true
}

// askClient sends a request to the client's standalone stream and waits for
// its answer at most the upstream timeout.
func (l *link) askClient(ctx context.Context, name, method string, params mcp.Params) (mcp.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, l.p.cfg.UpstreamTimeout)
	defer cancel()
	return l.p.toClient(ctx, l.ss, l.vs, name, method, params)
}

// refuseAsk answers a request the client cannot take now (maxPendingAsks).
func (l *link) refuseAsk(ctx context.Context, c *upConn, m *rawMessage) {
	sctx, cancel := context.WithTimeout(ctx, l.p.cfg.UpstreamTimeout)
	defer cancel()
	_ = c.send(sctx, outMessage{JSONRPC: "2.0", ID: m.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
		Message: "Portcullis refused this request: too many requests are waiting on the client"}})
}

// notified relays a notification from the standalone stream, as the link's
// SDK handlers do for the streams of requests.
func (l *link) notified(ctx context.Context, c *upConn, name string, m *rawMessage) {
	switch m.Method {
	case "notifications/message":
		var params mcp.LoggingMessageParams
		if json.Unmarshal(m.Params, &params) == nil {
			l.p.relayLog(ctx, nil, l.ss, name, &params)
		}
	case "notifications/progress":
		var params mcp.ProgressNotificationParams
		if json.Unmarshal(m.Params, &params) == nil {
			l.p.relay.forward(ctx, &params, l.p.pol.Load())
		}
	case "notifications/resources/updated":
		var params mcp.ResourceUpdatedNotificationParams
		if json.Unmarshal(m.Params, &params) == nil {
			if srv := l.p.server(l.vs); srv != nil {
				_ = srv.ResourceUpdated(ctx, &params)
			}
		}
	case "notifications/elicitation/complete":
		var params mcp.ElicitationCompleteParams
		if json.Unmarshal(m.Params, &params) == nil {
			_ = l.ss.NotifyElicitationComplete(ctx, &params)
		}
	case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
		c.u.kick()
	}
}

// answer relays a request from the standalone stream to the client
// (toClient: governance, scanning, a CallEvent) and sends its answer back on
// the upstream session.
func (l *link) answer(ctx context.Context, c *upConn, name string, m *rawMessage) {
	reply := outMessage{JSONRPC: "2.0", ID: m.ID}
	var params mcp.Params
	switch m.Method {
	case "ping":
		reply.Result = json.RawMessage("{}")
	case "sampling/createMessage":
		params = new(mcp.CreateMessageWithToolsParams)
	case "elicitation/create":
		params = new(mcp.ElicitParams)
	case "roots/list":
		params = new(mcp.ListRootsParams)
	default:
		reply.Error = &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found: " + truncate(m.Method, 128)}
	}
	if params != nil {
		if len(m.Params) > 0 && json.Unmarshal(m.Params, params) != nil {
			reply.Error = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid " + m.Method + " parameters"}
		} else if res, err := l.askClient(ctx, name, m.Method, params); err != nil {
			je, ok := err.(*jsonrpc.Error)
			if !ok {
				je = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
			}
			reply.Error = je
		} else if reply.Result, err = json.Marshal(res); err != nil {
			reply.Error = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the gateway could not encode the client's answer"}
		}
	}
	sctx, cancel := context.WithTimeout(ctx, l.p.cfg.UpstreamTimeout)
	defer cancel()
	if err := c.send(sctx, reply); err != nil {
		l.p.log.Debug("answering an upstream's request", "upstream", name, "err", err)
	}
}
