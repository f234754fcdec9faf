package backoff

import (
	"testing"
	"time"
)

func TestDelayBounds(t *testing.T) {
	for attempt := range 100 {
		d := Delay(attempt, 500*time.Millisecond, 30*time.Second)
		want := min(500*time.Millisecond<<min(attempt, 30), 30*time.Second)
		if d < want/2 || d > want {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, want/2, want)
		}
	}
}
