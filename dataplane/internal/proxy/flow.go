package proxy

import (
	"context"
	"fmt"
	"sync/atomic"

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
func (p *Proxy) flowRefusal(ctx context.Context, ss *mcp.ServerSession, labels flowLabel, exposed string) string {
	touched := flowLabel(p.sessionFlow(ss).Load())
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
func (p *Proxy) touch(ctx context.Context, ss *mcp.ServerSession, labels flowLabel) {
	touched := labels & exfiltration
	if touched == 0 {
		return
	}
	p.sessionFlow(ss).Or(uint32(touched))
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
