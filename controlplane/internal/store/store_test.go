package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
)

// TestMigrationsAreCurrent replays the committed migrations on a clean
// database of each dialect and fails if ent/schema has changes they lack.
func TestMigrationsAreCurrent(t *testing.T) {
	for _, tc := range []struct {
		dialect, driver string
		url             func(t *testing.T) string
	}{
		{dialect.SQLite, "sqlite", func(t *testing.T) string {
			return "file:" + filepath.Join(t.TempDir(), "d.db") + "?_pragma=foreign_keys(1)"
		}},
		{dialect.Postgres, "pgx", func(t *testing.T) string { return testutil.StartPostgres(t) }},
	} {
		t.Run(tc.dialect, func(t *testing.T) {
			db, err := sql.Open(tc.driver, tc.url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			dir := t.TempDir()
			src := store.MigrationsDir(tc.dialect)
			entries, err := os.ReadDir(src)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) < 2 {
				t.Fatalf("no migrations in %s", src)
			}
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(src, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			wrote, err := store.Diff(context.Background(), entsql.OpenDB(tc.dialect, db), dir, "pending")
			if err != nil {
				t.Fatal(err)
			}
			if wrote {
				t.Fatalf("ent/schema has changes no migration carries: run `make migration NAME=...` and commit the files")
			}
		})
	}
}

// TestOpenMigratesTwice opens each store twice: the second open finds
// nothing to apply.
func TestOpenMigratesTwice(t *testing.T) {
	for name, url := range testutil.Databases(t) {
		t.Run(name, func(t *testing.T) {
			for range 2 {
				c, err := store.Open(context.Background(), url, testutil.Logger())
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// TestMigrationsKeepData applies the migrations in two steps with rows in
// between: the step that rebuilds the tools table (on SQLite) must keep the
// tools and the versions and change requests that reference them.
func TestMigrationsKeepData(t *testing.T) {
	const before = 20261125145544 // change_requests; the next one adds tools.kind
	for _, tc := range []struct {
		dialect, driver string
		goose           goose.Dialect
		url             func(t *testing.T) string
	}{
		{dialect.SQLite, "sqlite", goose.DialectSQLite3, func(t *testing.T) string {
			return "file:" + filepath.Join(t.TempDir(), "d.db") + "?_pragma=foreign_keys(1)"
		}},
		{dialect.Postgres, "pgx", goose.DialectPostgres, func(t *testing.T) string { return testutil.StartPostgres(t) }},
	} {
		t.Run(tc.dialect, func(t *testing.T) {
			ctx := context.Background()
			db, err := sql.Open(tc.driver, tc.url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			p, err := goose.NewProvider(tc.goose, db, os.DirFS(store.MigrationsDir(tc.dialect)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, before); err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			ids := map[string]string{}
			for _, n := range []string{"tenant", "gateway", "upstream", "tool", "version", "cr"} {
				ids[n] = uuid.NewString()
			}
			q := func(s string) string { // ? placeholders for SQLite, $n for PostgreSQL
				if tc.dialect != dialect.Postgres {
					return s
				}
				for i := 1; strings.Contains(s, "?"); i++ {
					s = strings.Replace(s, "?", "$"+strconv.Itoa(i), 1)
				}
				return s
			}
			for _, st := range []struct {
				sql  string
				args []any
			}{
				{"INSERT INTO tenants (id, created_at, updated_at, name, slug, signing_private_key, signing_public_key) VALUES (?, ?, ?, 'T', 't', ?, ?)", []any{ids["tenant"], now, now, []byte{1}, []byte{2}}},
				{"INSERT INTO gateways (id, created_at, updated_at, name, tenant_id) VALUES (?, ?, ?, 'g', ?)", []any{ids["gateway"], now, now, ids["tenant"]}},
				{"INSERT INTO upstreams (id, created_at, updated_at, name, transport, url, command, tenant_id, gateway_id) VALUES (?, ?, ?, 'u', 'streamable_http', 'http://u', '', ?, ?)", []any{ids["upstream"], now, now, ids["tenant"], ids["gateway"]}},
				{"INSERT INTO tools (id, created_at, updated_at, name, live_sha256, pinned_sha256, first_seen, last_seen, tenant_id, upstream_id) VALUES (?, ?, ?, 'read_file', 'aa', 'aa', ?, ?, ?, ?)", []any{ids["tool"], now, now, now, now, ids["tenant"], ids["upstream"]}},
				{"INSERT INTO tool_versions (id, sha256, definition, first_seen, last_seen, tenant_id, tool_id) VALUES (?, 'aa', ?, ?, ?, ?, ?)", []any{ids["version"], []byte(`{}`), now, now, ids["tenant"], ids["tool"]}},
				{"INSERT INTO change_requests (id, created_at, updated_at, gateway_id, kind, requested_by, approvals_required, tenant_id, tool_id) VALUES (?, ?, ?, ?, 'tool_added', 'gw', 1, ?, ?)", []any{ids["cr"], now, now, ids["gateway"], ids["tenant"], ids["tool"]}},
			} {
				if _, err := db.ExecContext(ctx, q(st.sql), st.args...); err != nil {
					t.Fatalf("%s: %v", st.sql, err)
				}
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("migrating a database with data: %v", err)
			}
			var kind, pinned string
			if err := db.QueryRowContext(ctx, q("SELECT kind, pinned_sha256 FROM tools WHERE id = ?"), ids["tool"]).Scan(&kind, &pinned); err != nil {
				t.Fatal(err)
			}
			var versions, crs int
			if err := db.QueryRowContext(ctx, q("SELECT (SELECT count(*) FROM tool_versions WHERE tool_id = ?), (SELECT count(*) FROM change_requests WHERE tool_id = ?)"), ids["tool"], ids["tool"]).Scan(&versions, &crs); err != nil {
				t.Fatal(err)
			}
			if kind != "tool" || pinned != "aa" || versions != 1 || crs != 1 {
				t.Fatalf("after migrating: kind %q pinned %q, %d versions, %d change requests", kind, pinned, versions, crs)
			}
		})
	}
}
