package proxy

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// flowLabel is a tool's data-flow label, as a bit.
type flowLabel uint32

const (
	privateData flowLabel = 1 << iota
	untrustedContent
	externalSink
)

// exfiltration is the combination that makes an external sink dangerous: the
// session holds private data, and untrusted content may have told the model
// what to do with it.
const exfiltration = privateData | untrustedContent

func parseLabels(names []string) flowLabel {
	var l flowLabel
	for _, n := range names {
		switch n {
		case "private_data":
			l |= privateData
		case "untrusted_content":
			l |= untrustedContent
		case "external_sink":
			l |= externalSink
		}
	}
	return l
}

// flowKey is whose data-flow labels a request adds to and is checked
// against: its client session's, or, for a session-less request (protocol
// 2026-07-28), its principal's. A principal's labels last while it keeps
// calling (the session idle time after its last call), on this replica;
// anonymous session-less clients share one window, which refuses more, never
// less.
type flowKey struct {
	ss        *mcp.ServerSession
	principal string
}

// principalFlow is a session-less principal's labels and when it last called.
type principalFlow struct {
	labels atomic.Uint32
	last   atomic.Int64 // unix nanoseconds
}

// flowOf returns the labels a request adds to.
func (p *Proxy) flowOf(k flowKey) *atomic.Uint32 {
	if k.ss != nil && k.ss.ID() != "" {
		return p.sessionFlow(k.ss)
	}
	now := time.Now().UnixNano()
	v, ok := p.principalFlows.Load(k.principal)
	if !ok {
		v, _ = p.principalFlows.LoadOrStore(k.principal, new(principalFlow))
	}
	pf := v.(*principalFlow)
	if last := pf.last.Swap(now); last != 0 && time.Duration(now-last) > p.cfg.SessionIdle {
		pf.labels.Store(0) // the window ended
	}
	if p.flowSweeps.Add(1)%1024 == 0 {
		p.principalFlows.Range(func(key, v any) bool {
			if time.Duration(now-v.(*principalFlow).last.Load()) > p.cfg.SessionIdle {
				p.principalFlows.Delete(key)
			}
			return true
		})
	}
	return &pf.labels
}

// sessionFlow is what one client session has touched so far.
func (p *Proxy) sessionFlow(ss *mcp.ServerSession) *atomic.Uint32 {
	if ss == nil {
		return new(atomic.Uint32) // no session: nothing is remembered
	}
	if v, ok := p.flows.Load(ss); ok {
		return v.(*atomic.Uint32)
	}
	v, loaded := p.flows.LoadOrStore(ss, new(atomic.Uint32))
	if !loaded {
		go func() { // forget the session when it ends
			_ = ss.Wait()
			p.flows.Delete(ss)
		}()
	}
	return v.(*atomic.Uint32)
}

// sharesFlow reports whether the session's data-flow state is shared with the
// other replicas through the session store.
func (p *Proxy) sharesFlow(ss *mcp.ServerSession) bool {
	return p.shared != nil && ss != nil && ss.ID() != ""
}

// flowRefusal is why the session may not call a tool with these labels, or
// "". For an external sink it reads what the session touched on every
// replica; if that cannot be read, the call is refused.
func (p *Proxy) flowRefusal(ctx context.Context, k flowKey, labels flowLabel, exposed string) string {
	ss := k.ss
	touched := flowLabel(p.flowOf(k).Load())
	if labels&externalSink != 0 && p.sharesFlow(ss) {
		remote, err := p.shared.store.flow(ctx, ss.ID())
		if err != nil {
			return "data-flow rule: the gateway's session store is unavailable, so tools that send data outside are refused until it is back"
		}
		touched |= remote
	}
	return flowCheck(touched, labels, exposed)
}

// touch records that the session used a tool with these labels, here and,
// when shared, for the other replicas.
func (p *Proxy) touch(ctx context.Context, k flowKey, labels flowLabel) {
	ss := k.ss
	touched := labels & exfiltration
	if touched == 0 {
		return
	}
	p.flowOf(k).Or(uint32(touched))
	if p.sharesFlow(ss) {
		if err := p.shared.store.addFlow(ctx, ss.ID(), touched); err != nil {
			p.log.Warn("data-flow labels not shared with the other replicas (this replica still enforces them)", "err", err)
		}
	}
}

// flowCheck refuses an external sink in a session that touched both private
// data and untrusted content; it returns the reason, or "".
func flowCheck(touched, labels flowLabel, exposed string) string {
	if labels&externalSink != 0 && touched&exfiltration == exfiltration {
		return fmt.Sprintf("data-flow rule: this session has read private data and untrusted content, so it may not call %q, "+
			"which sends data outside (external_sink). Start a new session to use it", exposed)
	}
	return ""
}
