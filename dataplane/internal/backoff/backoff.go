// Package backoff computes reconnect delays.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay is an exponential backoff from min, capped at max, with "equal
// jitter": a random point in the upper half, so peers do not reconnect in step.
func Delay(attempt int, min, max time.Duration) time.Duration {
	d := min << uint(attempt&63) // guard the shift; overflow is caught below
	if attempt > 30 || d <= 0 || d > max {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}
