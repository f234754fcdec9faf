package store

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/sqltool"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql/schema"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	entmigrate "github.com/portcullis-mcp/portcullis/ent/migrate"
)

// Migrations are versioned SQL files, one directory per dialect, written by
// `make migration NAME=...` from the ent schema and applied with goose.
//
//go:embed migrations
var migrations embed.FS

// MigrationsDir is where the migration files of a dialect live in the source tree.
func MigrationsDir(d string) string { return "migrations/" + dirName(d) }

func dirName(d string) string {
	if d == dialect.Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Migrate applies every pending migration. On PostgreSQL a session lock makes
// replicas that start together take turns.
func Migrate(ctx context.Context, db *sql.DB, d string, log *slog.Logger) error {
	sub, err := fs.Sub(migrations, MigrationsDir(d))
	if err != nil {
		return err
	}
	gd := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if d == dialect.Postgres {
		gd = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db, sub, opts...)
	if err != nil {
		return fmt.Errorf("loading migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	for _, r := range results {
		log.Info("applied migration", "file", r.Source.Path, "took", r.Duration)
	}
	return nil
}

// Diff replays the migrations in dir on the clean database behind drv and,
// if the ent schema has changes they lack, writes them as a new goose
// migration called name. It reports whether it wrote one.
func Diff(ctx context.Context, drv dialect.Driver, dir, name string) (bool, error) {
	before, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	gd, err := sqltool.NewGooseDir(dir)
	if err != nil {
		return false, err
	}
	m, err := schema.NewMigrate(drv,
		schema.WithDir(gd),
		schema.WithMigrationMode(schema.ModeReplay),
		schema.WithDialect(drv.Dialect()),
		schema.WithFormatter(sqltool.GooseFormatter),
		schema.WithDropColumn(true),
		schema.WithDropIndex(true),
	)
	if err != nil {
		return false, err
	}
	if err := m.NamedDiff(ctx, name, entmigrate.Tables...); err != nil {
		return false, fmt.Errorf("diffing schema: %w", err)
	}
	after, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	if drv.Dialect() == dialect.SQLite {
		if err := sqliteNoTransaction(gd, dir, before, after); err != nil {
			return false, err
		}
	}
	return len(after) != len(before), nil
}

// sqliteNoTransaction marks new SQLite migrations that rebuild a table as
// goose NO TRANSACTION: their "PRAGMA foreign_keys = off" is ignored inside
// a transaction, and dropping the old table would then fail on the rows that
// reference it. The directory's checksum is rewritten to match.
func sqliteNoTransaction(gd *sqltool.GooseDir, dir string, before, after []os.DirEntry) error {
	old := map[string]bool{}
	for _, e := range before {
		old[e.Name()] = true
	}
	changed := false
	for _, e := range after {
		if old[e.Name()] || filepath.Ext(e.Name()) != ".sql" {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("PRAGMA foreign_keys = off")) {
			continue
		}
		if err := os.WriteFile(path, append([]byte("-- +goose NO TRANSACTION\n"), b...), 0o644); err != nil {
			return err
		}
		changed = true
	}
	if !changed {
		return nil
	}
	sum, err := gd.Checksum()
	if err != nil {
		return err
	}
	return migrate.WriteSumFile(gd, sum)
}
