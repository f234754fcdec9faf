// Package telemetry stores the call events gateways ship.
package telemetry

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/bound"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/metrics"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/callevent"
	"github.com/portcullis-mcp/portcullis/ent/callrollup"
	"github.com/portcullis-mcp/portcullis/ent/connection"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// MaxBatch is the largest batch accepted in one message.
const MaxBatch = 5000

// Service ingests call events.
type Service struct {
	db  *ent.Client
	drv *sql.Driver // the same database: the ingest's prepared statements
	log *slog.Logger
}

// New returns a Service on drv's database.
func New(drv *sql.Driver, log *slog.Logger) (*Service, error) {
	if drv == nil {
		return nil, errors.New("telemetry.New: a database driver is required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: ent.NewClient(ent.Driver(drv)), drv: drv, log: log.With("component", "telemetry")}, nil
}

// Ingest stores a batch from an agent. Events already stored (same id) are
// skipped, so a batch re-sent after a lost acknowledgement is harmless.
func (s *Service) Ingest(ctx context.Context, agent *ent.Agent, events []*agentv1.CallEvent, dropped uint64) (int, error) {
	if len(events) > MaxBatch {
		return 0, fmt.Errorf("batch of %d events exceeds the limit of %d", len(events), MaxBatch)
	}
	if dropped > 0 {
		s.log.Warn("agent dropped call events", "agent", agent.ID, "dropped", dropped)
		metrics.EventsDropped.Add(float64(dropped))
	}
	// Events a gateway sends again (its acknowledgement was lost) are stored
	// and rolled up once.
	ids := make([]string, 0, len(events))
	for _, e := range events {
		if e.GetId() != "" && len(e.GetId()) <= 64 {
			ids = append(ids, e.GetId())
		}
	}
	seen := map[string]bool{}
	for start := 0; start < len(ids); start += 1000 {
		have, err := s.db.CallEvent.Query().Where(callevent.IDIn(ids[start:min(start+1000, len(ids))]...)).IDs(ctx)
		if err != nil {
			return 0, err
		}
		for _, id := range have {
			seen[id] = true
		}
	}
	// Events and their rollups are stored together, so a batch resent after a
	// failure is neither lost from nor counted twice in the rollups.
	sqlTx, err := s.drv.DB().BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer sqlTx.Rollback()
	db := ent.NewClient(ent.Driver(sql.NewDriver(s.drv.Dialect(), sql.Conn{ExecQuerier: sqlTx})))
	rows := make([]any, 0, len(events)*len(callevent.Columns))
	tenantID, gatewayID, agentID := s.uuidArg(agent.TenantID), s.uuidArg(agent.GatewayID), s.uuidArg(agent.ID)
	roll := map[rollupKey]*rollupAgg{}
	var conns []*agentv1.CallEvent
	for _, e := range events {
		if e.GetId() == "" || len(e.GetId()) > 64 || e.GetMethod() == "" || seen[e.GetId()] {
			continue
		}
		seen[e.GetId()] = true
		decision := callevent.DecisionAllow
		if e.GetDecision() == agentv1.Decision_DECISION_DENY {
			decision = callevent.DecisionDeny
		}
		t := e.GetTime().AsTime()
		if !e.GetTime().IsValid() {
			t = time.Now()
		}
		vs, up, tl := bound.String(e.GetVirtualServer(), 63), bound.String(e.GetUpstream(), 48), bound.String(e.GetTool(), 128)
		// In the order of callevent.Columns.
		rows = append(rows, e.GetId(), tenantID, gatewayID, agentID, t,
			bound.String(e.GetPrincipal(), 256), vs, up, bound.String(e.GetMethod(), 64), tl,
			decision.String(), bound.String(e.GetReason(), 512), e.GetLatencyMicros(),
			e.GetRequestBytes(), e.GetResponseBytes(), bound.String(e.GetError(), 1024), bound.String(e.GetUpstreamIdentity(), 256))
		if m := e.GetMethod(); m == MethodConnect || m == MethodDisconnect {
			conns = append(conns, e)
		}
		if e.GetMethod() != "tools/call" {
			continue // rollups chart tool calls; other requests stay in the raw events
		}
		k := rollupKey{minute: t.UTC().Truncate(time.Minute), vs: vs, upstream: up, tool: tl}
		a := roll[k]
		if a == nil {
			a = &rollupAgg{}
			roll[k] = a
		}
		a.add(decision == callevent.DecisionDeny, e.GetError() != "", e.GetLatencyMicros())
	}
	stored := len(rows) / len(callevent.Columns)
	if err := s.insertEvents(ctx, sqlTx, rows); err != nil {
		return 0, fmt.Errorf("storing call events: %w", err)
	}
	if err := s.rollUp(ctx, db, agent, roll); err != nil {
		return 0, fmt.Errorf("rolling up call events: %w", err)
	}
	if err := sqlTx.Commit(); err != nil {
		return 0, fmt.Errorf("storing call events: %w", err)
	}
	metrics.EventsIngested.Add(float64(stored))
	s.recordConnections(ctx, agent, conns)
	return stored, nil
}

// The events a gateway records when a person authorizes it at an upstream
// that acts as each person, and when the grant goes (the person
// disconnected, the upstream refused a refresh, an admin revoked it).
const (
	MethodConnect    = "oauth/connect"
	MethodDisconnect = "oauth/disconnect"
)

// recordConnections keeps each person's connection state from those
// events; an older event than the state's does not change it. The events
// themselves are stored already, so a failure here is logged, not retried.
func (s *Service) recordConnections(ctx context.Context, agent *ent.Agent, evs []*agentv1.CallEvent) {
	ctx = viewer.System(ctx)
	for _, e := range evs {
		up, who := bound.String(e.GetUpstream(), 48), bound.String(e.GetPrincipal(), 256)
		if up == "" || who == "" || !e.GetTime().IsValid() {
			continue
		}
		t := e.GetTime().AsTime()
		c, err := s.db.Connection.Query().Where(connection.GatewayID(agent.GatewayID), connection.Upstream(up), connection.Principal(who)).Only(ctx)
		switch {
		case ent.IsNotFound(err) && e.GetMethod() == MethodConnect:
			err = s.db.Connection.Create().SetTenantID(agent.TenantID).SetGatewayID(agent.GatewayID).SetUpstream(up).SetPrincipal(who).
				SetUpstreamIdentity(bound.String(e.GetUpstreamIdentity(), 256)).SetConnectedAt(t).SetChangedAt(t).Exec(ctx)
		case err != nil || !t.After(c.ChangedAt):
		case e.GetMethod() == MethodConnect:
			err = c.Update().SetState(connection.StateConnected).SetUpstreamIdentity(bound.String(e.GetUpstreamIdentity(), 256)).
				SetConnectedAt(t).SetChangedAt(t).Exec(ctx)
		case c.State == connection.StateConnected:
			err = c.Update().SetState(connection.StateDisconnected).SetChangedAt(t).Exec(ctx)
		}
		if err != nil && !ent.IsNotFound(err) {
			s.log.Warn("recording a connection", "upstream", up, "principal", who, "err", err)
		}
	}
}

// uuidArg is u as a statement argument. PostgreSQL's driver encodes a
// uuid.UUID through its driver.Valuer: the text form, after failing the
// binary one with a formatted error, 20 allocations and ~2 µs a value, three
// times an event. It encodes a pgtype.UUID directly. SQLite stores the text
// form, as ent does.
func (s *Service) uuidArg(u uuid.UUID) any {
	if s.drv.Dialect() == dialect.Postgres {
		return pgtype.UUID{Bytes: u, Valid: true}
	}
	return u
}

// eventsPerInsert is how many events one prepared INSERT stores. A batch is
// stored with one statement prepared for this many rows and, for the rest,
// one for as many: the SQL is parsed twice per batch however large it is
// (parsing a statement per batch took half of SQLite's time per event).
const eventsPerInsert = 100

// insertEvents stores rows (callevent.Columns of each event, flattened),
// ignoring IDs already stored.
func (s *Service) insertEvents(ctx context.Context, tx *stdsql.Tx, rows []any) error {
	cols := len(callevent.Columns)
	var stmt *stdsql.Stmt
	for len(rows) > 0 {
		n := min(eventsPerInsert, len(rows)/cols)
		if stmt == nil || n < eventsPerInsert {
			ins := sql.Dialect(s.drv.Dialect()).Insert(callevent.Table).Columns(callevent.Columns...)
			for i := 0; i < n; i++ {
				ins.Values(rows[i*cols : (i+1)*cols]...)
			}
			query, _ := ins.OnConflict(sql.ConflictColumns(callevent.FieldID), sql.DoNothing()).Query()
			if stmt != nil {
				stmt.Close()
			}
			var err error
			if stmt, err = tx.PrepareContext(ctx, query); err != nil {
				return err
			}
		}
		if _, err := stmt.ExecContext(ctx, rows[:n*cols]...); err != nil {
			stmt.Close()
			return err
		}
		rows = rows[n*cols:]
	}
	if stmt != nil {
		stmt.Close()
	}
	return nil
}

type rollupKey struct {
	minute             time.Time
	vs, upstream, tool string
}

type rollupAgg struct {
	calls, denies, errors, latencySum int64
	buckets                           histogram
}

func (a *rollupAgg) add(deny, failed bool, latency int64) {
	a.calls++
	if deny {
		a.denies++
	}
	if failed {
		a.errors++
	}
	a.latencySum += latency
	i := sort.Search(len(schematype.LatencyBucketsMicros), func(i int) bool { return latency <= schematype.LatencyBucketsMicros[i] })
	a.buckets[i]++
}

// histogram counts latencies per bucket of schematype.LatencyBucketsMicros,
// plus the unbounded last one.
type histogram [12]int64

// addRow adds a rollup row's bucket columns.
func (h *histogram) addRow(r *ent.CallRollup) {
	for j, v := range []int64{r.LatencyBucketA, r.LatencyBucketB, r.LatencyBucketC, r.LatencyBucketD, r.LatencyBucketE, r.LatencyBucketF,
		r.LatencyBucketG, r.LatencyBucketH, r.LatencyBucketI, r.LatencyBucketJ, r.LatencyBucketK, r.LatencyBucketL} {
		h[j] += v
	}
}

// bucketColumns are CallRollup's histogram columns, in bucket order.
var bucketColumns = []string{
	callrollup.FieldLatencyBucketA, callrollup.FieldLatencyBucketB, callrollup.FieldLatencyBucketC, callrollup.FieldLatencyBucketD,
	callrollup.FieldLatencyBucketE, callrollup.FieldLatencyBucketF, callrollup.FieldLatencyBucketG, callrollup.FieldLatencyBucketH,
	callrollup.FieldLatencyBucketI, callrollup.FieldLatencyBucketJ, callrollup.FieldLatencyBucketK, callrollup.FieldLatencyBucketL,
}

// rollUp adds a batch's per-minute aggregates to the rollup rows.
func (s *Service) rollUp(ctx context.Context, db *ent.Client, agent *ent.Agent, roll map[rollupKey]*rollupAgg) error {
	for k, a := range roll {
		c := db.CallRollup.Create().SetTenantID(agent.TenantID).SetGatewayID(agent.GatewayID).SetMinute(k.minute).
			SetVirtualServer(k.vs).SetUpstream(k.upstream).SetTool(k.tool).SetCalls(a.calls).SetDenies(a.denies).
			SetErrors(a.errors).SetLatencySumMicros(a.latencySum)
		for i, col := range bucketColumns {
			if err := c.Mutation().SetField(col, a.buckets[i]); err != nil {
				return err
			}
		}
		err := c.OnConflict(
			sql.ConflictColumns(callrollup.FieldGatewayID, callrollup.FieldMinute, callrollup.FieldVirtualServer, callrollup.FieldUpstream, callrollup.FieldTool),
			sql.ResolveWith(func(u *sql.UpdateSet) {
				u.Add(callrollup.FieldCalls, a.calls).Add(callrollup.FieldDenies, a.denies).Add(callrollup.FieldErrors, a.errors).
					Add(callrollup.FieldLatencySumMicros, a.latencySum)
				for i, col := range bucketColumns {
					u.Add(col, a.buckets[i])
				}
			}),
		).Exec(ctx)
		if err != nil {
			return err
		}
	}
	return nil
}

// Point is one minute of a tenant's traffic.
type Point struct {
	Minute                time.Time
	Calls, Denies, Errors int64
	P95Micros             int64 // upper bound of the bucket holding the 95th percentile
	latency               histogram
}

// Series returns per-minute totals of the tenant's calls from since to until,
// oldest first, with empty minutes filled in.
func (s *Service) Series(ctx context.Context, tenantID uuid.UUID, since, until time.Time) ([]Point, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	since, until = since.UTC().Truncate(time.Minute), until.UTC().Truncate(time.Minute)
	if until.Sub(since) > 7*24*time.Hour || !until.After(since) {
		return nil, authz.Invalid("the window must be between one minute and seven days")
	}
	rows, err := s.db.CallRollup.Query().Where(callrollup.TenantID(tenantID), callrollup.MinuteGTE(since), callrollup.MinuteLTE(until)).All(ctx)
	if err != nil {
		return nil, err
	}
	n := int(until.Sub(since)/time.Minute) + 1
	out := make([]Point, n)
	for i := range out {
		out[i].Minute = since.Add(time.Duration(i) * time.Minute)
	}
	for _, r := range rows {
		i := int(r.Minute.UTC().Sub(since) / time.Minute)
		if i < 0 || i >= n {
			continue
		}
		p := &out[i]
		p.Calls += r.Calls
		p.Denies += r.Denies
		p.Errors += r.Errors
		p.latency.addRow(r)
	}
	for i := range out {
		out[i].P95Micros = out[i].latency.p95(out[i].Calls)
	}
	return out, nil
}

// p95 is the upper bound of the bucket holding the 95th percentile of total.
func (h *histogram) p95(total int64) int64 {
	if total == 0 {
		return 0
	}
	need := (total*95 + 99) / 100
	var seen int64
	for i, c := range h {
		seen += c
		if seen >= need {
			if i < len(schematype.LatencyBucketsMicros) {
				return schematype.LatencyBucketsMicros[i]
			}
			return schematype.LatencyBucketsMicros[len(schematype.LatencyBucketsMicros)-1] * 2
		}
	}
	return 0
}

// Filter narrows the event explorer; empty fields match everything.
type Filter struct {
	Decision, Tool, Principal, Upstream string
	Limit                               int
	// Before pages: only events older than this one (time, then id).
	Before *Cursor
}

// Cursor is the last event of a page, where the next one starts.
type Cursor struct {
	Time time.Time
	ID   string
}

// Events lists the tenant's newest call events matching f.
func (s *Service) Events(ctx context.Context, tenantID uuid.UUID, f Filter) ([]*ent.CallEvent, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 200
	}
	q := s.db.CallEvent.Query().Where(callevent.TenantID(tenantID))
	switch f.Decision {
	case "":
	case "allow", "deny":
		q.Where(callevent.DecisionEQ(callevent.Decision(f.Decision)))
	default:
		return nil, authz.Invalid("decision must be allow or deny")
	}
	if f.Tool != "" {
		q.Where(callevent.ToolContains(bound.String(f.Tool, 128)))
	}
	if f.Principal != "" {
		q.Where(callevent.Principal(bound.String(f.Principal, 256)))
	}
	if f.Upstream != "" {
		q.Where(callevent.Upstream(bound.String(f.Upstream, 48)))
	}
	if c := f.Before; c != nil {
		q.Where(callevent.Or(callevent.TimeLT(c.Time), callevent.And(callevent.TimeEQ(c.Time), callevent.IDLT(c.ID))))
	}
	return q.Order(callevent.ByTime(sql.OrderDesc()), callevent.ByID(sql.OrderDesc())).Limit(f.Limit).All(ctx)
}

// Expire deletes raw call events older than keep and rollups older than keepRollups.
func (s *Service) Expire(ctx context.Context, keep, keepRollups time.Duration) (int, error) {
	ctx = viewer.System(ctx) // retention is a system job across tenants
	n, err := s.db.CallEvent.Delete().Where(callevent.TimeLT(time.Now().Add(-keep))).Exec(ctx)
	if err != nil {
		return 0, err
	}
	if _, err := s.db.CallRollup.Delete().Where(callrollup.MinuteLT(time.Now().Add(-keepRollups))).Exec(ctx); err != nil {
		return n, err
	}
	return n, nil
}

// Breakdown is one virtual server × upstream × tool over a window.
type Breakdown struct {
	GatewayID                     uuid.UUID
	VirtualServer, Upstream, Tool string
	Calls, Denies, Errors         int64
	P95Micros                     int64
	latency                       histogram
}

// Top returns the tools with the most calls in the window, most first.
func (s *Service) Top(ctx context.Context, tenantID uuid.UUID, since, until time.Time, limit int) ([]Breakdown, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	rows, err := s.db.CallRollup.Query().Where(callrollup.TenantID(tenantID), callrollup.MinuteGTE(since.UTC().Truncate(time.Minute)),
		callrollup.MinuteLTE(until.UTC())).Limit(100000).All(ctx)
	if err != nil {
		return nil, err
	}
	type key struct {
		gw           uuid.UUID
		vs, up, tool string
	}
	agg := map[key]*Breakdown{}
	for _, r := range rows {
		k := key{r.GatewayID, r.VirtualServer, r.Upstream, r.Tool}
		b := agg[k]
		if b == nil {
			b = &Breakdown{GatewayID: r.GatewayID, VirtualServer: r.VirtualServer, Upstream: r.Upstream, Tool: r.Tool}
			agg[k] = b
		}
		b.Calls += r.Calls
		b.Denies += r.Denies
		b.Errors += r.Errors
		b.latency.addRow(r)
	}
	out := make([]Breakdown, 0, len(agg))
	for _, b := range agg {
		b.P95Micros = b.latency.p95(b.Calls)
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Calls != out[j].Calls {
			return out[i].Calls > out[j].Calls
		}
		return out[i].Upstream+out[i].Tool < out[j].Upstream+out[j].Tool
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
