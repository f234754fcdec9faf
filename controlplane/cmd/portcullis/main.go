// Command portcullis is the control plane: `portcullis serve` runs it,
// `portcullis dev` runs the whole system locally with embedded defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/app"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/cli"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/devmode"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
)

const usage = `Usage: portcullis <command> [flags]

Commands:
  serve       run the control plane
  dev         run control plane, a demo upstream and one gateway on this machine

Admin commands (need an API key: PORTCULLIS_API_KEY; portcullis dev prints one):
  tenants     list | create
  signing-key show | start | complete | cancel (bundle-signing key rotation)
  gateways    list | create | rename | delete
  agents      list | revoke (a gateway's running instances)
  tokens      create | list | revoke (gateway enrollment tokens)
  upstreams   list | create | update | delete
  servers     list | create | update | delete (virtual servers, /mcp/{name})
  tools       list | pin | unpin
  changes     list | show | approve | reject (change requests)
  pins        export | import (signed pin manifests)
  keys        list | create | revoke (API keys)
  members     list | invite | role | remove
  approvals   get | set (approvals a change needs)
  access      keys | rules | idp | limits | require-keys (who may call what)
  events      list (recent calls)
  catalog     list | import | approve | reject | delete | policy | only (approved servers)
  connections list | revoke (people's authorizations at upstreams acting as each person)

Run "portcullis <command> -h" for the command's flags. Every flag can also be
set as an environment variable PORTCULLIS_<FLAG>, e.g. PORTCULLIS_DATABASE_URL.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Fprint(os.Stdout, usage)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "dev":
		err = dev(ctx, os.Args[2:])
	default:
		if slices.Contains(cli.Commands(), os.Args[1]) {
			err = cli.Run(ctx, os.Args[1:], os.Stdout)
			break
		}
		fmt.Fprintf(os.Stderr, "portcullis: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return // -h printed the command's flags
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "portcullis:", err)
		os.Exit(1)
	}
}

func newLogger(level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
}

func parse(fs *flag.FlagSet, args []string) error {
	return ff.Parse(fs, args, ff.WithEnvVarPrefix("PORTCULLIS"))
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("portcullis serve", flag.ContinueOnError)
	var cfg app.Config
	var hosts, level string
	fs.StringVar(&cfg.DataDir, "data-dir", "./portcullis-data", "directory for the SQLite database and the generated CA")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "sqlite://PATH or postgres://USER:PASS@HOST/DB (default: SQLite in --data-dir)")
	fs.StringVar(&cfg.GRPCListen, "grpc-listen", "127.0.0.1:7443", "address for gateway agents (gRPC over mTLS)")
	fs.StringVar(&hosts, "grpc-hostnames", "localhost,127.0.0.1,::1", "comma-separated names and IPs agents use to reach --grpc-listen (server certificate SANs)")
	fs.StringVar(&cfg.HTTPListen, "http-listen", "127.0.0.1:8080", "address for HTTP: console, admin API, health")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "", "address serving Prometheus /metrics, e.g. 127.0.0.1:9464 (default: off)")
	fs.StringVar(&cfg.RedisURL, "redis-url", "", "redis://… shared by control-plane replicas: policy changes reach agents on any replica; agent presence and console sessions live there (default: one replica)")
	fs.DurationVar(&cfg.TelemetryRetention, "telemetry-retention", 7*24*time.Hour, "how long raw call events are kept; per-minute rollups are kept 30 days")
	fs.DurationVar(&cfg.AgentCertLifetime, "agent-cert-lifetime", 30*24*time.Hour, "how long gateway agents' client certificates are valid; agents renew them two thirds into it (at least 1m)")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "URL where browsers reach the console, e.g. https://portcullis.example.com (default: http://--http-listen); https enables Secure __Host- cookies")
	fs.StringVar(&cfg.OIDC.Issuer, "oidc-issuer", "", "OpenID Connect issuer URL for console logins (Google, Entra ID, Okta, Keycloak, Dex...); without it the console is off")
	fs.StringVar(&cfg.OIDC.ClientID, "oidc-client-id", "", "OIDC client id registered with the issuer; its redirect URL is <public-url>/auth/callback")
	fs.StringVar(&cfg.OIDC.ClientSecret, "oidc-client-secret", "", "OIDC client secret (prefer the PORTCULLIS_OIDC_CLIENT_SECRET environment variable)")
	fs.StringVar(&cfg.CACert, "ca-cert", "", "PEM CA certificate for agent mTLS (default: generated in --data-dir)")
	fs.StringVar(&cfg.CAKey, "ca-key", "", "PEM PKCS#8 key of --ca-cert")
	fs.StringVar(&cfg.CANextCert, "ca-next-cert", "", "CA rotation, phase 1: the next agent CA's certificate, announced to agents so they trust it before the switch (docs/trust.md)")
	fs.StringVar(&cfg.CAPreviousCert, "ca-previous-cert", "", "CA rotation, phase 2: the replaced CA's certificate, still trusted for agents that have not renewed since the switch")
	var kekValue, kekFile string
	fs.StringVar(&kekValue, "key-encryption-key", "", "base64 of 32 random bytes sealing private keys at rest (tenants' signing keys, the generated CA key); prefer PORTCULLIS_KEY_ENCRYPTION_KEY or --key-encryption-key-file. Create one: openssl rand -base64 32")
	fs.StringVar(&kekFile, "key-encryption-key-file", "", "file holding the key-encryption key (base64, mode 0600), e.g. a mounted secret")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	var boot app.Bootstrap
	fs.StringVar(&boot.TenantSlug, "bootstrap-tenant", "", "on start, create this tenant (by slug) if it does not exist: the first tenant without a browser")
	fs.StringVar(&boot.OwnerEmail, "bootstrap-owner", "", "on start, invite this email as owner of --bootstrap-tenant unless already a member or invited (they become owner at their first console login)")
	fs.StringVar(&boot.APIKeyFile, "bootstrap-api-key-file", "", "on start, if this file does not exist, write a new owner API key of --bootstrap-tenant to it (mode 0600), for the CLI and automation")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(level)
	if err != nil {
		return err
	}
	cfg.GRPCHostnames = strings.Split(hosts, ",")
	cfg.Logger = log
	switch {
	case kekValue != "" && kekFile != "":
		return errors.New("give --key-encryption-key or --key-encryption-key-file, not both")
	case kekValue != "":
		cfg.KEK, err = keyring.Parse(kekValue)
	case kekFile != "":
		cfg.KEK, err = keyring.LoadFile(kekFile)
	default:
		return errors.New("portcullis serve needs a key-encryption key to keep private keys encrypted at rest: create one with `openssl rand -base64 32 > kek && chmod 600 kek` and pass --key-encryption-key-file kek (or set PORTCULLIS_KEY_ENCRYPTION_KEY); keep it apart from the database and data dir")
	}
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.Bootstrap(ctx, boot); err != nil {
		return err
	}
	return a.Serve(ctx)
}

func dev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("portcullis dev", flag.ContinueOnError)
	exe, _ := os.Executable()
	var cfg devmode.Config
	var level string
	fs.StringVar(&cfg.DataDir, "data-dir", ".data/dev", "directory for all dev state (delete it to start over)")
	fs.StringVar(&cfg.HTTPListen, "http-listen", "127.0.0.1:8080", "control plane HTTP address")
	fs.StringVar(&cfg.GRPCListen, "grpc-listen", "127.0.0.1:7443", "control plane agent address")
	fs.StringVar(&cfg.DemoListen, "demo-listen", "127.0.0.1:8090", "demo upstream MCP server address")
	fs.StringVar(&cfg.GatewayAddr, "gateway-listen", "127.0.0.1:8081", "gateway MCP address")
	fs.StringVar(&cfg.IdPListen, "idp-listen", "127.0.0.1:8082", "embedded dev OpenID Provider address (console logins)")
	fs.StringVar(&cfg.GatewayBin, "gateway-bin", filepath.Join(filepath.Dir(exe), "portcullis-gateway"), "path of the portcullis-gateway binary")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(level)
	if err != nil {
		return err
	}
	cfg.Logger = log
	return devmode.Run(ctx, cfg)
}
