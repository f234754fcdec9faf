// Package app runs a data-plane gateway: the agent (control-plane client)
// and the MCP proxy behind one HTTP listener.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/agent"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/grants"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/metrics"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/pkgstore"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/proxy"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/ratelimit"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/tracing"
)

// Version of the gateway binary.
var Version = "0.1.0-dev"

// Config configures a gateway.
type Config struct {
	ControlPlane      string
	EnrollToken       string
	DataDir           string
	Listen            string
	PublicURL         string
	RedisURL          string
	OTLPEndpoint      string
	TLSCert, TLSKey   string
	DiscoveryInterval time.Duration
	UpstreamTimeout   time.Duration
	SessionIdle       time.Duration
	TelemetryBuffer   int
	TelemetrySpool    int64 // bytes
	LogLevel          string
	GCPercent         int
	MaxMessageBytes   int
	CredentialEnv     string
	CredentialDirs    string
	// StdioAllow, StdioUser and StdioDir: which stdio upstreams run, as whom, where.
	StdioAllow, StdioUser, StdioDir string
	// PackageRegistry is where package upstreams' archives come from.
	PackageRegistry string
	// GoProxy is where Go module upstreams and their dependencies come from.
	GoProxy           string
	MaxSessions       int
	MaxClientSessions int
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	FlowWindow        time.Duration
	MaxDefinitionAge  time.Duration
	TokenKeyFile      string
	LoginClientID     string
	LoginClientSecret string
}

// RegisterFlags binds cfg to fs; every flag can also be set as PORTCULLIS_<NAME>.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ControlPlane, "control-plane", "", "control plane agent endpoint, host:port (required)")
	fs.StringVar(&c.EnrollToken, "enroll-token", "", "one-time enrollment token from the console; needed only on first start")
	fs.StringVar(&c.DataDir, "data-dir", "./portcullis-gateway-data", "directory for the agent identity and the cached policy bundle")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8081", "address serving MCP at /mcp/{virtual-server}, /healthz and /readyz")
	fs.StringVar(&c.PublicURL, "public-url", "", "URL clients use to reach this gateway, for OAuth protected-resource metadata (default: http(s)://--listen)")
	fs.StringVar(&c.RedisURL, "redis-url", "", "redis://… shared by the gateway's replicas for rate limits and MCP client sessions (default: limits are counted in process, and a session lives in the replica that started it)")
	fs.DurationVar(&c.SessionIdle, "session-idle", time.Hour, "an MCP client session ends after this long without requests")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "OTLP/HTTP endpoint for traces, e.g. http://otel-collector:4318 (default: trace context is passed on, spans are not exported)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate for serving MCP over HTTPS (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM key for --tls-cert")
	fs.DurationVar(&c.DiscoveryInterval, "discovery-interval", time.Minute, "how often each upstream's tools are listed again (list_changed also triggers it)")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", time.Minute, "timeout for connecting to, listing and calling an upstream")
	fs.StringVar(&c.CredentialEnv, "credential-env", proxy.DefaultCredentialEnv, "environment variables an upstream's credential reference env:NAME may read: comma-separated names or prefixes ending in *; empty for none (PORTCULLIS_* never)")
	fs.StringVar(&c.StdioAllow, "stdio-allow", "", "stdio upstreams this gateway runs: comma-separated command lines their command must start with (e.g. \"npx -y @modelcontextprotocol/server-everything@2026.8.31,uvx mcp-server-git\"), or * for any; none by default")
	fs.StringVar(&c.StdioUser, "stdio-user", "", "unprivileged user stdio upstreams run as (never root or the gateway's own; the gateway needs root or CAP_SETUID and CAP_SETGID); required with --stdio-allow")
	fs.StringVar(&c.StdioDir, "stdio-dir", filepath.Join(os.TempDir(), "portcullis-stdio"), "directory holding each stdio upstream's working and home directory (outside --data-dir)")
	fs.StringVar(&c.GoProxy, "go-proxy", "https://proxy.golang.org", "Go module proxy (or the mirror in your network) Go module upstreams and their dependencies are fetched from; a module runs only if its zip has the go.sum hash its upstream pins, and is built with the go command on PATH (CGO off, no toolchain downloads)")
	fs.StringVar(&c.PackageRegistry, "package-registry", "https://registry.npmjs.org", "npm registry (or the mirror in your network) package upstreams and their dependencies are fetched from; a package runs only if its archive has the integrity its upstream pins, and is kept below --stdio-dir/.packages")
	fs.StringVar(&c.CredentialDirs, "credential-dirs", proxy.DefaultCredentialDir, "directories an upstream's credential reference file:/path may read below, comma-separated absolute paths; empty for none (the data dir never)")
	fs.DurationVar(&c.MaxDefinitionAge, "max-definition-age", proxy.DefaultMaxDefinitionAge, "a call, prompt or resource read uses an upstream definition listed at most this long ago; older, the upstream is listed again first (one listing for all callers), so a tool changed without list_changed is quarantined at its next call")
	fs.DurationVar(&c.FlowWindow, "flow-window", time.Hour, "how long a principal's data-flow labels (private_data, untrusted_content) last after it last touched labelled data, across all its sessions and virtual servers")
	fs.IntVar(&c.MaxSessions, "max-sessions", proxy.DefaultMaxSessions, "most MCP client sessions this gateway serves at once; a new one past it is refused (503)")
	fs.IntVar(&c.MaxClientSessions, "max-client-sessions", proxy.DefaultMaxClientSessions, "most MCP client sessions one principal (or anonymous client address) may hold at once; a new one past it is refused (429)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", proxy.DefaultRequestReadTimeout, "time a client has to send a request's headers and body")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 2*time.Minute, "an idle keep-alive connection from a client is closed after this long")
	fs.IntVar(&c.MaxMessageBytes, "max-message-bytes", proxy.DefaultMaxMessageBytes, "largest message accepted from an upstream (a tool result, a resource, a listing); a larger answer is refused readably and recorded as a deny event")
	fs.IntVar(&c.TelemetryBuffer, "telemetry-buffer", 100_000, "call events kept while the control plane is unreachable; beyond it they are dropped and counted")
	fs.Int64Var(&c.TelemetrySpool, "telemetry-spool-bytes", 256<<20, "disk budget of the telemetry spool in the data dir; events beyond it are dropped and counted")
	fs.StringVar(&c.TokenKeyFile, "token-key-file", "", "file with the key (64 hex digits: openssl rand -hex 32) that seals people's upstream OAuth tokens; replicas given the same file and --redis-url share the tokens in Redis. Default: a key generated in --data-dir, tokens kept there")
	fs.StringVar(&c.LoginClientID, "login-client-id", "", "the gateway's OpenID Connect client at the identity provider its clients authenticate with (redirect URI: --public-url/oauth/login); it verifies that who opens a consent link for an oauth_user upstream is the person it was made for, without which people cannot authorize such upstreams")
	fs.StringVar(&c.LoginClientSecret, "login-client-secret", "", "that client's secret; set it as PORTCULLIS_LOGIN_CLIENT_SECRET rather than on the command line")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&c.GCPercent, "gc-percent", 400, "Go garbage collection target, as GOGC (which wins when set): the gateway's live heap is small, and a higher target spends less CPU per call for more memory; bound the heap with GOMEMLIMIT")
}

// Logger builds the process logger from --log-level.
func (c *Config) Logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.LogLevel)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// Run runs the gateway until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.GCPercent < 1 {
		return fmt.Errorf("--gc-percent %d: use a positive percentage", cfg.GCPercent)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MaxSessions < 1 || cfg.MaxClientSessions < 1 {
		return fmt.Errorf("--max-sessions %d, --max-client-sessions %d: use positive numbers", cfg.MaxSessions, cfg.MaxClientSessions)
	}
	if cfg.ReadTimeout <= 0 || cfg.IdleTimeout <= 0 || cfg.FlowWindow <= 0 || cfg.MaxDefinitionAge <= 0 {
		return fmt.Errorf("--read-timeout %s, --idle-timeout %s, --flow-window %s, --max-definition-age %s: use positive durations",
			cfg.ReadTimeout, cfg.IdleTimeout, cfg.FlowWindow, cfg.MaxDefinitionAge)
	}
	if cfg.MaxMessageBytes < 1024 {
		return fmt.Errorf("--max-message-bytes %d: use at least 1024", cfg.MaxMessageBytes)
	}
	creds := proxy.Credentials{Env: splitList(cfg.CredentialEnv), Dirs: splitList(cfg.CredentialDirs), DataDir: cfg.DataDir}
	for _, e := range creds.Env {
		if e == "*" || strings.HasPrefix(strings.ToUpper(e), "PORTCULLIS_") {
			return fmt.Errorf("--credential-env %q: name the variables upstream credentials live in (e.g. MCP_CREDENTIAL_*), never all of them or the gateway's own settings", e)
		}
	}
	for _, d := range creds.Dirs {
		if !filepath.IsAbs(d) || filepath.Clean(d) == "/" {
			return fmt.Errorf("--credential-dirs %q: use absolute paths of the directories credentials are mounted in (not /)", d)
		}
	}
	stdio, err := proxy.ParseStdio(cfg.StdioAllow, cfg.StdioUser, cfg.StdioDir)
	if err != nil {
		return err
	}
	if data, _ := filepath.Abs(cfg.DataDir); stdio.Dir != "" && (stdio.Dir == data || strings.HasPrefix(stdio.Dir, data+string(filepath.Separator))) {
		return fmt.Errorf("--stdio-dir %s is inside --data-dir: stdio servers must not reach the gateway's identity", stdio.Dir)
	}
	if len(stdio.Allow) > 0 {
		if u, err := url.Parse(cfg.PackageRegistry); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("--package-registry %q: give the registry's http(s) URL", cfg.PackageRegistry)
		}
		if u, err := url.Parse(cfg.GoProxy); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("--go-proxy %q: give the module proxy's http(s) URL", cfg.GoProxy)
		}
		stdio.Packages = &pkgstore.Store{Dir: filepath.Join(stdio.Dir, ".packages"), Registry: cfg.PackageRegistry, GoProxy: cfg.GoProxy}
	}
	if cfg.ControlPlane == "" {
		return errors.New("--control-plane is required (host:port of the control plane's agent listener)")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key must be given together")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	if len(stdio.Allow) > 0 {
		// The identity, bundles and spool are the gateway's alone: the stdio
		// user may not even list them.
		if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("closing the data dir to stdio servers: %w", err)
		}
		log.Info("stdio upstreams allowed", "allow", cfg.StdioAllow, "user", stdio.Username, "dir", stdio.Dir)
	}
	shutdownTracing, err := tracing.Setup(ctx, cfg.OTLPEndpoint, Version)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdownTracing(sctx)
	}()
	q, err := telemetry.OpenQueue(filepath.Join(cfg.DataDir, "telemetry"), cfg.TelemetryBuffer, cfg.TelemetrySpool, log)
	if err != nil {
		return fmt.Errorf("opening the telemetry spool: %w", err)
	}
	defer func() {
		if err := q.Close(); err != nil {
			log.Error("closing the telemetry spool", "err", err)
		}
	}()
	public := strings.TrimSuffix(cfg.PublicURL, "/")
	if public == "" {
		scheme := "http"
		if cfg.TLSCert != "" {
			scheme = "https"
		}
		public = scheme + "://" + cfg.Listen
	}
	var limiter ratelimit.Limiter
	var sessions *proxy.RedisSessions
	var tokens *grants.Store
	if cfg.RedisURL == "" || cfg.TokenKeyFile == "" {
		if tokens, err = dirGrants(cfg.DataDir, cfg.TokenKeyFile); err != nil {
			return err
		}
		if cfg.RedisURL != "" {
			log.Info("people's upstream tokens are kept in this replica's data dir: give the replicas one --token-key-file to share them in Redis")
		}
	}
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("--redis-url: %w", err)
		}
		redis.SetLogger(redisLog{log})
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		limiter = ratelimit.NewRedis(rdb, "portcullis:ratelimit:", log)
		sessions = proxy.NewRedisSessions(rdb, "portcullis:mcp-session:", cfg.SessionIdle)
		if tokens == nil {
			key, err := grants.LoadKey(cfg.TokenKeyFile, false)
			if err != nil {
				return fmt.Errorf("--token-key-file: %w", err)
			}
			if tokens, err = grants.NewRedis(rdb, "portcullis:grant:", key); err != nil {
				return err
			}
		}
	}
	px, err := proxy.New(ctx, proxy.Config{Logger: log, Telemetry: q, DiscoveryInterval: cfg.DiscoveryInterval, UpstreamTimeout: cfg.UpstreamTimeout,
		Version: Version, PublicURL: public, RateLimiter: limiter, Sessions: sessions, SessionIdle: cfg.SessionIdle,
		MaxMessageBytes: cfg.MaxMessageBytes, Credentials: creds, Stdio: stdio, MaxSessions: cfg.MaxSessions, MaxClientSessions: cfg.MaxClientSessions,
		RequestReadTimeout: cfg.ReadTimeout, FlowWindow: cfg.FlowWindow, MaxDefinitionAge: cfg.MaxDefinitionAge, Grants: tokens,
		Login: proxy.LoginClient{ID: cfg.LoginClientID, Secret: cfg.LoginClientSecret}})
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	ag, err := agent.New(agent.Config{DataDir: cfg.DataDir, ControlPlane: cfg.ControlPlane, EnrollToken: cfg.EnrollToken,
		Hostname: host, Version: Version, Applier: px, Telemetry: q, Logger: log})
	if err != nil {
		return err
	}
	if err := ag.Start(ctx); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mcpHandler := px.Handler()
	mux.Handle("/mcp/", mcpHandler)
	mux.Handle("/.well-known/oauth-protected-resource", mcpHandler)
	mux.Handle("/.well-known/oauth-protected-resource/", mcpHandler)
	mux.Handle("/oauth/", mcpHandler) // people's consent to upstreams, and their connections
	mux.Handle("GET /metrics", metrics.Handler(metrics.State{PolicyVersion: ag.AppliedVersion, Connected: ag.Connected, QueueDepth: q.Len, CertExpiry: ag.CertificateExpiry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		v := ag.AppliedVersion()
		if v == 0 {
			http.Error(w, "no policy bundle yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Portcullis-Policy-Version", strconv.FormatUint(v, 10))
		fmt.Fprintf(w, "policy_version=%d control_plane_connected=%t\n", v, ag.Connected())
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	srv := NewServer(mux, cfg.ReadTimeout, cfg.IdleTimeout)
	go ag.Run(ctx)
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	log.Info("gateway serving", "listen", ln.Addr().String(), "control_plane", cfg.ControlPlane, "policy_version", ag.AppliedVersion())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// redisLog sends go-redis's own messages (dial retries and the like) to the
// process log at debug level: the callers log what matters, once, in context.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// NewServer is the gateway's HTTP server: a client has readTimeout to send a
// request's headers (its body: the proxy's RequestReadTimeout), and an idle
// keep-alive connection is closed after idleTimeout. No write timeout: an
// answer may stream for as long as its call runs.
func NewServer(h http.Handler, readTimeout, idleTimeout time.Duration) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: readTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: 64 << 10}
}

// dirGrants keeps people's upstream tokens in the data dir, sealed with the
// key in keyFile or, without one, a key generated beside them.
func dirGrants(dataDir, keyFile string) (*grants.Store, error) {
	create := keyFile == ""
	if create {
		keyFile = filepath.Join(dataDir, "upstream-tokens.key")
	}
	key, err := grants.LoadKey(keyFile, create)
	if err != nil {
		return nil, fmt.Errorf("--token-key-file: %w", err)
	}
	return grants.NewDir(filepath.Join(dataDir, "upstream-tokens"), key)
}
