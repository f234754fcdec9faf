// Command migrategen writes a new versioned migration for each dialect when
// the ent schema has changed: `make migration NAME=add_widgets`.
// It replays the existing migrations on a clean database (in-memory SQLite;
// a scratch PostgreSQL database) and diffs the result against ent/schema.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
)

func main() {
	name := flag.String("name", "", "migration name, e.g. add_widgets (required)")
	pgURL := flag.String("postgres", os.Getenv("PORTCULLIS_TEST_POSTGRES_URL"), "URL of a PostgreSQL server with a database the tool may drop and create (scratch database: portcullis_migrategen)")
	dir := flag.String("dir", "controlplane/internal/store", "the store package directory")
	flag.Parse()
	if !regexp.MustCompile(`^[a-z0-9_]{1,60}$`).MatchString(*name) {
		fmt.Fprintln(os.Stderr, "migrategen: -name is required: lower-case letters, digits and _")
		os.Exit(2)
	}
	if *pgURL == "" {
		fmt.Fprintln(os.Stderr, "migrategen: -postgres (or PORTCULLIS_TEST_POSTGRES_URL) is required; `eval \"$(.ci/services)\"` starts one")
		os.Exit(2)
	}
	if err := run(context.Background(), *name, *pgURL, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "migrategen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, name, pgURL, dir string) error {
	lite, err := sql.Open("sqlite", "file:migrategen?mode=memory&_pragma=foreign_keys(1)")
	if err != nil {
		return err
	}
	lite.SetMaxOpenConns(1)
	if err := diff(ctx, entsql.OpenDB(dialect.SQLite, lite), dir, name); err != nil {
		return err
	}
	admin, err := sql.Open("pgx", pgURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, q := range []string{"DROP DATABASE IF EXISTS portcullis_migrategen", "CREATE DATABASE portcullis_migrategen"} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	scratch, err := store.WithDatabase(pgURL, "portcullis_migrategen")
	if err != nil {
		return err
	}
	pg, err := sql.Open("pgx", scratch)
	if err != nil {
		return err
	}
	defer pg.Close()
	return diff(ctx, entsql.OpenDB(dialect.Postgres, pg), dir, name)
}

func diff(ctx context.Context, drv dialect.Driver, dir, name string) error {
	path := filepath.Join(dir, store.MigrationsDir(drv.Dialect()))
	wrote, err := store.Diff(ctx, drv, path, name)
	if err != nil {
		return fmt.Errorf("%s: %w", drv.Dialect(), err)
	}
	if wrote {
		fmt.Println("wrote a new migration in", path)
	} else {
		fmt.Println("no schema changes for", drv.Dialect())
	}
	return nil
}
