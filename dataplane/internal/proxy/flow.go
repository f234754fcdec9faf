package proxy

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
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
// against: its principal's, across its sessions and virtual servers, for
// the flow window after it last touched anything (Config.FlowWindow);
// an anonymous client's session's while it lasts; anonymous session-less
// clients (protocol 2026-07-28) share one window, which refuses more,
// never less.
type flowKey struct {
	ss        *mcp.ServerSession
	principal string
}

// bySession reports whether the labels are the session's own.
func (k flowKey) bySession() bool { return k.principal == "" && k.ss != nil && k.ss.ID() != "" }

// sharedID is the key of the labels in the session store.
func (k flowKey) sharedID() string {
	if k.bySession() {
		return k.ss.ID()
	}
	return "flow:" + k.principal
}

// principalFlow is a principal's labels and when it last touched any.
type principalFlow struct {
	labels atomic.Uint32
	last   atomic.Int64 // unix nanoseconds
}

// principalFlow returns the principal's window, emptied if it has passed.
func (p *Proxy) principalFlow(principal string) *principalFlow {
	now := time.Now().UnixNano()
	v, ok := p.principalFlows.Load(principal)
	if !ok {
		v, _ = p.principalFlows.LoadOrStore(principal, new(principalFlow))
	}
	pf := v.(*principalFlow)
	if last := pf.last.Load(); last != 0 && time.Duration(now-last) > p.cfg.FlowWindow {
		pf.labels.Store(0) // the window ended
	}
	if p.flowSweeps.Add(1)%1024 == 0 {
		p.principalFlows.Range(func(key, v any) bool {
			if time.Duration(now-v.(*principalFlow).last.Load()) > p.cfg.FlowWindow {
				p.principalFlows.Delete(key)
			}
			return true
		})
	}
	return pf
}

// sessionFlow is what one client session has touched so far.
func (p *Proxy) sessionFlow(ss *mcp.ServerSession) *atomic.Uint32 {
	if v, ok := p.flows.Load(ss); ok {
		return v.(*atomic.Uint32)
	}
	v, loaded := p.flows.LoadOrStore(ss, new(atomic.Uint32))
	if !loaded {
		p.onEnd(ss, func() { p.flows.Delete(ss) })
	}
	return v.(*atomic.Uint32)
}

// localFlow is what k has touched, as this replica knows.
func (p *Proxy) localFlow(k flowKey) flowLabel {
	if k.bySession() {
		return flowLabel(p.sessionFlow(k.ss).Load())
	}
	return flowLabel(p.principalFlow(k.principal).labels.Load())
}

// flowRefusal is why k may not use something with these labels, or "". For
// an external sink it reads what k touched on every replica; if that cannot
// be read, it is refused.
func (p *Proxy) flowRefusal(ctx context.Context, k flowKey, labels flowLabel, exposed string) string {
	touched := p.localFlow(k)
	if labels&externalSink != 0 && p.shared != nil && (k.principal != "" || k.bySession()) {
		remote, err := p.shared.store.flow(ctx, k.sharedID())
		if err != nil {
			return "data-flow rule: the gateway's session store is unavailable, so tools that send data outside are refused until it is back"
		}
		touched |= remote
	}
	return p.flowCheck(touched, labels, exposed, k)
}

// touch records that k used something with these labels, here and, when
// replicas share a store, for the others.
func (p *Proxy) touch(ctx context.Context, k flowKey, labels flowLabel) {
	touched := labels & exfiltration
	if touched == 0 {
		return
	}
	if k.bySession() {
		p.sessionFlow(k.ss).Or(uint32(touched))
	} else {
		pf := p.principalFlow(k.principal)
		pf.labels.Or(uint32(touched))
		pf.last.Store(time.Now().UnixNano())
	}
	if p.shared != nil && (k.principal != "" || k.bySession()) {
		ttl := p.cfg.FlowWindow
		if k.bySession() {
			ttl = 0 // the session's own record, which lives as long as the session
		}
		if err := p.shared.store.addFlow(ctx, k.sharedID(), touched, ttl); err != nil {
			p.log.Warn("data-flow labels not shared with the other replicas (this replica still enforces them)", "err", err)
		}
	}
}

// flowCheck refuses an external sink to a caller that touched both private
// data and untrusted content; it returns the reason, or "".
func (p *Proxy) flowCheck(touched, labels flowLabel, exposed string, k flowKey) string {
	if !exfiltrates(touched, labels) {
		return ""
	}
	if k.bySession() {
		return fmt.Sprintf("data-flow rule: this session has read private data and untrusted content, so it may not use %q, "+
			"which sends data outside (external_sink)", exposed)
	}
	who := k.principal
	if who == "" {
		who = "an anonymous client"
	}
	return fmt.Sprintf("data-flow rule: %s has read private data and untrusted content within the last %s (in any session), so it may not use %q, "+
		"which sends data outside (external_sink)", who, p.cfg.FlowWindow, exposed)
}

// exfiltrates reports whether something with these labels could send out
// what a caller that touched these has read.
func exfiltrates(touched, labels flowLabel) bool {
	return labels&externalSink != 0 && touched&exfiltration == exfiltration
}

// flowGate applies the data-flow rule to a prompt or resource as to a tool:
// it is refused if it is an external sink the caller may not use now, and
// otherwise marks the caller with its labels.
func (p *Proxy) flowGate(ctx context.Context, ss *mcp.ServerSession, extra *mcp.RequestExtra, key pinKey, what string) error {
	pol := p.pol.Load()
	if pol == nil {
		return nil
	}
	labels := pol.labels[key]
	if labels == 0 {
		return nil
	}
	var ti *auth.TokenInfo
	if extra != nil {
		ti = extra.TokenInfo
	}
	k := flowKey{ss: ss, principal: identityOf(ti).principal}
	if reason := p.flowRefusal(ctx, k, labels, what); reason != "" {
		return fmt.Errorf("portcullis refused: %s", reason)
	}
	p.touch(ctx, k, labels)
	return nil
}
