package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"
)

// Shared MCP client sessions.
//
// The go-sdk keeps a session in the process that answered its initialize, so a
// gateway restart or a load balancer without affinity would cost clients their
// session (a 404, then a new initialize, and the data-flow state of the old
// session would be gone). With a SessionStore the gateway's replicas share
// sessions through Redis: initialize writes the session (virtual server,
// principal, initialize parameters) and any replica that gets a request for a
// session it does not hold restores it from there. The data-flow labels a
// session has touched live there too, so a client cannot launder a session by
// moving between replicas.

// sessionIDHeader is the streamable HTTP transport's session header.
const (
	sessionIDHeader = "Mcp-Session-Id"
	// methodHeader and nameHeader repeat a request's method and name
	// (protocol 2026-07-28, SEP-2243).
	methodHeader = "Mcp-Method"
	nameHeader   = "Mcp-Name"
)

// maxSessionIDLen bounds a client-supplied session ID (the SDK's are 26 characters).
const maxSessionIDLen = 128

// storedSession is what a replica needs to serve a session it did not start.
type storedSession struct {
	Gateway     string                  `json:"gateway"`
	VS          string                  `json:"vs"`
	User        string                  `json:"user,omitempty"` // principal bound at initialize; "" without client auth
	State       *mcp.ServerSessionState `json:"state"`
	Initialized bool                    `json:"-"`
	Flow        flowLabel               `json:"-"`
	Deleted     bool                    `json:"-"` // ended by DELETE: a tombstone
}

// RedisSessions stores MCP client sessions in Redis, one hash per session with
// a sliding idle TTL.
type RedisSessions struct {
	rdb    redis.UniversalClient
	prefix string
	idle   time.Duration
}

// NewRedisSessions returns a store whose sessions expire after idle without requests.
func NewRedisSessions(rdb redis.UniversalClient, prefix string, idle time.Duration) *RedisSessions {
	return &RedisSessions{rdb: rdb, prefix: prefix, idle: idle}
}

// storeTimeout bounds each Redis round trip on the request path.
const storeTimeout = 500 * time.Millisecond

func (s *RedisSessions) key(id string) string { return s.prefix + id }

// The data-flow labels are hash fields of their own, one per label, so
// concurrent writes from two replicas cannot overwrite each other.
var (
	flowNames  = []string{"f1", "f2", "f4"}
	flowLabels = []flowLabel{privateData, untrustedContent, externalSink}
)

// flowSet is the HSET field/value pairs recording labels.
func flowSet(labels flowLabel) []any {
	var fields []any
	for i, l := range flowLabels {
		if labels&l != 0 {
			fields = append(fields, flowNames[i], "1")
		}
	}
	return fields
}

// flowFrom reads labels back from the fields' values, in flowNames order.
func flowFrom(values []any) flowLabel {
	var l flowLabel
	for i, v := range values {
		if v == "1" {
			l |= flowLabels[i]
		}
	}
	return l
}

func (s *RedisSessions) save(ctx context.Context, id string, st *storedSession) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	init := "0"
	if st.Initialized {
		init = "1"
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.key(id), append([]any{"s", b, "i", init}, flowSet(st.Flow)...)...)
		p.Expire(ctx, s.key(id), s.idle)
		return nil
	})
	return err
}

// load returns the session and extends its TTL, or nil when it is unknown or expired.
func (s *RedisSessions) load(ctx context.Context, id string) (*storedSession, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	var get *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HGetAll(ctx, s.key(id))
		p.Expire(ctx, s.key(id), s.idle)
		return nil
	})
	if err != nil {
		return nil, err
	}
	h := get.Val()
	if h["d"] == "1" {
		return &storedSession{Deleted: true}, nil
	}
	if h["s"] == "" {
		return nil, nil
	}
	st := new(storedSession)
	if err := json.Unmarshal([]byte(h["s"]), st); err != nil {
		return nil, fmt.Errorf("stored session %q: %w", id, err)
	}
	st.Initialized = h["i"] == "1"
	values := make([]any, len(flowNames))
	for i, n := range flowNames {
		values[i] = h[n]
	}
	st.Flow = flowFrom(values)
	return st, nil
}

func (s *RedisSessions) markInitialized(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return s.rdb.HSet(ctx, s.key(id), "i", "1").Err()
}

// flow is the data-flow labels the session has touched on any replica.
func (s *RedisSessions) flow(ctx context.Context, id string) (flowLabel, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	values, err := s.rdb.HMGet(ctx, s.key(id), flowNames...).Result()
	if err != nil {
		return 0, err
	}
	return flowFrom(values), nil
}

// addFlow records labels a session (or a principal, id "flow:<principal>")
// touched; a ttl restarts the record's window.
func (s *RedisSessions) addFlow(ctx context.Context, id string, labels flowLabel, ttl time.Duration) error {
	fields := flowSet(labels)
	if len(fields) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.key(id), fields...)
		if ttl > 0 {
			p.Expire(ctx, s.key(id), ttl)
		}
		return nil
	})
	return err
}

// delete leaves a tombstone, so that a replica still holding the session
// ends it instead of sharing it again.
func (s *RedisSessions) delete(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.key(id))
		p.HSet(ctx, s.key(id), "d", "1")
		p.Expire(ctx, s.key(id), s.idle)
		return nil
	})
	return err
}

// liveSession is a session this process serves.
type liveSession struct {
	ss *mcp.ServerSession
	// t is set for a session restored from the store; nil for one the SDK's
	// handler created here (it owns the transport).
	t    *mcp.StreamableServerTransport
	mu   sync.Mutex
	last time.Time
	// state is what the store should hold, kept here to share the session
	// again when the store lost it (started during an outage, or Redis
	// restarted empty).
	state storedSession
}

// snapshot is the session's state with the data-flow labels touched here.
func (h *sharedSessions) snapshot(ls *liveSession) *storedSession {
	ls.mu.Lock()
	st := ls.state
	ls.mu.Unlock()
	st.Flow |= flowLabel(h.p.sessionFlow(ls.ss).Load())
	return &st
}

// sharedSessions serves /mcp/{vs} for sessions that may have started on
// another replica. Requests without a session ID (initialize) go to the SDK's
// handler; the initialize middleware stores the session it creates.
type sharedSessions struct {
	p     *Proxy
	store *RedisSessions
	sdk   http.Handler
	idle  time.Duration

	mu   sync.Mutex
	live map[string]*liveSession
}

func (h *sharedSessions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(sessionIDHeader)
	if id == "" {
		h.sdk.ServeHTTP(w, r)
		return
	}
	if len(id) > maxSessionIDLen {
		http.Error(w, "Bad Request: Mcp-Session-Id is too long", http.StatusBadRequest)
		return
	}
	var user string
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		user = ti.UserID
	}
	h.mu.Lock()
	ls := h.live[id]
	h.mu.Unlock()
	st, err := h.store.load(r.Context(), id)
	switch {
	case err != nil && ls != nil && r.Method != http.MethodDelete:
		// Redis is away: this replica still serves the sessions it holds,
		// checked against what it holds.
		h.p.log.Warn("MCP session store unavailable; serving a session held here", "err", err)
		st = h.snapshot(ls)
	case err != nil:
		h.p.log.Warn("MCP session store unavailable", "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "session store unavailable; retry shortly", http.StatusServiceUnavailable)
		return
	case st == nil && ls != nil:
		// The store lost it (started during an outage, or Redis restarted
		// empty): share it again from what this replica holds.
		snap := h.snapshot(ls)
		if err := h.store.save(r.Context(), id, snap); err == nil {
			st = snap
		}
	}
	pol := h.p.pol.Load()
	if st == nil || st.Deleted || pol == nil || st.Gateway != pol.gatewayID || st.VS != r.PathValue("vs") {
		h.drop(id) // ended elsewhere (DELETE or expiry): end it here too
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	if user != st.User {
		http.Error(w, "session user mismatch", http.StatusForbidden)
		return
	}
	if r.Method == http.MethodDelete {
		if err := h.store.delete(r.Context(), id); err != nil {
			http.Error(w, "session store unavailable; retry shortly", http.StatusServiceUnavailable)
			return
		}
		h.drop(id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if ls == nil {
		if ls, err = h.restore(r.Context(), id, st); err != nil {
			h.p.log.Error("restoring an MCP session", "session", id, "err", err)
			http.Error(w, "failed to restore the session", http.StatusInternalServerError)
			return
		}
	}
	h.serve(w, r, ls)
}

// serve hands the request to the session's transport.
func (h *sharedSessions) serve(w http.ResponseWriter, r *http.Request, ls *liveSession) {
	ls.mu.Lock()
	ls.last = time.Now()
	ls.mu.Unlock()
	if h.p.fast(w, r) {
		return
	}
	if ls.t == nil {
		h.sdk.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	ls.t.ServeHTTP(w, r)
}

// restore serves a session this process does not hold, from its stored state.
func (h *sharedSessions) restore(ctx context.Context, id string, st *storedSession) (*liveSession, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ls := h.live[id]; ls != nil {
		return ls, nil
	}
	srv := h.p.server(st.VS)
	if srv == nil {
		return nil, fmt.Errorf("no virtual server %q", st.VS)
	}
	state := *st.State
	if st.Initialized && state.InitializedParams == nil {
		state.InitializedParams = new(mcp.InitializedParams)
	}
	t := &mcp.StreamableServerTransport{SessionID: id}
	// The session outlives this request: it ends on DELETE, on idle, or with the gateway.
	ss, err := srv.Connect(context.WithoutCancel(ctx), t, &mcp.ServerSessionOptions{State: &state})
	if err != nil {
		return nil, err
	}
	ls := &liveSession{ss: ss, t: t, last: time.Now(), state: *st}
	h.live[id] = ls
	h.watch(id, ls)
	l := h.p.linkOf(ss, st.VS)
	l.setUser(st.User, st.State.NegotiatedProtocolVersion)
	l.serveFast()
	return ls, nil
}

// created records a session the SDK's handler made here.
func (h *sharedSessions) created(ss *mcp.ServerSession, st *storedSession) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.live[ss.ID()]; ok {
		return
	}
	ls := &liveSession{ss: ss, last: time.Now(), state: *st}
	h.live[ss.ID()] = ls
	h.watch(ss.ID(), ls)
}

// watch forgets the session when it ends.
func (h *sharedSessions) watch(id string, ls *liveSession) {
	h.p.onEnd(ls.ss, func() {
		h.mu.Lock()
		if h.live[id] == ls {
			delete(h.live, id)
		}
		h.mu.Unlock()
	})
}

func (h *sharedSessions) drop(id string) {
	h.mu.Lock()
	ls := h.live[id]
	h.mu.Unlock()
	if ls != nil {
		_ = ls.ss.Close()
	}
}

// sweep closes sessions restored here that have been idle too long; the
// SDK's handler times out its own.
func (h *sharedSessions) sweep(ctx context.Context) {
	t := time.NewTicker(h.idle / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var idle []*liveSession
			h.mu.Lock()
			for _, ls := range h.live {
				ls.mu.Lock()
				if ls.t != nil && now.Sub(ls.last) > h.idle {
					idle = append(idle, ls)
				}
				ls.mu.Unlock()
			}
			h.mu.Unlock()
			for _, ls := range idle {
				_ = ls.ss.Close()
			}
		}
	}
}

// onInitialize stores a new session once its initialize succeeded, and marks
// it initialized when the client says so.
func (p *Proxy) onInitialize(ctx context.Context, vs, method string, req mcp.Request, res mcp.Result) error {
	ss, ok := req.GetSession().(*mcp.ServerSession)
	if !ok || ss.ID() == "" {
		return nil
	}
	// The fast path serves the session from its initialize on (as the SDK
	// does: it takes requests once initialize is answered), for the user
	// that initialized it. The client learns the session ID only from the
	// answer, so no request of the session can come before this.
	if method == "initialize" {
		var user, version string
		if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil {
			user = extra.TokenInfo.UserID
		}
		if ir, ok := res.(*mcp.InitializeResult); ok {
			version = ir.ProtocolVersion
		}
		var who string
		if extra := req.GetExtra(); extra != nil && extra.Header != nil {
			who = extra.Header.Get(clientHeader)
		}
		p.sessionOpened(ss, who)
		l := p.linkOf(ss, vs)
		l.setUser(user, version)
		l.serveFast()
	}
	h := p.shared
	if h == nil {
		return nil
	}
	switch method {
	case "initialize":
		params, _ := req.GetParams().(*mcp.InitializeParams)
		ir, _ := res.(*mcp.InitializeResult)
		pol := p.pol.Load()
		if params == nil || ir == nil || pol == nil {
			return nil
		}
		st := &storedSession{Gateway: pol.gatewayID, VS: vs, State: &mcp.ServerSessionState{
			InitializeParams: params, NegotiatedProtocolVersion: ir.ProtocolVersion}}
		if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil {
			st.User = extra.TokenInfo.UserID
		}
		h.created(ss, st)
		if err := h.store.save(ctx, ss.ID(), st); err != nil {
			// Serve it from this replica; it is shared once the store is back.
			p.log.Warn("MCP session store unavailable; the new session is held by this replica only", "err", err)
		}
	case "notifications/initialized":
		h.mu.Lock()
		ls := h.live[ss.ID()]
		h.mu.Unlock()
		if ls != nil {
			ls.mu.Lock()
			ls.state.Initialized = true
			ls.mu.Unlock()
		}
		if err := h.store.markInitialized(ctx, ss.ID()); err != nil {
			p.log.Warn("MCP session store: marking a session initialized", "err", err)
		}
	}
	return nil
}
