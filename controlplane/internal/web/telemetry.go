package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/ui"
)

const chartW, chartH = 600, 140

// trafficChart stacks allowed and denied calls per minute.
func trafficChart(points []telemetry.Point) ui.Chart {
	c := ui.Chart{Title: "Calls per minute, last hour", Unit: "calls", Width: chartW, Height: chartH,
		Legend: []ui.LegendItem{{Class: "allow", Label: "allowed"}, {Class: "deny", Label: "refused"}}}
	var top int64
	for _, p := range points {
		top = max(top, p.Calls)
	}
	c.Empty, c.Max = top == 0, fmt.Sprint(top)
	if c.Empty {
		return c
	}
	w := chartW / max(len(points), 1)
	c.Ticks = timeAxis(points, w)
	for i, p := range points {
		allowed := p.Calls - p.Denies
		ha, hd := int(allowed*(chartH-4)/top), int(p.Denies*(chartH-4)/top)
		x := i * w
		tip := fmt.Sprintf("%s: %d calls, %d refused, %d errors", p.Minute.Format("15:04"), p.Calls, p.Denies, p.Errors)
		if ha > 0 {
			c.Bars = append(c.Bars, ui.Bar{X: x, Y: chartH - 1 - ha, W: max(w-1, 1), H: ha, Class: "allow", Title: tip})
		}
		if hd > 0 {
			c.Bars = append(c.Bars, ui.Bar{X: x, Y: chartH - 1 - ha - hd, W: max(w-1, 1), H: hd, Class: "deny", Title: tip})
		}
	}
	return c
}

// timeAxis marks five evenly spaced minutes, the oldest and the newest
// included, so that the labels can sit evenly spaced under the chart; the
// newest carries the time zone.
func timeAxis(points []telemetry.Point, barW int) []ui.Tick {
	n := len(points)
	if n < 2 {
		return nil
	}
	ticks := make([]ui.Tick, 0, 5)
	for k := range 5 {
		i := k * (n - 1) / 4
		label := points[i].Minute.Format("15:04")
		if k == 4 {
			label = points[i].Minute.Format("15:04 MST")
		}
		ticks = append(ticks, ui.Tick{X: i*barW + barW/2, Label: label})
	}
	return ticks
}

// latencyChart shows the p95 latency per minute.
func latencyChart(points []telemetry.Point) ui.Chart {
	c := ui.Chart{Title: "p95 latency per minute, last hour", Unit: "latency", Width: chartW, Height: chartH,
		Legend: []ui.LegendItem{{Class: "latency", Label: "p95 (upper bucket bound)"}}}
	var top int64
	for _, p := range points {
		top = max(top, p.P95Micros)
	}
	c.Empty, c.Max = top == 0, fmt.Sprintf("%.1f ms", float64(top)/1000)
	if c.Empty {
		return c
	}
	w := chartW / max(len(points), 1)
	c.Ticks = timeAxis(points, w)
	for i, p := range points {
		h := int(p.P95Micros * (chartH - 4) / top)
		if h > 0 {
			c.Bars = append(c.Bars, ui.Bar{X: i * w, Y: chartH - 1 - h, W: max(w-1, 1), H: h, Class: "latency",
				Title: fmt.Sprintf("%s: p95 ≤ %.1f ms", p.Minute.Format("15:04"), float64(p.P95Micros)/1000)})
		}
	}
	return c
}

func (s *Server) lastHour(r *http.Request, rq *request) ([]telemetry.Point, error) {
	now := time.Now()
	return s.cfg.Telemetry.Series(r.Context(), rq.viewer.TenantID, now.Add(-59*time.Minute), now)
}

var ruleRE = regexp.MustCompile(`access rule ([0-9a-f-]{36})`)

// reasonLink points a refusal at what caused it.
func reasonLink(reason string) string {
	switch {
	case ruleRE.MatchString(reason):
		return "/access#rule-" + ruleRE.FindStringSubmatch(reason)[1]
	case strings.HasPrefix(reason, "no access rule"):
		return "/access"
	case strings.Contains(reason, "data-flow rule"):
		return "/tools"
	case strings.Contains(reason, "quarantined"), strings.Contains(reason, "not approved"):
		return "/changes?status=pending"
	case strings.HasPrefix(reason, "rate limit"):
		return "/access"
	case strings.HasPrefix(reason, "result"):
		return "/settings"
	}
	return ""
}

// pageCursor reads a list page's "before" parameter, time_id: the list
// continues after that row, newest first. ok is false on the first page.
func pageCursor(q url.Values) (t time.Time, id string, ok bool, err error) {
	b := q.Get("before")
	if b == "" {
		return time.Time{}, "", false, nil
	}
	ts, id, found := strings.Cut(b, "_")
	t, err = time.Parse(time.RFC3339Nano, ts)
	if !found || err != nil || id == "" {
		return time.Time{}, "", false, errors.New("not a page cursor")
	}
	return t, id, true, nil
}

// olderPage links the page after the row at (t, id), keeping the filters.
func olderPage(path string, q url.Values, t time.Time, id string) string {
	next := url.Values{}
	for k, v := range q {
		next[k] = v
	}
	next.Set("before", t.UTC().Format(time.RFC3339Nano)+"_"+id)
	return path + "?" + next.Encode()
}

// eventsPerPage is the telemetry explorer's page.
const eventsPerPage = 50

func (s *Server) telemetryPage(w http.ResponseWriter, r *http.Request, rq *request) {
	q := r.URL.Query()
	f := telemetry.Filter{Decision: q.Get("decision"), Tool: q.Get("tool"), Principal: q.Get("principal"), Upstream: q.Get("upstream"), Limit: eventsPerPage + 1}
	before, id, ok, err := pageCursor(q)
	if err != nil || len(id) > 64 {
		s.fail(w, r, rq, authz.Invalid("before: not a page cursor"))
		return
	}
	if ok {
		f.Before = &telemetry.Cursor{Time: before, ID: id}
	}
	evs, err := s.cfg.Telemetry.Events(r.Context(), rq.viewer.TenantID, f)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	points, err := s.lastHour(r, rq)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Telemetry{Page: s.page(rq, "Telemetry", "telemetry"), Decision: f.Decision, Tool: f.Tool, Principal: f.Principal,
		Upstream: f.Upstream, Traffic: trafficChart(points)}
	top, err := s.cfg.Telemetry.Top(r.Context(), rq.viewer.TenantID, time.Now().Add(-time.Hour), time.Now(), 50)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	if len(top) > 0 {
		gws, err := s.cfg.Tenants.Gateways(r.Context(), rq.viewer.TenantID)
		if err != nil {
			s.fail(w, r, rq, err)
			return
		}
		names := map[string]string{}
		for _, g := range gws {
			names[g.ID.String()] = g.Name
		}
		for _, t := range top {
			vm.Top = append(vm.Top, ui.ToolTraffic{Gateway: names[t.GatewayID.String()], VirtualServer: t.VirtualServer, Upstream: t.Upstream,
				Tool: t.Tool, Href: "/telemetry?tool=" + url.QueryEscape(t.Tool), Calls: t.Calls, Denies: t.Denies, Errors: t.Errors, P95Ms: fmt.Sprintf("%.1f", float64(t.P95Micros)/1000)})
		}
	}
	if len(evs) > eventsPerPage {
		evs = evs[:eventsPerPage]
		last := evs[len(evs)-1]
		vm.Older = olderPage("/telemetry", q, last.Time, last.ID)
	}
	vm.Newest = f.Before != nil
	for _, e := range evs {
		vm.Events = append(vm.Events, ui.CallEvent{Time: e.Time, Principal: e.Principal, VirtualServer: e.VirtualServer, Upstream: e.Upstream,
			Tool: e.Tool, Method: e.Method, Error: e.Error, Decision: e.Decision.String(), Reason: e.Reason, ReasonHref: reasonLink(e.Reason),
			LatencyMs: fmt.Sprintf("%.1f", float64(e.LatencyMicros)/1000), UpstreamIdentity: e.UpstreamIdentity})
	}
	s.render(w, r, http.StatusOK, ui.TelemetryPage(vm))
}
