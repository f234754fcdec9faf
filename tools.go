//go:build tools

// Package tools pins code generators run with `go run` so their versions come from go.mod.
package tools

import (
	_ "entgo.io/ent/cmd/ent"
)
