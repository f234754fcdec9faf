// Package store opens the control plane's database: SQLite (embedded default)
// or PostgreSQL, chosen by the URL scheme.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/portcullis-mcp/portcullis/ent"
	_ "github.com/portcullis-mcp/portcullis/ent/runtime" // privacy policies and defaults
)

// Open connects to databaseURL, which is "sqlite://PATH" (or a bare path) or
// "postgres://...", and applies pending versioned migrations.
func Open(ctx context.Context, databaseURL string, log *slog.Logger) (*ent.Client, error) {
	drv, err := OpenDriver(ctx, databaseURL, log)
	if err != nil {
		return nil, err
	}
	return ent.NewClient(ent.Driver(drv)), nil
}

// OpenDriver is Open's driver, for what needs the database itself (the
// telemetry ingest's prepared statements) besides an ent.Client on it.
func OpenDriver(ctx context.Context, databaseURL string, log *slog.Logger) (*entsql.Driver, error) {
	drv, err := openDriver(databaseURL)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, drv.DB(), drv.Dialect(), log); err != nil {
		drv.Close()
		return nil, err
	}
	return drv, nil
}

// WithDatabase returns the PostgreSQL URL u pointing at database name.
func WithDatabase(u, name string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("parsing database URL: %w", err)
	}
	parsed.Path = "/" + name
	return parsed.String(), nil
}

func openDriver(databaseURL string) (*entsql.Driver, error) {
	switch {
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		db, err := sql.Open("pgx", databaseURL)
		if err != nil {
			return nil, fmt.Errorf("opening PostgreSQL: %w", err)
		}
		db.SetMaxOpenConns(20)
		return entsql.OpenDB(dialect.Postgres, db), nil
	case strings.HasPrefix(databaseURL, "sqlite://"), !strings.Contains(databaseURL, "://"):
		path := strings.TrimPrefix(databaseURL, "sqlite://")
		if path == "" {
			return nil, fmt.Errorf("database URL %q has no file path", databaseURL)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("creating database directory: %w", err)
		}
		q := url.Values{}
		for _, p := range []string{"foreign_keys(1)", "busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("opening SQLite %s: %w", path, err)
		}
		db.SetMaxOpenConns(1) // one writer; avoids SQLITE_BUSY under load
		return entsql.OpenDB(dialect.SQLite, db), nil
	default:
		return nil, fmt.Errorf("unsupported database URL %q: use sqlite://PATH or postgres://USER:PASS@HOST/DB", databaseURL)
	}
}
