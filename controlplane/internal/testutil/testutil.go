// Package testutil holds helpers shared by the control plane's tests.
package testutil

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

var dbSeq atomic.Int64

// StartPostgres returns the URL of a fresh, empty database on the test
// PostgreSQL server that `make test` starts (.ci/services), dropped when the
// test ends.
func StartPostgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv("PORTCULLIS_TEST_POSTGRES_URL")
	if base == "" {
		t.Fatal("PORTCULLIS_TEST_POSTGRES_URL is not set: run the tests with `make test`, or `eval \"$(.ci/services)\"` first")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t_%d_%d_%s", os.Getpid(), dbSeq.Add(1), strings.ToLower(sanitize(t.Name())))
	if len(name) > 60 {
		name = name[:60]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
		admin.Close()
	})
	u, err := store.WithDatabase(base, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Databases returns one fresh database URL per supported store, by name, for
// suites that must pass on every store.
func Databases(t testing.TB) map[string]string {
	return map[string]string{
		"sqlite":   "sqlite://" + filepath.Join(t.TempDir(), "portcullis.db"),
		"postgres": StartPostgres(t),
	}
}

// Logger discards logs unless PORTCULLIS_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("PORTCULLIS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// nopNotifier ignores policy-change signals, for tests without a compiler.
type nopNotifier struct{}

func (nopNotifier) GatewayChanged(context.Context, uuid.UUID) error { return nil }
func (nopNotifier) AgentsChanged(context.Context, uuid.UUID) error  { return nil }

// KEK is the key-encryption key of tests: fixed, so that replicas of one
// test share it.
func KEK() *keyring.Local {
	k, err := keyring.NewLocal(bytes.Repeat([]byte{0x5a}, 32))
	if err != nil {
		panic(err)
	}
	return k
}

// NewGateway creates a tenant of its own (with its signing key, as the
// tenant service makes it) and a gateway in it.
func NewGateway(t testing.TB, db *ent.Client) *ent.Gateway {
	t.Helper()
	ctx := viewer.System(context.Background())
	tens, err := tenant.New(db, nopNotifier{}, KEK(), Logger())
	if err != nil {
		t.Fatal(err)
	}
	ten, err := tens.CreateTenant(ctx, "Test", "t-"+uuid.NewString()[:8], uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := tens.CreateGateway(ctx, ten.ID, "gw")
	if err != nil {
		t.Fatal(err)
	}
	return gw
}
