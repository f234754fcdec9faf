package proxy

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// progressRelay maps the progress tokens the gateway gives upstreams back to
// the client session and token that asked. Upstream sessions are shared, so
// client tokens are rewritten to avoid collisions.
type progressRelay struct {
	next atomic.Uint64
	mu   sync.Mutex
	m    map[string]relayTarget
}

type relayTarget struct {
	token   any
	session *mcp.ServerSession
}

func newProgressRelay() *progressRelay { return &progressRelay{m: map[string]relayTarget{}} }

func (r *progressRelay) register(token any, ss *mcp.ServerSession) (string, func()) {
	id := "pcg-" + strconv.FormatUint(r.next.Add(1), 36)
	r.mu.Lock()
	r.m[id] = relayTarget{token: token, session: ss}
	r.mu.Unlock()
	return id, func() {
		r.mu.Lock()
		delete(r.m, id)
		r.mu.Unlock()
	}
}

func (r *progressRelay) forward(ctx context.Context, p *mcp.ProgressNotificationParams) {
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
	_ = t.session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: t.token, Progress: p.Progress, Total: p.Total, Message: p.Message})
}
