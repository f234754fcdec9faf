package proxy

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/resultscan"
)

// progressRelay maps the progress tokens the gateway gives upstreams back to
// the client session and token that asked. A stateless upstream's session is
// shared, so client tokens are rewritten to avoid collisions.
type progressRelay struct {
	next atomic.Uint64
	mu   sync.Mutex
	m    map[string]relayTarget
}

type relayTarget struct {
	token   any
	session *mcp.ServerSession
	ctx     context.Context // the client request's: the SDK sends on its stream
}

func newProgressRelay() *progressRelay { return &progressRelay{m: map[string]relayTarget{}} }

func (r *progressRelay) register(ctx context.Context, token any, ss *mcp.ServerSession) (string, func()) {
	id := "pcg-" + strconv.FormatUint(r.next.Add(1), 36)
	r.mu.Lock()
	r.m[id] = relayTarget{token: token, session: ss, ctx: ctx}
	r.mu.Unlock()
	return id, func() {
		r.mu.Lock()
		delete(r.m, id)
		r.mu.Unlock()
	}
}

// forward relays an upstream's progress notification to the client that
// asked, its message scanned like any upstream text.
func (r *progressRelay) forward(ctx context.Context, p *mcp.ProgressNotificationParams, pol *policy) {
	id, ok := p.ProgressToken.(string)
	if !ok {
		return
	}
	r.mu.Lock()
	t, ok := r.m[id]
	r.mu.Unlock()
	if !ok || t.session == nil {
		return
	}
	params := &mcp.ProgressNotificationParams{Meta: p.Meta, ProgressToken: t.token, Progress: p.Progress, Total: p.Total, Message: scanProgress(p.Message, pol)}
	// On the stream of the call it belongs to; if that was answered first,
	// on the session's own stream.
	if t.ctx == nil || t.session.NotifyProgress(t.ctx, params) != nil {
		_ = t.session.NotifyProgress(ctx, params)
	}
}

// scanProgress is a progress message from an upstream, scanned.
func scanProgress(msg string, pol *policy) string {
	if msg == "" {
		return ""
	}
	a := pol.scanAction()
	var rep resultscan.Report
	if msg = resultscan.Text(msg, a, &rep); a == resultscan.Block && rep.Suspicious() {
		msg = "[Portcullis withheld this progress message: it contained " + rep.Summary() + "]"
	}
	return msg
}
