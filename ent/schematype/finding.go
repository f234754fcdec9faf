// Package schematype holds value types stored as JSON columns.
package schematype

// Finding is one result of the description scanner, stored with the tool
// version it was found in.
type Finding struct {
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Path     string `json:"path"`
	Excerpt  string `json:"excerpt"`
}

// LatencyBucketsMicros are the upper bounds of CallRollup's latency
// histogram columns; one more, unbounded, bucket follows them.
var LatencyBucketsMicros = []int64{1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000, 5000000}
