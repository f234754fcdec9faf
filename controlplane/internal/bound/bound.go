// Package bound caps text from agents before it is stored.
package bound

import "unicode/utf8"

// String returns s cut to at most n bytes, never inside a UTF-8 sequence
// (PostgreSQL refuses invalid UTF-8 in text columns).
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
