package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/access"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/demoupstream"
	"github.com/portcullis-mcp/portcullis/ent/callevent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// benchClients is the number of concurrent MCP client sessions at saturation;
// every path is also measured with one (unloaded latency).
const benchClients = 16

// Protocol revisions the benchmark clients speak: sessions (what most clients
// speak today) and session-less requests.
const (
	sessionProtocol   = "2025-11-25"
	statelessProtocol = "2026-07-28"
	// statelessSuffix names the paths that send statelessProtocol's session-less requests.
	statelessSuffix = "-" + statelessProtocol
)

// benchRounds is how many times every path is measured, the paths taking
// turns, so that a slow spell of this shared box falls on all of them; the
// table shows medians of calls/s and CPU, and percentiles of every call of
// all rounds (a round's own p99 is its hundred slowest calls, which one
// slow spell decides).
const benchRounds = 5

// BenchmarkToolsCall measures tools/call on the same upstream, in the same
// run: directly, through a plain httputil.ReverseProxy, and through the
// gateway (pin check, telemetry on), in alternating rounds. It reports
// calls/s, p50 and p99 and CPU per call.
func BenchmarkToolsCall(b *testing.B) {
	ctx := viewer.System(context.Background())
	// An upstream of both eras, so that session-less requests reach it
	// session-less through the reverse proxy as through the gateway.
	up := httptest.NewServer(demoupstream.BothErasHandler())
	b.Cleanup(func() { up.CloseClientConnections(); up.Close() })
	target, _ := url.Parse(up.URL)
	rp := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	b.Cleanup(func() { rp.CloseClientConnections(); rp.Close() })

	work := b.TempDir()
	rpp, rpPid := startReverseProxy(b, work, up.URL)
	// The control plane runs elsewhere in production. Here it shares the
	// box, in a process of its own at the lowest priority, on the embedded
	// SQLite (with cp, a replica in this process for setup): its telemetry
	// ingest, which only the gateway paths cause, takes what the proxies,
	// the clients and the upstream leave of the cores, rather than a core
	// of theirs for each batch. Its CPU per call is reported, and every
	// call's event must be stored by the end.
	cp, cpProc, agentAddr := startControlPlaneBinary(b, "sqlite://"+filepath.Join(work, "cp.db"), testRedisURL(b), 19)
	cpPid = cpProc.Process.Pid
	b.Cleanup(func() { cpPid = 0 })
	ten, err := cp.Tenants.CreateTenant(ctx, "Bench", "bench", uuid.Nil)
	if err != nil {
		b.Fatal(err)
	}
	// gateway runs a gateway (and a replica of it) with the demo upstream as
	// upstreamName; it returns its ID and the URLs and processes of both.
	gateway := func(name, upstreamName string, replica bool) (uuid.UUID, []string, []int) {
		gw, err := cp.Tenants.CreateGateway(ctx, ten.ID, name)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cp.Tenants.CreateUpstream(ctx, ten.ID, gw.ID, tenantSpec(upstreamName, "streamable_http", up.URL+"/mcp", "")); err != nil {
			b.Fatal(err)
		}
		if _, err := cp.Tenants.CreateVirtualServer(ctx, ten.ID, gw.ID, "bench", []string{upstreamName}); err != nil {
			b.Fatal(err)
		}
		var urls []string
		var pids []int
		for i, env := range [][]string{nil, {"PORTCULLIS_REDIS_URL=" + testRedisURL(b)}} {
			if i == 1 && !replica {
				break
			}
			token, err := cp.EnrollmentToken(ctx, ten.ID, gw.ID, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			addr := freeAddr(b)
			g := startGateway(b, agentAddr, filepath.Join(work, fmt.Sprintf("%s-%d", name, i)), addr, append(env, "PORTCULLIS_ENROLL_TOKEN="+token)...)
			b.Cleanup(g.stop)
			if i == 0 {
				pinWhenDiscovered(b, cp, ten.ID, upstreamName, "echo")
			}
			urls, pids = append(urls, "http://"+addr+"/mcp/bench"), append(pids, g.cmd.Process.Pid)
			eventually(b, "echo exposed", func() error {
				s, err := mcpConnect(ctx, urls[i])
				if err != nil {
					return err
				}
				defer s.Close()
				res, err := s.ListTools(ctx, nil)
				if err != nil || len(res.Tools) != 1 {
					return fmt.Errorf("tools %v err %v", res, err)
				}
				return nil
			})
		}
		return gw.ID, urls, pids
	}
	// The second replica shares MCP sessions through Redis: every request
	// looks its session up there (one round trip), as replicas behind a
	// balancer do.
	_, plain, plainPids := gateway("bench", "demo", true)

	// A gateway with every check on: a client key required, access rules
	// with a CEL condition, rate limits, data-flow labels (and, as above,
	// pins and result scanning).
	checkedID, checked, checkedPids := gateway("bench-checked", "checked", false)
	key, _, err := cp.Access.CreateClientKey(ctx, ten.ID, "bench", []string{"builders"})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range []access.Rule{
		{Principal: "*", VirtualServer: "*", ToolPattern: "*__shell*", Effect: "deny"},
		{Principal: "group:builders", VirtualServer: "bench", ToolPattern: "checked__*", Effect: "allow", Condition: "size(string(args.message)) < 1000"},
	} {
		if _, err := cp.Access.CreateRule(ctx, ten.ID, checkedID, r); err != nil {
			b.Fatal(err)
		}
	}
	if err := cp.Access.SetClientAuth(ctx, ten.ID, checkedID, true); err != nil {
		b.Fatal(err)
	}
	if err := cp.Access.SetRateLimits(ctx, ten.ID, checkedID, 1000000, 1000000); err != nil {
		b.Fatal(err)
	}
	if err := cp.Inventory.SetLabels(ctx, ten.ID, toolOf(b, cp.DB, "checked", "echo").ID, []string{"untrusted_content"}); err != nil {
		b.Fatal(err)
	}
	waitEnforced(b, cp, ten.ID, checkedID, strings.TrimSuffix(strings.TrimPrefix(checked[0], "http://"), "/mcp/bench"), "every check applied")

	// pid is the proxy's process (0: none, or in this one), whose CPU per
	// call is reported: on this shared box the control plane's telemetry
	// ingest and the clients also take the cores, so calls/s alone mixes
	// their cost into the proxy's.
	paths := []benchPath{
		{"direct", up.URL + "/mcp", "echo", "", sessionProtocol, 0},
		{"reverse-proxy-in-process", rp.URL + "/mcp", "echo", "", sessionProtocol, 0},
		{"reverse-proxy", rpp + "/mcp", "echo", "", sessionProtocol, rpPid},
		// The same session-less requests through the reverse proxy: the
		// floor of gateway-2026-07-28, whose upstream serves each request
		// without a session (which costs it more than a session's does).
		{"reverse-proxy" + statelessSuffix, rpp + "/mcp", "echo", "", statelessProtocol, rpPid},
		{"gateway", plain[0], "demo__echo", "", sessionProtocol, plainPids[0]},
		{"gateway" + statelessSuffix, plain[0], "demo__echo", "", statelessProtocol, plainPids[0]},
		{"gateway-redis-sessions", plain[1], "demo__echo", "", sessionProtocol, plainPids[1]},
		{"gateway-all-checks", checked[0], "checked__echo", key, sessionProtocol, checkedPids[0]},
	}
	// Measured in this order, at one concurrency after the other; the table
	// keeps the order above. Each gateway path takes turns with its floor
	// (interleaveCalls calls each), so that a slow spell of this shared box
	// (they last seconds to tens of seconds) weighs on both alike; its
	// ratios are to the floor measured in those turns.
	order := []string{"reverse-proxy", "gateway-all-checks", "gateway", "gateway-redis-sessions",
		"reverse-proxy" + statelessSuffix, "gateway" + statelessSuffix, "direct", "reverse-proxy-in-process"}
	pathNamed := func(name string) benchPath {
		return paths[slices.IndexFunc(paths, func(p benchPath) bool { return p.name == name })]
	}
	floorOf := func(name string) string {
		switch {
		case !strings.HasPrefix(name, "gateway"):
			return ""
		case strings.HasSuffix(name, statelessSuffix):
			return "reverse-proxy" + statelessSuffix
		}
		return "reverse-proxy"
	}
	for _, tc := range paths {
		results.list(tc.name)
	}
	var throughGateways int // calls, each of which a gateway records
	// stored waits until the control plane has stored the events of this
	// many calls through gateways, so that no path is measured while it
	// still ingests the path before, nor a floor's turn while it ingests
	// the gateway path's turn before.
	stored := func(calls int) {
		eventually(b, "the control plane storing every call's event", func() error {
			n, err := cp.DB.CallEvent.Query().Where(callevent.Method("tools/call")).Count(ctx)
			if err != nil || n != calls {
				return fmt.Errorf("%d stored of %d calls through gateways (%v)", n, calls, err)
			}
			return nil
		})
	}
	for round := range benchRounds {
		for _, c := range []int{1, benchClients} {
			for _, name := range order {
				tc := pathNamed(name)
				stored(throughGateways)
				b.Run(fmt.Sprintf("%s/c=%d/round=%d", tc.name, c, round+1), func(b *testing.B) {
					floor := floorOf(tc.name)
					if floor == "" {
						results.add(tc.name, c, round, loadPaths(b, c, nil, tc)[0])
						return
					}
					res := loadPaths(b, c, func(made int) { stored(throughGateways + made) }, pathNamed(floor), tc)
					b.ReportMetric(res[0].callsPerSec, "floor-calls/s")
					b.ReportMetric(res[0].p99, "floor-p99-µs")
					results.addFloor(tc.name, c, round, res[0])
					results.add(tc.name, c, round, res[1])
					throughGateways += b.N
				})
			}
		}
	}
	stored(throughGateways)
	// Printed, not logged: the table is what `make bench` is read for.
	fmt.Printf("\nBenchmarkToolsCall, %d alternating rounds (calls/s and CPU: medians; p50 and p99: of every call; ×: the median of the rounds' ratios), ratios to the reverse proxy in its own process (same run;"+
		" a gateway path to it as measured in turns of %d calls with the path; a path ending in %s to the reverse proxy with the same session-less requests):\n%s",
		benchRounds, interleaveCalls, statelessSuffix, results.table("reverse-proxy", 1, benchClients))
}

// benchPath is a way to the upstream BenchmarkToolsCall measures; pid is
// the proxy's process (0: none, or in this one), whose CPU per call is
// reported.
type benchPath struct {
	name, url, tool, bearer, version string
	pid                              int
}

// loadResult is one path's measurement at one concurrency; cpu is the proxy
// process's CPU time per call in µs (0: not measured), rest this process's
// (the clients and the upstream), which shares the cores with the proxy,
// and cp the control plane's (its telemetry ingest).
type loadResult struct {
	callsPerSec, p50, p99, cpu, rest, cp float64
	lat                                  []time.Duration // every call's, sorted
}

// cpuTicks is a process's user and system CPU time in clock ticks (Linux
// /proc, USER_HZ 100), or -1 when it cannot be read.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may hold spaces: fields count from after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + s
}

// contextSwitches is how many times a process's threads were switched off
// a CPU (voluntarily or not), or -1 when it cannot be read.
func contextSwitches(pid int) int64 {
	if pid <= 0 {
		return -1
	}
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(files) == 0 {
		return -1
	}
	var n int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that has just ended
		}
		for _, l := range strings.Split(string(b), "\n") {
			if name, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(name, "ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// benchResults collects what load measured, to report every path as a ratio
// to the reverse proxy of the same run.
type benchResults struct {
	names []string
	m     map[string]map[int]loadResult // by path/concurrency, then round
}

var results = &benchResults{m: map[string]map[int]loadResult{}}

// cpPid is the control plane's process in BenchmarkToolsCall (0: none).
var cpPid int

// list puts name in the table, after those listed before it.
func (r *benchResults) list(name string) {
	if !slices.Contains(r.names, name) {
		r.names = append(r.names, name)
	}
}

func (r *benchResults) add(name string, c, round int, res loadResult) {
	r.list(name)
	r.put(name, c, round, res)
}

// addFloor keeps what name's floor measured in the turns it took with name.
func (r *benchResults) addFloor(name string, c, round int, res loadResult) {
	r.put(floorKey(name), c, round, res)
}

func (r *benchResults) put(name string, c, round int, res loadResult) {
	k := fmt.Sprintf("%s/%d", name, c)
	if r.m[k] == nil {
		r.m[k] = map[int]loadResult{}
	}
	r.m[k][round] = res // the last run of a round counts (b.N grows)
}

// floorKey names the floor's results measured in turns with name's.
func floorKey(name string) string { return name + " (its floor)" }

// median is each measure's median over the rounds of name at c, but p50 and
// p99, which are of the calls of all rounds together.
func (r *benchResults) median(name string, c int) loadResult {
	rounds := r.m[fmt.Sprintf("%s/%d", name, c)]
	var all []time.Duration
	for _, res := range rounds {
		all = append(all, res.lat...)
	}
	slices.Sort(all)
	med := func(f func(loadResult) float64) float64 {
		var v []float64
		for _, res := range rounds {
			v = append(v, f(res))
		}
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return loadResult{
		callsPerSec: med(func(l loadResult) float64 { return l.callsPerSec }),
		p50:         percentile(all, 0.50),
		p99:         percentile(all, 0.99),
		cpu:         med(func(l loadResult) float64 { return l.cpu }),
		rest:        med(func(l loadResult) float64 { return l.rest }),
		cp:          med(func(l loadResult) float64 { return l.cp }),
	}
}

// ratio is the median over the rounds of name's measure f at c over
// floor's in the same round: the two run in turns or seconds apart, so a
// slow spell of the box weighs on both, where in medians (or the p99 of all
// rounds' calls together) taken apart it weighs on whichever path it fell
// on.
func (r *benchResults) ratio(name, floor string, c int, f func(loadResult) float64) float64 {
	rounds, base := r.m[fmt.Sprintf("%s/%d", name, c)], r.m[fmt.Sprintf("%s/%d", floor, c)]
	var v []float64
	for round, res := range rounds {
		if b, ok := base[round]; ok && f(b) > 0 {
			v = append(v, f(res)/f(b))
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func (r *benchResults) table(floor string, cs ...int) string {
	cs = slices.DeleteFunc(cs, func(c int) bool { // not measured (-bench chose another)
		return !slices.ContainsFunc(r.names, func(name string) bool { return len(r.m[fmt.Sprintf("%s/%d", name, c)]) > 0 })
	})
	var sb strings.Builder
	sb.WriteString("path")
	for _, c := range cs {
		fmt.Fprintf(&sb, " | c=%d calls/s (× %s, median of rounds) | c=%d p50 µs (+ over it) | c=%d p99 µs (×, median of rounds) | c=%d proxy CPU µs/call | c=%d rest CPU µs/call | c=%d control-plane CPU µs/call", c, floor, c, c, c, c, c)
	}
	sb.WriteString("\n")
	for _, name := range r.names {
		if !slices.ContainsFunc(cs, func(c int) bool { return len(r.m[fmt.Sprintf("%s/%d", name, c)]) > 0 }) {
			continue // not measured (-bench chose other paths)
		}
		sb.WriteString(name)
		for _, c := range cs {
			floor := floor
			switch {
			case len(r.m[fmt.Sprintf("%s/%d", floorKey(name), c)]) > 0:
				floor = floorKey(name) // measured in turns with name
			case strings.HasSuffix(name, statelessSuffix) && slices.Contains(r.names, floor+statelessSuffix):
				floor += statelessSuffix
			}
			res, base := r.median(name, c), r.median(floor, c)
			ratio := r.ratio(name, floor, c, func(l loadResult) float64 { return l.callsPerSec })
			cpu := "-"
			if res.cpu > 0 {
				cpu = fmt.Sprintf("%.0f", res.cpu)
			}
			fmt.Fprintf(&sb, " | %.0f (%.2f×) | %.0f (%+.0f) | %.0f (%.2f×) | %s | %.0f | %.0f", res.callsPerSec, ratio, res.p50, res.p50-base.p50, res.p99, r.ratio(name, floor, c, func(l loadResult) float64 { return l.p99 }), cpu, res.rest, res.cp)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// startReverseProxy builds and runs testdata/reverseproxy, the standard
// library's reverse proxy in a process of its own as the gateway runs: the
// floor the gateway is measured against. It returns its base URL.
func startReverseProxy(b *testing.B, work, target string) (string, int) {
	b.Helper()
	bin := filepath.Join(work, "reverseproxy")
	build := exec.Command("go", "build", "-o", bin, "./testdata/reverseproxy")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the reverse proxy: %v\n%s", err, out)
	}
	addr := freeAddr(b)
	cmd := exec.Command(bin, "--listen", addr, "--target", target)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitListening(b, addr, "the reverse proxy")
	return "http://" + addr, cmd.Process.Pid
}

func mcpConnect(ctx context.Context, endpoint string) (*mcp.ClientSession, error) {
	return mcpConnectAs(ctx, endpoint, "", sessionProtocol)
}

// bearerTransport adds a client credential to every request.
type bearerTransport struct {
	base  http.RoundTripper
	token string
}

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(r)
}

// mcpConnectAs connects a go-sdk client with a bearer credential ("" for
// none) in a protocol revision.
func mcpConnectAs(ctx context.Context, endpoint, bearer, version string) (*mcp.ClientSession, error) {
	var tr http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: 4, DialContext: (&net.Dialer{}).DialContext}
	if bearer != "" {
		tr = bearerTransport{base: tr, token: bearer}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	return c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: tr}, DisableStandaloneSSE: true},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
}

// interleaveCalls is how many calls a path makes at a time when paths are
// measured together: they take turns (a fraction of a second each), so that
// a slow spell of this shared box, seconds long, weighs on each alike.
const interleaveCalls = 1000

// pathLoad is one path's sessions and what its turns measured; the CPU
// figures are sums over its turns, -1 when they cannot be read.
type pathLoad struct {
	p                   benchPath
	sessions            []*mcp.ClientSession
	lat                 [][]time.Duration
	elapsed             time.Duration
	cpu, rest, switches int64
	failed              atomic.Int64
}

// turn makes n calls on pl's sessions, all of them calling at once.
func (pl *pathLoad) turn(ctx context.Context, n int) {
	cpu0, rest0, sw0 := cpuTicks(pl.p.pid), cpuTicks(os.Getpid()), contextSwitches(pl.p.pid)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i, s := range pl.sessions {
		wg.Go(func() {
			params := &mcp.CallToolParams{Name: pl.p.tool, Arguments: map[string]any{"message": "benchmark payload"}}
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				res, err := s.CallTool(ctx, params)
				pl.lat[i] = append(pl.lat[i], time.Since(t0))
				if err != nil || res.IsError {
					pl.failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	pl.elapsed += time.Since(start)
	add := func(sum *int64, before, after int64) {
		if *sum < 0 || before < 0 || after < 0 {
			*sum = -1
			return
		}
		*sum += after - before
	}
	add(&pl.cpu, cpu0, cpuTicks(pl.p.pid))
	add(&pl.rest, rest0, cpuTicks(os.Getpid()))
	add(&pl.switches, sw0, contextSwitches(pl.p.pid))
}

// loadPaths makes b.N calls on each path, clients at once, and returns what
// each measured. Several paths take turns of interleaveCalls calls; settle
// (if not nil) runs before each turn and after the last, told how many
// calls the last path has made so far. The control plane's CPU is counted
// from the first turn to the end of the last settle, and reported with the
// last path, whose calls it records. The last path's figures are b's
// metrics.
func loadPaths(b *testing.B, clients int, settle func(made int), paths ...benchPath) []loadResult {
	ctx := viewer.System(context.Background())
	loads := make([]*pathLoad, len(paths))
	for k, p := range paths {
		pl := &pathLoad{p: p, lat: make([][]time.Duration, clients)}
		for range clients {
			s, err := mcpConnectAs(ctx, p.url, p.bearer, p.version)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			pl.sessions = append(pl.sessions, s)
		}
		loads[k] = pl
	}
	step := b.N
	if len(loads) > 1 {
		step = interleaveCalls
	}
	b.ResetTimer()
	cp0 := cpuTicks(cpPid)
	for done := 0; done < b.N; done += step {
		for _, pl := range loads {
			if settle != nil {
				settle(done)
			}
			pl.turn(ctx, min(step, b.N-done))
		}
	}
	if settle != nil {
		settle(b.N)
	}
	cp := cpuTicks(cpPid)
	b.StopTimer()
	perCall := func(ticks int64) float64 { return float64(ticks) * 1e4 / float64(b.N) } // a tick is 10 ms
	out := make([]loadResult, len(loads))
	for k, pl := range loads {
		if n := pl.failed.Load(); n > 0 {
			b.Fatalf("%s: %d of %d calls failed", pl.p.name, n, b.N)
		}
		all := slices.Concat(pl.lat...)
		slices.Sort(all)
		res := loadResult{callsPerSec: float64(b.N) / pl.elapsed.Seconds(), p50: percentile(all, 0.50), p99: percentile(all, 0.99), lat: all}
		if pl.cpu >= 0 {
			res.cpu = perCall(pl.cpu)
		}
		if pl.rest >= 0 {
			res.rest = perCall(pl.rest)
		}
		out[k] = res
	}
	last, res := loads[len(loads)-1], &out[len(out)-1]
	if cp0 >= 0 && cp >= 0 {
		res.cp = perCall(cp - cp0)
		b.ReportMetric(res.cp, "cp-cpu-µs/call")
	}
	if last.cpu >= 0 {
		b.ReportMetric(res.cpu, "proxy-cpu-µs/call")
	}
	if last.switches >= 0 {
		// On this virtual machine most of a proxy's CPU per call at c=1
		// goes to putting its threads to sleep and waking them.
		b.ReportMetric(float64(last.switches)/float64(b.N), "proxy-switches/call")
	}
	if last.rest >= 0 {
		b.ReportMetric(res.rest, "rest-cpu-µs/call")
	}
	b.ReportMetric(res.callsPerSec, "calls/s")
	b.ReportMetric(res.p50, "p50-µs")
	b.ReportMetric(res.p99, "p99-µs")
	return out
}

// percentile is the p quantile of sorted latencies, in µs (0 for none).
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(float64(len(sorted)-1)*p)].Microseconds())
}
