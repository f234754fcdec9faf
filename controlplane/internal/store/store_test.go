package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

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
