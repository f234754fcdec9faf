package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Parked sessions. A client's upstream session with a Streamable HTTP
// upstream is an ID and an HTTP client to the fast path (fast.go), which
// makes its requests raw; the SDK's client for it (its structures, a
// connection and the goroutine reading it: about 4.5 KiB, measured by
// BenchmarkIdleSession) serves only the requests the fast path leaves to
// the SDK (the SDK path). So the SDK client is parked while no such request
// needs it: closed without telling the upstream, whose session lives on,
// and taken up again — a new SDK client on the same session — when a
// request needs it. An idle client session thus holds no SDK client of its
// own upstream sessions.

// parkAfter is how long an SDK client no request used is kept before it is
// parked.
const parkAfter = 10 * time.Second

// resumable carries the requests of a link's SDK client with a Streamable
// HTTP upstream. Parked, the SDK's DELETE on closing is not sent. Taking up
// a session (id set), the SDK's initialize is answered with the session's ID
// and the upstream's own initialize result, and its
// notifications/initialized is not sent again (the upstream had it).
type resumable struct {
	base    http.RoundTripper
	id      string
	init    []byte      // the upstream's initialize result (JSON)
	greeted atomic.Bool // the SDK's handshake is over (or there is none to answer)
	parked  atomic.Bool
}

func (t *resumable) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodDelete && t.parked.Load() {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return answered(req, http.StatusNoContent, "", "", nil), nil
	}
	if t.id == "" || req.Method != http.MethodPost || t.greeted.Load() || req.Body == nil {
		return t.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body) // the SDK's own request
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	var m rawMessage
	_ = json.Unmarshal(body, &m)
	switch m.Method {
	case "initialize":
		out, err := json.Marshal(outMessage{JSONRPC: "2.0", ID: m.ID, Result: t.init})
		if err != nil {
			return nil, err
		}
		return answered(req, http.StatusOK, "application/json", t.id, out), nil
	case "notifications/initialized":
		t.greeted.Store(true)
		return answered(req, http.StatusAccepted, "", "", nil), nil
	}
	t.greeted.Store(true) // not a handshake: the SDK is past it
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	return t.base.RoundTrip(req)
}

// answered is a response the gateway gives the SDK in the upstream's stead,
// on the session being taken up.
func answered(req *http.Request, status int, contentType, sessionID string, body []byte) *http.Response {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if sessionID != "" {
		h.Set(sessionIDHeader, sessionID)
	}
	return &http.Response{Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Request: req,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}

// ended is the SessionClosedHandler of c's SDK client over rt: the session
// ended, unless the client was parked.
func (c *upConn) ended(rt *resumable) func() {
	return func() {
		if rt == nil || !rt.parked.Load() {
			c.ends.end()
		}
	}
}

// acquire returns c's SDK client, taking the session up again if it is
// parked; release it once done.
func (c *upConn) acquire(ctx context.Context) (*mcp.ClientSession, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if c.closed {
		return nil, fmt.Errorf("the upstream session has ended")
	}
	if c.cs == nil {
		init, err := json.Marshal(c.init)
		if err != nil {
			return nil, err
		}
		rt := &resumable{id: c.id, init: init}
		client, cs, err := c.l.dial(ctx, c.u, c.version, rt, c.ended(rt))
		if err != nil {
			return nil, err
		}
		c.client, c.cs, c.rt = client, cs, rt
	}
	c.users++
	if c.idle != nil {
		c.idle.Stop()
	}
	return c.cs, nil
}

// release ends a use of c's SDK client (acquire); it is parked once no
// request used it for parkAfter.
func (c *upConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.users--; c.users > 0 || c.rt == nil || c.id == "" {
		return
	}
	if c.idle == nil {
		c.idle = time.AfterFunc(parkAfter, c.park)
	} else {
		c.idle.Reset(parkAfter)
	}
}

// park closes c's SDK client, if no request uses it, without ending the
// session (only sessions with an ID over a resumable transport).
func (c *upConn) park() {
	c.mu.Lock()
	if c.users > 0 || c.cs == nil || c.rt == nil || c.id == "" || c.closed {
		c.mu.Unlock()
		return
	}
	cs, rt := c.cs, c.rt
	c.client, c.cs, c.rt = nil, nil, nil
	c.mu.Unlock()
	rt.parked.Store(true)
	_ = cs.Close()
}

// hangUp ends c's session at the upstream (the DELETE the SDK would send),
// when it is parked.
func (c *upConn) hangUp() {
	if c.hc == nil || c.id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.u.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.u.spec.GetUrl(), nil)
	if err != nil {
		return
	}
	req.Header.Set(sessionIDHeader, c.id)
	req.Header.Set("Mcp-Protocol-Version", c.version)
	if resp, err := c.hc.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
	}
}

// modern reports whether c's session is of a session-less revision
// (2026-07-28 or later).
func (c *upConn) modern() bool {
	return c.version >= statelessProtocol
}

// versionOf is cs's protocol revision ("" before it is initialized).
func versionOf(cs *mcp.ClientSession) string {
	if ir := cs.InitializeResult(); ir != nil {
		return ir.ProtocolVersion
	}
	return ""
}
