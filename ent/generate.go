// Package ent holds the control plane's data model; the code beside schema/ is generated.
package ent

//go:generate go run entgo.io/ent/cmd/ent generate --feature sql/upsert,privacy,entql,sql/versioned-migration ./schema
