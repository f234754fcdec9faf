package web

import (
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
)

func TestTimeAxis(t *testing.T) {
	start := time.Date(2026, 12, 3, 9, 50, 0, 0, time.UTC)
	points := make([]telemetry.Point, 60)
	for i := range points {
		points[i].Minute = start.Add(time.Duration(i) * time.Minute)
		points[i].Calls = 1
	}
	c := trafficChart(points)
	var labels []string
	for _, tk := range c.Ticks {
		labels = append(labels, tk.Label)
	}
	want := []string{"09:50", "10:04", "10:19", "10:34", "10:49 UTC"}
	if len(labels) != len(want) {
		t.Fatalf("labels %v, want %v", labels, want)
	}
	for i := range want {
		if labels[i] != want[i] {
			t.Fatalf("labels %v, want %v", labels, want)
		}
	}
	if first, last := c.Ticks[0].X, c.Ticks[4].X; first != 5 || last != 595 {
		t.Fatalf("ticks at x=%d and x=%d, want the centres of the first and last bars (5, 595)", first, last)
	}
	if got := timeAxis(points[:1], 10); got != nil {
		t.Fatalf("one minute has no axis: %v", got)
	}
}
