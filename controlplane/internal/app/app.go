// Package app wires the control plane together: database, CA, domain
// services, the agent gRPC listener and the HTTP listener.
package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/access"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/adminapi"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/agentsync"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/catalog"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/change"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/inventory"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/metrics"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/pki"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/policy"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/presence"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/web"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Config configures the control plane.
type Config struct {
	// DataDir holds the SQLite database and the CA when not set otherwise.
	DataDir string
	// DatabaseURL is sqlite://PATH or postgres://...; default sqlite in DataDir.
	DatabaseURL string
	// GRPCListen is the agent listener address.
	GRPCListen string
	// GRPCHostnames are the names and IPs agents use to reach GRPCListen (server certificate SANs).
	GRPCHostnames []string
	// HTTPListen is the console/health listener address.
	HTTPListen string
	// RedisURL, when set, links control-plane replicas: a change made on one
	// reaches agents held by another through Redis pub/sub, agent presence
	// and console sessions are kept there.
	RedisURL string
	// TelemetryRetention is how long raw call events are kept (default 7 days);
	// per-minute rollups are kept 30 days.
	TelemetryRetention time.Duration
	// MetricsListen serves Prometheus /metrics on its own address ("" = off),
	// so scrapes need not pass through the public listener.
	MetricsListen string
	// CACert and CAKey are PEM files of the agent CA; generated in DataDir when unset.
	CACert, CAKey string
	// A CA rotation (docs/trust.md): CANextCert is announced to agents
	// before the switch; CAPreviousCert, after it, is still trusted for the
	// client certificates of agents that have not renewed.
	CANextCert, CAPreviousCert string
	// AgentCertLifetime is how long agent certificates are valid (default 30
	// days); agents renew them two thirds into it.
	AgentCertLifetime time.Duration
	// KEK seals private keys at rest: tenants' bundle-signing keys and the
	// agent CA key generated in DataDir. Required.
	KEK keyring.KEK
	// PublicURL is where browsers reach the console; default http://HTTPListen.
	PublicURL string
	// OIDC is the identity provider for console logins; the console is off
	// without an issuer (the admin API still takes API keys).
	OIDC   web.OIDCConfig
	Logger *slog.Logger
}

// App is a running control plane.
type App struct {
	DB        *ent.Client
	SQL       *entsql.Driver // DB's driver
	CA        *pki.CA
	Tenants   *tenant.Service
	Inventory *inventory.Service
	Policy    *policy.Service
	Telemetry *telemetry.Service
	Catalog   *catalog.Service
	IDs       *identity.Service
	Changes   *change.Service
	Access    *access.Service

	cfg     Config
	log     *slog.Logger
	grpcLn  net.Listener
	httpLn  net.Listener
	grpcSrv *grpc.Server
	httpSrv *http.Server
	metLn   net.Listener
	metSrv  *http.Server
	mux     *http.ServeMux
	rdb     *redis.Client // nil without --redis-url
}

// keepaliveInterval between keepalives on each agent's Sync stream; presence
// marks in Redis expire after three missed ones.
const keepaliveInterval = 15 * time.Second

// New opens the database and binds the listeners.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("a data directory is required (--data-dir)")
	}
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = "sqlite://" + filepath.Join(cfg.DataDir, "portcullis.db")
	}
	if cfg.KEK == nil {
		return nil, errors.New("a key-encryption key is required (--key-encryption-key-file or PORTCULLIS_KEY_ENCRYPTION_KEY; create one with: openssl rand -base64 32)")
	}
	if (cfg.CACert == "") != (cfg.CAKey == "") {
		return nil, errors.New("--ca-cert and --ca-key must be given together")
	}
	if len(cfg.GRPCHostnames) == 0 {
		cfg.GRPCHostnames = []string{"localhost", "127.0.0.1", "::1"}
	}
	a := &App{cfg: cfg, log: cfg.Logger.With("component", "app")}
	var err error
	if cfg.CACert == "" {
		// The CA of the data dir: its key is kept sealed.
		a.CA, err = pki.LoadOrCreateSealed(filepath.Join(cfg.DataDir, "ca.crt"), filepath.Join(cfg.DataDir, "ca.key.sealed"),
			filepath.Join(cfg.DataDir, "ca.key"), cfg.KEK, keyring.CAKeyAAD)
	} else {
		a.CA, err = pki.LoadOrCreate(cfg.CACert, cfg.CAKey)
	}
	if err != nil {
		return nil, err
	}
	var rotation [2][]*x509.Certificate
	for i, path := range []string{cfg.CANextCert, cfg.CAPreviousCert} {
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err == nil {
			rotation[i], err = pki.ParseCertificates(b)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", []string{"--ca-next-cert", "--ca-previous-cert"}[i], err)
		}
	}
	a.CA.Rotating(rotation[0], rotation[1])
	if a.SQL, err = store.OpenDriver(ctx, cfg.DatabaseURL, cfg.Logger); err != nil {
		return nil, err
	}
	a.DB = ent.NewClient(ent.Driver(a.SQL))
	if err := sealTenantKeys(ctx, a.DB, cfg.KEK, a.log); err != nil {
		return nil, a.closeWith(err)
	}
	var broker policy.Broker = policy.NewLocalBroker()
	var pres *presence.Redis
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, a.closeWith(fmt.Errorf("--redis-url: %w", err))
		}
		redis.SetLogger(redisLog{cfg.Logger})
		a.rdb = redis.NewClient(opt)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = a.rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			return nil, a.closeWith(fmt.Errorf("--redis-url: %w", err))
		}
		broker = policy.NewRedisBroker(ctx, a.rdb, cfg.Logger)
		pres = presence.New(a.rdb, "portcullis:agent-presence:", 3*keepaliveInterval)
		a.DB.Agent.Intercept(pres.Interceptor())
	}
	if a.Policy, err = policy.New(a.DB, broker, cfg.KEK, cfg.Logger); err != nil {
		return nil, a.closeWith(err)
	}
	if a.Tenants, err = tenant.New(a.DB, a.Policy, cfg.KEK, cfg.Logger); err != nil {
		return nil, a.closeWith(err)
	}
	if a.Inventory, err = inventory.New(a.DB, a.Policy, cfg.Logger); err != nil {
		return nil, a.closeWith(err)
	}
	if a.Changes, err = change.New(a.DB, a.Policy, cfg.KEK, cfg.Logger); err != nil {
		return nil, a.closeWith(err)
	}
	if a.Access, err = access.New(a.DB, a.Policy); err != nil {
		return nil, a.closeWith(err)
	}
	if a.Catalog, err = catalog.New(a.DB, cfg.Logger); err != nil {
		return nil, err
	}
	if a.Telemetry, err = telemetry.New(a.SQL, cfg.Logger); err != nil {
		return nil, a.closeWith(err)
	}
	if a.IDs, err = identity.New(a.DB, cfg.Logger); err != nil {
		return nil, a.closeWith(err)
	}
	syncCfg := agentsync.Config{
		DB: a.DB, CA: a.CA, Policy: a.Policy, Broker: broker, Inventory: a.Inventory, Telemetry: a.Telemetry, Logger: cfg.Logger,
		KeepaliveInterval: keepaliveInterval, CertValidity: cfg.AgentCertLifetime,
	}
	if a.rdb != nil {
		a.IDs.KeepSessionsIn(a.rdb)
		syncCfg.Presence = pres
	}
	sync, err := agentsync.New(syncCfg)
	if err != nil {
		return nil, a.closeWith(err)
	}
	tlsCfg, err := a.CA.ServerTLS(cfg.GRPCHostnames)
	if err != nil {
		return nil, a.closeWith(err)
	}
	a.grpcSrv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.MaxRecvMsgSize(16<<20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	agentv1.RegisterAgentServiceServer(a.grpcSrv, sync)
	if a.grpcLn, err = net.Listen("tcp", cfg.GRPCListen); err != nil {
		return nil, a.closeWith(fmt.Errorf("listening for agents on %s: %w", cfg.GRPCListen, err))
	}
	if a.httpLn, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
		return nil, a.closeWith(fmt.Errorf("listening for HTTP on %s: %w", cfg.HTTPListen, err))
	}
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	api, err := adminapi.New(adminapi.Config{DB: a.DB, IDs: a.IDs, Tenants: a.Tenants, Inventory: a.Inventory, Changes: a.Changes, Access: a.Access, Telemetry: a.Telemetry, Catalog: a.Catalog,
		EnrollmentToken: a.EnrollmentTokenUses, AgentEndpoint: a.AgentEndpoint(), Logger: cfg.Logger})
	if err != nil {
		return nil, a.closeWith(err)
	}
	api.Mount(a.mux)
	if cfg.PublicURL == "" {
		a.cfg.PublicURL = "http://" + a.HTTPAddr()
	}
	if cfg.OIDC.Issuer != "" {
		console, err := web.New(web.Config{DB: a.DB, IDs: a.IDs, Tenants: a.Tenants, Inventory: a.Inventory, Changes: a.Changes, Access: a.Access, Telemetry: a.Telemetry, Catalog: a.Catalog,
			EnrollmentToken: a.EnrollmentTokenUses, AgentEndpoint: a.AgentEndpoint(), PublicURL: a.cfg.PublicURL, OIDC: cfg.OIDC, Logger: cfg.Logger})
		if err != nil {
			return nil, a.closeWith(err)
		}
		console.Mount(a.mux)
	} else {
		a.log.Warn("no --oidc-issuer: the console is off; the admin API accepts API keys only")
	}
	a.httpSrv = &http.Server{Handler: web.SecurityHeaders(a.mux), ReadHeaderTimeout: 10 * time.Second}
	if cfg.MetricsListen != "" {
		if a.metLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return nil, a.closeWith(fmt.Errorf("listening for metrics on %s: %w", cfg.MetricsListen, err))
		}
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", metrics.Handler(a.DB))
		a.metSrv = &http.Server{Handler: mm, ReadHeaderTimeout: 10 * time.Second}
	}
	return a, nil
}

func (a *App) closeWith(err error) error {
	a.Close()
	return err
}

// GRPCAddr is the bound agent listener address.
func (a *App) GRPCAddr() string { return a.grpcLn.Addr().String() }

// PublicURL is where browsers reach the console.
func (a *App) PublicURL() string { return a.cfg.PublicURL }

// HTTPAddr is the bound HTTP listener address.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// MetricsAddr is the bound metrics listener address ("" when off).
func (a *App) MetricsAddr() string {
	if a.metLn == nil {
		return ""
	}
	return a.metLn.Addr().String()
}

// AgentEndpoint is the address agents dial, using the first configured hostname.
func (a *App) AgentEndpoint() string {
	_, port, _ := net.SplitHostPort(a.GRPCAddr())
	host := a.cfg.GRPCHostnames[0]
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// EnrollmentToken creates a one-time token for a gateway in the form agents accept.
func (a *App) EnrollmentToken(ctx context.Context, tenantID, gatewayID uuid.UUID, ttl time.Duration) (string, error) {
	return a.EnrollmentTokenUses(ctx, tenantID, gatewayID, ttl, 1)
}

// EnrollmentTokenUses creates a token that enrolls up to uses agents.
func (a *App) EnrollmentTokenUses(ctx context.Context, tenantID, gatewayID uuid.UUID, ttl time.Duration, uses int) (string, error) {
	secret, err := a.Tenants.CreateEnrollmentToken(ctx, tenantID, gatewayID, ttl, uses)
	if err != nil {
		return "", err
	}
	return agentsync.FormatToken(secret, a.CA.Cert.Raw), nil
}

// Handle adds an HTTP handler (the console, in dev) to the HTTP listener.
func (a *App) Handle(pattern string, h http.Handler) {
	a.mux.Handle(pattern, h)
}

// Serve runs the listeners until ctx ends, then stops them.
func (a *App) Serve(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- a.grpcSrv.Serve(a.grpcLn) }()
	go func() {
		if err := a.httpSrv.Serve(a.httpLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	if a.metSrv != nil {
		go func() {
			if err := a.metSrv.Serve(a.metLn); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		defer func() { _ = a.metSrv.Close() }()
	}
	go a.expireTelemetry(ctx)
	a.log.Info("control plane serving", "agents", a.GRPCAddr(), "http", a.HTTPAddr())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.httpSrv.Shutdown(sctx)
	a.grpcSrv.Stop() // streams are long-lived: stop, do not wait for them
	return err
}

// expireTelemetry deletes old call events hourly.
func (a *App) expireTelemetry(ctx context.Context) {
	keep := a.cfg.TelemetryRetention
	if keep <= 0 {
		keep = 7 * 24 * time.Hour
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := a.Telemetry.Expire(ctx, keep, 30*24*time.Hour); err != nil {
			a.log.Warn("expiring call events", "err", err)
		} else if n > 0 {
			a.log.Info("expired call events", "deleted", n, "older_than", keep)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close releases the database. Call after Serve returned.
func (a *App) Close() {
	if a.grpcLn != nil {
		_ = a.grpcLn.Close()
	}
	if a.httpLn != nil {
		_ = a.httpLn.Close()
	}
	if a.metLn != nil {
		_ = a.metLn.Close()
	}
	if a.DB != nil {
		_ = a.DB.Close()
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
}

// redisLog sends go-redis's own messages (dial retries and the like) to the
// process log at debug level: the callers log what matters, once, in context.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// sealTenantKeys seals signing keys stored in plaintext (before keys were
// encrypted at rest) and checks that the KEK opens the sealed ones, so that
// a wrong key stops the start rather than every later signature.
func sealTenantKeys(ctx context.Context, db *ent.Client, kek keyring.KEK, log *slog.Logger) error {
	ctx = viewer.System(ctx)
	ts, err := db.Tenant.Query().All(ctx)
	if err != nil {
		return fmt.Errorf("reading tenants' keys: %w", err)
	}
	for _, t := range ts {
		if keyring.Sealed(t.SigningPrivateKey) {
			if _, err := keyring.TenantKey(kek, t.ID, t.SigningPrivateKey); err != nil {
				return fmt.Errorf("the key-encryption key given does not open the stored keys: %w", err)
			}
			continue
		}
		sealed, err := keyring.SealTenantKey(kek, t.ID, t.SigningPrivateKey)
		if err != nil {
			return err
		}
		if err := db.Tenant.UpdateOneID(t.ID).SetSigningPrivateKey(sealed).Exec(ctx); err != nil {
			return fmt.Errorf("sealing tenant %s's signing key: %w", t.Slug, err)
		}
		log.Info("sealed a tenant's signing key with the key-encryption key", "tenant", t.Slug, "kek", kek.ID())
	}
	return nil
}
