package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// DefaultMaxMessageBytes bounds one JSON-RPC message (a tool result, a
// resource, a listing) the gateway accepts from an upstream.
const DefaultMaxMessageBytes = 16 << 20

// maxErrorBody bounds the body of an upstream's HTTP error read.
const maxErrorBody = 64 << 10

// codeTooLarge is the JSON-RPC error code of an upstream's answer the gateway
// refused for its size (an implementation-defined server error).
const codeTooLarge = -32090

// tooLargeReason says why an upstream's answer was refused.
func tooLargeReason(limit int) string {
	return fmt.Sprintf("the upstream's answer is larger than the gateway's limit of %d bytes (--max-message-bytes)", limit)
}

// limitedTransport bounds what the SDK reads from a Streamable HTTP upstream:
// a JSON body or one server-sent event larger than limit is never held whole.
// In its place the SDK reads a JSON-RPC error (codeTooLarge) answering the
// request, so the call fails readably and the upstream session lives on; the
// rest of that response is not read. (The SDK would read a JSON body whole,
// and an oversized event would fail the session.)
type limitedTransport struct {
	base  http.RoundTripper
	limit int
	grace time.Duration // a cancelled request's drain (outlive); 0 is drainGrace
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	grace := t.grace
	if grace == 0 {
		grace = drainGrace
	}
	req, answered, release := outlive(req, grace)
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		release()
		return resp, err
	}
	answered()
	resp.Body = &settlingBody{ReadCloser: resp.Body, release: release}
	if resp.StatusCode/100 != 2 {
		// The SDK reads an error's body whole to quote it: a little is enough.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, maxErrorBody), resp.Body}
		return resp, nil
	}
	refusal := func() []byte { return tooLargeAnswer(req, t.limit) }
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		if resp.ContentLength >= 0 && resp.ContentLength <= int64(t.limit) {
			return resp, nil
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, int64(t.limit)+1))
		if err == nil && len(b) > t.limit {
			b = refusal()
		}
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		resp.Header.Del("Content-Length")
	case "text/event-stream":
		resp.Body = &limitedEvents{r: bufio.NewReaderSize(resp.Body, 16<<10), c: resp.Body, limit: t.limit, refusal: refusal}
	}
	return resp, nil
}

// tooLargeAnswer is the JSON-RPC error answering req's JSON-RPC request, or
// nil when it was not a request (a GET stream, a notification).
func tooLargeAnswer(req *http.Request, limit int) []byte {
	if req.Method != http.MethodPost || req.GetBody == nil {
		return nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil
	}
	defer body.Close()
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.NewDecoder(body).Decode(&m) != nil || len(m.ID) == 0 || m.Method == "" {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.ID,
		"error": map[string]any{"code": codeTooLarge, "message": "Portcullis refused this: " + tooLargeReason(limit)}})
	return b
}

// drainGrace is how long a response body may still be read once the request
// that asked for it was cancelled (see outlive).
const drainGrace = time.Second

// outlive lets req's response be read to its end for a moment after the
// caller cancels it. The SDK hands a call its result as soon as the event
// carrying it is read, and the caller then cancels the request's context:
// with the stream's end still unread, the HTTP transport would close the
// connection rather than use it again, and every call through the SDK would
// open a new one. Cancelled before its response arrived, the request is
// cancelled at once; after it, once grace has passed (the SDK stops reading
// by then: its call has ended). answered says the response arrived; release
// lets the request go once its body is read to its end or closed
// (or it failed).
func outlive(req *http.Request, grace time.Duration) (out *http.Request, answered, release func()) {
	ctx := req.Context()
	if ctx.Done() == nil {
		return req, func() {}, func() {}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var arrived atomic.Bool
	var drain atomic.Pointer[time.Timer]
	stop := context.AfterFunc(ctx, func() {
		if !arrived.Load() {
			cancel()
			return
		}
		drain.Store(time.AfterFunc(grace, cancel))
	})
	return req.WithContext(rctx), func() { arrived.Store(true) }, func() {
		stop()
		cancel()
		if t := drain.Load(); t != nil {
			t.Stop()
		}
	}
}

// settlingBody is a response body that releases its request (outlive) once
// it is read to its end or closed.
type settlingBody struct {
	io.ReadCloser
	release func()
	done    atomic.Bool
}

func (b *settlingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done.Swap(true) {
		b.release()
	}
	return n, err
}

func (b *settlingBody) Close() error {
	err := b.ReadCloser.Close()
	if !b.done.Swap(true) {
		b.release()
	}
	return err
}

// limitedEvents passes a server-sent event stream on one whole event at a
// time, each at most limit bytes; in place of a larger one comes the
// refusal (as one event), and the stream ends.
type limitedEvents struct {
	r       *bufio.Reader
	c       io.Closer
	limit   int
	refusal func() []byte
	event   []byte // the event being read
	out     []byte // what Read hands on next
	err     error  // the end, once out is drained
}

func (e *limitedEvents) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.err != nil {
			return 0, e.err
		}
		line, err := e.r.ReadSlice('\n')
		e.event = append(e.event, line...)
		switch {
		case len(e.event) > e.limit+64: // the framing around limit bytes of data
			e.event, e.err = nil, io.EOF
			if b := e.refusal(); b != nil {
				e.out = append(append([]byte("data: "), b...), "\n\n"...)
			}
		case err == bufio.ErrBufferFull:
		case err != nil:
			e.out, e.event, e.err = e.event, nil, err
		case len(bytes.TrimRight(line, "\r\n")) == 0: // the event is complete
			e.out, e.event = append(e.out[:0], e.event...), e.event[:0]
		}
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

func (e *limitedEvents) Close() error { return e.c.Close() }

// limit is the upstream's message limit.
func (u *upstream) limit() int {
	if u.maxMessage <= 0 {
		return DefaultMaxMessageBytes
	}
	return u.maxMessage
}

// commandTransport runs a stdio upstream as the SDK's CommandTransport does,
// with the gateway's message limit on what it reads: a longer line ends the
// session rather than growing the gateway's memory.
type commandTransport struct {
	cmd   *exec.Cmd
	limit int
	user  string // it runs as
}

func (t *commandTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	stdout, err := t.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := t.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := t.cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("starting a stdio server as %s: the gateway needs root or the CAP_SETUID and CAP_SETGID capabilities: %w", t.user, err)
		}
		return nil, err
	}
	limitStdio(t.cmd.Process.Pid)
	return (&mcp.IOTransport{Reader: io.NopCloser(stdout), Writer: &processInput{stdin, t.cmd}, MaxLineLength: t.limit + 64}).Connect(ctx)
}

// processInput is a stdio upstream's standard input; closing it ends the
// process as the MCP specification says: close its input, wait, then
// SIGTERM, then SIGKILL.
type processInput struct {
	io.WriteCloser
	cmd *exec.Cmd
}

func (p *processInput) Close() error {
	err := p.WriteCloser.Close()
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	for _, sig := range []os.Signal{nil, syscall.SIGTERM, os.Kill} {
		if sig != nil {
			_ = p.cmd.Process.Signal(sig)
		}
		select {
		case werr := <-exited:
			if err == nil && sig != nil {
				err = werr
			}
			return err
		case <-time.After(5 * time.Second):
		}
	}
	return errors.Join(err, errors.New("the upstream process did not exit"))
}

// Defaults of the session limits and the request read timeout.
const (
	DefaultMaxSessions        = 10000
	DefaultMaxClientSessions  = 100
	DefaultRequestReadTimeout = 30 * time.Second
	// clientHeader carries clientOf to the SDK's handlers; the gateway
	// sets it on every request, so a client's own value never counts.
	clientHeader = "X-Portcullis-Client"
)

// sessionCounts counts the client sessions this replica serves, in all and
// per client (a principal, or an anonymous client's address).
type sessionCounts struct {
	mu    sync.Mutex
	total int
	by    map[string]int
}

// admitSession returns why a new session of who is refused (and the HTTP status),
// or "".
func (p *Proxy) admitSession(who string) (string, int) {
	c := &p.sessionCount
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.total >= p.cfg.MaxSessions:
		return fmt.Sprintf("the gateway serves its maximum of %d sessions (--max-sessions); try again later", p.cfg.MaxSessions), http.StatusServiceUnavailable
	case c.by[who] >= p.cfg.MaxClientSessions:
		return fmt.Sprintf("%s has %d sessions open, the most one client may (--max-client-sessions); close one first", clientName(who), p.cfg.MaxClientSessions), http.StatusTooManyRequests
	}
	return "", 0
}

// sessionOpened counts a new session of who until it ends.
func (p *Proxy) sessionOpened(ss *mcp.ServerSession, who string) {
	c := &p.sessionCount
	c.mu.Lock()
	c.total++
	if c.by == nil {
		c.by = map[string]int{}
	}
	c.by[who]++
	c.mu.Unlock()
	p.onEnd(ss, func() {
		c.mu.Lock()
		c.total--
		if c.by[who]--; c.by[who] <= 0 {
			delete(c.by, who)
		}
		c.mu.Unlock()
	})
}

// clientOf names the client of a request for the session limits: its
// principal, or for an anonymous client its address.
func clientOf(r *http.Request) string {
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil && ti.UserID != "" {
		return ti.UserID
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "anonymous@" + host
}

func clientName(who string) string {
	if addr, ok := strings.CutPrefix(who, "anonymous@"); ok {
		return "the anonymous client at " + addr
	}
	return who
}

// readBody reads a client's request body whole within the read timeout, so
// that a slow body cannot hold a connection (the deadline is lifted before
// any answer streams).
func (p *Proxy) readBody(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		return true
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(p.cfg.RequestReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		// The deadline stays: the rest of the body is not waited for, and
		// the connection closes after the answer.
		w.Header().Set("Connection", "close")
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			http.Error(w, fmt.Sprintf("the request body is larger than %d bytes", MaxRequestBytes), http.StatusRequestEntityTooLarge)
		case errors.Is(err, os.ErrDeadlineExceeded):
			http.Error(w, fmt.Sprintf("the request body did not arrive within %s", p.cfg.RequestReadTimeout), http.StatusRequestTimeout)
		default:
			http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
		}
		return false
	}
	_ = rc.SetReadDeadline(time.Time{})
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return true
}
