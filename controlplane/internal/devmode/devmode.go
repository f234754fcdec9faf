// Package devmode implements `portcullis dev`: the whole system on one
// machine with embedded defaults — control plane on SQLite, a demo upstream,
// and one gateway enrolled automatically.
package devmode

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/app"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/demoupstream"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/devidp"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/web"

	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/gateway"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// Config configures dev mode.
type Config struct {
	DataDir     string
	HTTPListen  string // console
	GRPCListen  string // agents
	DemoListen  string // demo upstream
	GatewayBin  string // path of portcullis-gateway
	GatewayAddr string // gateway MCP listener
	IdPListen   string // embedded OpenID Provider
	Logger      *slog.Logger
}

// The seeded console login.
const (
	DevUserEmail    = "dev@portcullis.local"
	DevUserPassword = "portcullis"
)

// Run starts everything and blocks until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if _, err := os.Stat(cfg.GatewayBin); err != nil {
		return fmt.Errorf("gateway binary %q not found (build it with `make build`, or pass --gateway-bin): %w", cfg.GatewayBin, err)
	}
	demoLn, err := net.Listen("tcp", cfg.DemoListen)
	if err != nil {
		return fmt.Errorf("demo upstream: %w", err)
	}
	demoSrv := &http.Server{Handler: demoupstream.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = demoSrv.Serve(demoLn) }()
	defer demoSrv.Close()

	publicURL := "http://" + cfg.HTTPListen
	clientSecret := rand.Text()
	idp, err := devidp.Start(ctx, devidp.Config{Listen: cfg.IdPListen, ClientID: "portcullis-console", ClientSecret: clientSecret,
		RedirectURIs: []string{publicURL + "/auth/callback"}, Users: []devidp.User{{Email: DevUserEmail, Password: DevUserPassword, Name: "Dev User"}},
		Logger: log})
	if err != nil {
		return err
	}
	defer idp.Close()
	// A development key-encryption key, next to what it protects: serve
	// takes one the operator keeps elsewhere.
	kek, err := keyring.LoadOrCreateFile(filepath.Join(cfg.DataDir, "control-plane", "kek"))
	if err != nil {
		return err
	}
	cp, err := app.New(ctx, app.Config{DataDir: filepath.Join(cfg.DataDir, "control-plane"), GRPCListen: cfg.GRPCListen, HTTPListen: cfg.HTTPListen,
		KEK: kek, PublicURL: publicURL, OIDC: web.OIDCConfig{Issuer: idp.Issuer(), ClientID: "portcullis-console", ClientSecret: clientSecret}, Logger: log})
	if err != nil {
		return err
	}
	defer cp.Close()
	cpCtx, cancelCP := context.WithCancel(ctx)
	defer cancelCP()
	cpDone := make(chan error, 1)
	go func() { cpDone <- cp.Serve(cpCtx) }()

	t, gwID, err := seed(ctx, cp, "http://"+demoLn.Addr().String()+"/mcp")
	if err != nil {
		return fmt.Errorf("seeding the demo tenant: %w", err)
	}
	// An owner API key for the CLI, made once and kept in the data dir.
	keyFile := filepath.Join(cfg.DataDir, "admin-api-key")
	apiKey, err := cp.Bootstrap(ctx, app.Bootstrap{TenantSlug: "demo", APIKeyFile: keyFile})
	if err != nil {
		return err
	}
	if apiKey == "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("reading the dev API key: %w", err)
		}
		apiKey = strings.TrimSpace(string(b))
	}
	gwData := filepath.Join(cfg.DataDir, "gateway")
	cmd := exec.CommandContext(ctx, cfg.GatewayBin, "--control-plane", cp.AgentEndpoint(), "--data-dir", gwData, "--listen", cfg.GatewayAddr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if _, err := os.Stat(filepath.Join(gwData, "identity.json")); errors.Is(err, os.ErrNotExist) {
		token, err := cp.EnrollmentToken(viewer.System(ctx), t.ID, gwID, time.Hour)
		if err != nil {
			return err
		}
		cmd.Env = append(os.Environ(), "PORTCULLIS_ENROLL_TOKEN="+token)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting gateway: %w", err)
	}
	go autoPinDemo(ctx, cp, t.ID, log)

	mcpURL := "http://" + cfg.GatewayAddr + "/mcp/demo"
	fmt.Printf(`
Portcullis is running (dev mode, data in %s).

  Console            %s
                     sign in as %s, password %q
  Gateway MCP URL    %s
  Agents connect to  %s
  CLI                export PORTCULLIS_API_KEY=%s PORTCULLIS_SERVER=%s
                     portcullis servers list   (the key is also in %s)

The demo upstream's tools (echo, add, time) are pinned on first discovery.
Point an MCP client at the gateway, e.g. in its mcpServers config:

  {"mcpServers": {"portcullis-demo": {"type": "http", "url": "%s"}}}

Press Ctrl-C to stop.
`, cfg.DataDir, publicURL, DevUserEmail, DevUserPassword, mcpURL, cp.AgentEndpoint(), apiKey, publicURL, keyFile, mcpURL)

	gwDone := make(chan error, 1)
	go func() { gwDone <- cmd.Wait() }()
	select {
	case <-ctx.Done():
		if err := <-gwDone; err != nil {
			log.Debug("gateway stopped", "err", err)
		}
		return nil
	case err := <-gwDone:
		return fmt.Errorf("gateway exited: %w", err)
	case err := <-cpDone:
		return err
	}
}

// seed creates the demo tenant, gateway, upstream and virtual server once.
func seed(ctx context.Context, cp *app.App, demoURL string) (*ent.Tenant, uuid.UUID, error) {
	ctx = viewer.System(ctx) // seeding is a system job
	t, err := cp.Tenants.TenantBySlug(ctx, "demo")
	if err == nil {
		gw, err := cp.DB.Gateway.Query().Where(gateway.TenantID(t.ID), gateway.Name("dev")).Only(ctx)
		if err != nil {
			return nil, uuid.Nil, err
		}
		return t, gw.ID, nil
	}
	if !errors.Is(err, tenant.ErrNotFound) {
		return nil, uuid.Nil, err
	}
	if t, err = cp.Tenants.CreateTenant(ctx, "Demo", "demo", uuid.Nil); err != nil {
		return nil, uuid.Nil, err
	}
	gw, err := cp.Tenants.CreateGateway(ctx, t.ID, "dev")
	if err != nil {
		return nil, uuid.Nil, err
	}
	if _, err := cp.Tenants.CreateUpstream(ctx, t.ID, gw.ID, tenant.UpstreamSpec{Name: "demo", Transport: "streamable_http", URL: demoURL}); err != nil {
		return nil, uuid.Nil, err
	}
	if _, err := cp.Tenants.CreateVirtualServer(ctx, t.ID, gw.ID, "demo", []string{"demo"}); err != nil {
		return nil, uuid.Nil, err
	}
	if _, err := cp.IDs.Invite(ctx, t.ID, DevUserEmail, viewer.RoleOwner); err != nil {
		return nil, uuid.Nil, err
	}
	return t, gw.ID, nil
}

// autoPinDemo pins each demo tool the first time it is discovered (trust on
// first use, for the demo only). A later change stays quarantined, as in production.
func autoPinDemo(ctx context.Context, cp *app.App, tenantID uuid.UUID, log *slog.Logger) {
	ctx = viewer.System(ctx) // trust on first use is a system job in the demo
	done := map[uuid.UUID]bool{}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		tools, err := cp.DB.Tool.Query().Where(tool.TenantID(tenantID), tool.PinnedSha256(""), tool.LiveSha256NEQ(""),
			tool.HasUpstreamWith(upstream.Name("demo"))).All(ctx)
		if err != nil {
			continue
		}
		for _, t := range tools {
			if done[t.ID] {
				continue
			}
			done[t.ID] = true
			if err := cp.Inventory.PinLive(ctx, tenantID, t.ID); err != nil {
				log.Warn("pinning demo tool", "tool", t.Name, "err", err)
			} else {
				log.Info("demo tool pinned", "tool", t.Name)
			}
		}
	}
}
