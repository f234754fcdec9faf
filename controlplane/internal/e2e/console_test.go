package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/app"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/demoupstream"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/devidp"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/web"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// Seeded identity-provider accounts.
var (
	alice = devidp.User{Email: "alice@acme.test", Password: "alice-password", Name: "Alice Admin"}
	bob   = devidp.User{Email: "bob@beta.test", Password: "bob-password", Name: "Bob Other"}
)

// startConsole runs the embedded OpenID Provider and a control plane whose
// console logs in through it.
func startConsole(t *testing.T) *controlPlane {
	t.Helper()
	ctx, cancel := context.WithCancel(viewer.System(context.Background()))
	t.Cleanup(cancel)
	httpAddr := freeAddr(t)
	public := "http://" + httpAddr
	idp, err := devidp.Start(ctx, devidp.Config{ClientID: "console", ClientSecret: "console-secret",
		RedirectURIs: []string{public + "/auth/callback"}, Users: []devidp.User{alice, bob}, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ctx, app.Config{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: httpAddr, PublicURL: public, KEK: testutil.KEK(),
		OIDC: web.OIDCConfig{Issuer: idp.Issuer(), ClientID: "console", ClientSecret: "console-secret"}, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{App: a, cancel: cancel, done: make(chan error, 1)}
	go func() { cp.done <- a.Serve(ctx) }()
	t.Cleanup(cp.stop)
	return cp
}

// browser starts Debian's Chromium headless with a fresh profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("PORTCULLIS_TEST_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Chromium not found at %s: run the tests with `make test` (it installs Debian's chromium)", path)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1400, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// run runs browser actions with a deadline, failing the test with the page's
// text when they do not complete.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		d, cancel2 := context.WithTimeout(ctx, 5*time.Second)
		defer cancel2()
		loc, _ := chromedp.Run(d, chromedp.Location())
		body, _ := chromedp.Run(d, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
	}
}

func tid(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }

// textOf reads an element's text.
func textOf(t *testing.T, ctx context.Context, sel chromedp.CSS) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(c, chromedp.FullScreenshot(100)) // quality 100 gives PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join(e2eDir, "artifacts", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func signIn(t *testing.T, ctx context.Context, base string, u devidp.User) {
	t.Helper()
	run(t, ctx, "sign in as "+u.Email,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(tid("sign-in")),
		chromedp.Click(tid("sign-in")),
		chromedp.WaitVisible(tid("idp-username")),
		chromedp.SendKeys(tid("idp-username"), u.Email),
		chromedp.SendKeys(tid("idp-password"), u.Password),
		chromedp.Click(tid("idp-submit")),
		chromedp.WaitVisible(tid("user-email")),
	)
}

// TestConsoleEnrollsGateway logs in through the OIDC provider in Chromium,
// creates a gateway, enrolls a real gateway binary with the token the page
// shows, watches it come online, registers an upstream and a virtual server,
// approves a discovered tool, and calls it through the gateway.
func TestConsoleEnrollsGateway(t *testing.T) {
	cp := startConsole(t)
	ctx := viewer.System(context.Background())
	ten, err := cp.Tenants.CreateTenant(ctx, "Acme", "acme", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.IDs.Invite(ctx, ten.ID, alice.Email, viewer.RoleOwner); err != nil {
		t.Fatal(err)
	}
	demo := httptest.NewServer(demoupstream.Handler())
	// After the gateway stops: its upstream sessions stay open until then.
	t.Cleanup(func() { demo.CloseClientConnections(); demo.Close() })

	b := browser(t)
	base := cp.PublicURL()
	signIn(t, b, base, alice)
	run(t, b, "dashboard", chromedp.WaitVisible(tid("card-gateways")))
	email := textOf(t, b, tid("user-email"))
	if email != alice.Email {
		t.Fatalf("signed in as %q, want %q", email, alice.Email)
	}
	screenshot(t, b, "01-dashboard")

	run(t, b, "create gateway",
		chromedp.Click(tid("nav-gateways")),
		chromedp.WaitVisible(tid("gateway-name")),
		chromedp.SendKeys(tid("gateway-name"), "browser-gw"),
		chromedp.Click(tid("gateway-create")),
		chromedp.WaitVisible(tid("gateway-title")),
		chromedp.WaitVisible(tid("no-agents")),
	)
	run(t, b, "create enrollment token",
		chromedp.Click(tid("create-token")),
		chromedp.WaitVisible(tid("enroll-token")),
	)
	token, command := textOf(t, b, tid("enroll-token")), textOf(t, b, tid("enroll-command"))
	if !strings.HasPrefix(token, "pcgw1.") || !strings.Contains(command, cp.AgentEndpoint()) {
		t.Fatalf("enrollment shows token %q and command %q", token, command)
	}
	screenshot(t, b, "02-enrollment-token")

	gwAddr := freeAddr(t)
	startGateway(t, cp.AgentEndpoint(), t.TempDir(), gwAddr, "PORTCULLIS_ENROLL_TOKEN="+strings.TrimSpace(token))
	run(t, b, "agent comes online", chromedp.WaitVisible(tid("agent-online")))
	screenshot(t, b, "03-gateway-online")

	run(t, b, "register upstream",
		chromedp.Click(tid("nav-upstreams")),
		chromedp.WaitVisible(tid("upstream-name")),
		chromedp.SendKeys(tid("upstream-name"), "demo"),
		chromedp.SetValue(tid("upstream-transport"), "streamable_http"),
		chromedp.SendKeys(tid("upstream-url"), demo.URL+"/mcp"),
		chromedp.Click(tid("upstream-deny-elicitation")),
		chromedp.Click(tid("upstream-create")),
		chromedp.WaitVisible(tid("upstreams")),
	)
	screenshot(t, b, "04-upstreams")
	if got := textOf(t, b, tid("upstream-denied-demo")); got != "elicitation" {
		t.Errorf("the upstream may not ask clients for %q, want elicitation", got)
	}
	run(t, b, "create virtual server",
		chromedp.Click(tid("nav-virtual-servers")),
		chromedp.WaitVisible(tid("vs-name")),
		chromedp.SendKeys(tid("vs-name"), "main"),
		chromedp.SendKeys(tid("vs-upstreams"), "demo"),
		chromedp.Click(tid("vs-create")),
		chromedp.WaitVisible(tid("virtual-servers")),
	)
	if got := textOf(t, b, tid("vs-naming")); got != "upstream__tool" {
		t.Errorf("the virtual server names tools %q, want upstream__tool", got)
	}

	// The gateway discovers the demo tools and reports them; nothing is
	// callable until a person approves it.
	eventually(t, "tools to be discovered and listed in the console", func() error {
		c, cancel := context.WithTimeout(b, 10*time.Second)
		defer cancel()
		if err := chromedp.Do(c, chromedp.Navigate(base+"/tools"), chromedp.WaitVisible(tid("nav-tools"))); err != nil {
			return err
		}
		n, err := chromedp.Run(c, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="pin-echo"]').length`))
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("no approve button for echo yet")
		}
		return nil
	})
	mcpURL := "http://" + gwAddr + "/mcp/main"
	waitForTools(t, "nothing listed before approval", mcpURL, nil)
	run(t, b, "approve echo", chromedp.Click(tid("pin-echo")), chromedp.WaitNotPresent(tid("pin-echo")), chromedp.WaitVisible(tid("tools")))
	screenshot(t, b, "05-tools")
	waitForTools(t, "echo listed after approval in the console", mcpURL, []string{"demo__echo"})
	text, isErr, err := callText(t, mcpURL, "demo__echo", `{"message":"approved in a browser"}`)
	if err != nil || isErr || !strings.Contains(text, "approved in a browser") {
		t.Fatalf("echo through the gateway: %q, isError %v, %v", text, isErr, err)
	}

	run(t, b, "applied policy shown", chromedp.Navigate(base+"/gateways"), chromedp.WaitVisible(tid("gateway-browser-gw")),
		chromedp.Click(tid("gateway-browser-gw")), chromedp.WaitVisible(tid("agent-applied")))
	eventually(t, "the agent to show the current policy version", func() error {
		c, cancel := context.WithTimeout(b, 5*time.Second)
		defer cancel()
		applied, err := chromedp.Run(c, chromedp.Text(tid("agent-applied")))
		if err != nil {
			return err
		}
		if !strings.Contains(applied, "current") {
			return fmt.Errorf("applied policy cell says %q", applied)
		}
		return nil
	})

	run(t, b, "invite a member",
		chromedp.Click(tid("nav-members")),
		chromedp.WaitVisible(tid("invite-email")),
		chromedp.SendKeys(tid("invite-email"), "carol@acme.test"),
		chromedp.SetValue(tid("invite-role"), "approver"),
		chromedp.Click(tid("invite-submit")),
		chromedp.WaitVisible(tid("pending-invite")),
	)
	// The only owner is not offered her own removal; an invitation can be cancelled.
	removable, err := chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid^="remove-"]').length`))
	if err != nil {
		t.Fatal(err)
	}
	if who := textOf(t, b, tid("last-owner")); who != "the only owner" || removable != 0 {
		t.Fatalf("last owner cell = %q, %d removal buttons", who, removable)
	}
	run(t, b, "cancel the invitation, then invite again",
		chromedp.Click(tid("cancel-carol@acme.test")),
		chromedp.WaitNotPresent(tid("pending-invite")),
		chromedp.SendKeys(tid("invite-email"), "carol@acme.test"),
		chromedp.SetValue(tid("invite-role"), "approver"),
		chromedp.Click(tid("invite-submit")),
		chromedp.WaitVisible(tid("pending-invite")),
	)
	screenshot(t, b, "06-members")
	run(t, b, "create an API key",
		chromedp.Click(tid("nav-api-keys")),
		chromedp.WaitVisible(tid("api-key-name")),
		chromedp.SendKeys(tid("api-key-name"), "ci"),
		chromedp.Click(tid("api-key-create")),
		chromedp.WaitVisible(tid("api-key-secret")),
	)
	secret := strings.TrimSpace(textOf(t, b, tid("api-key-secret")+" pre"))
	if !strings.HasPrefix(secret, "pcak_") {
		t.Fatalf("API key secret shown as %q", secret)
	}
	run(t, b, "audit log",
		chromedp.Click(tid("nav-audit")),
		chromedp.WaitVisible(tid("audit")),
	)
	auditText := textOf(t, b, tid("audit"))
	for _, want := range []string{"gateway.create", "enrollment_token.create", "upstream.create", "virtual_server.create", "tool.pin", "member.invite", "api_key.create", "user:alice@acme.test"} {
		if !strings.Contains(auditText, want) {
			t.Errorf("audit log lacks %q:\n%s", want, auditText)
		}
	}
	if strings.Contains(auditText, secret) || strings.Contains(auditText, strings.Split(strings.TrimSpace(token), ".")[1]) {
		t.Error("a secret leaked into the audit log")
	}
	screenshot(t, b, "07-audit")

	// A second tenant of her own; the switcher moves between them.
	run(t, b, "create a second tenant",
		chromedp.Navigate(base+"/tenants"),
		chromedp.WaitVisible(tid("tenant-name")),
		chromedp.SendKeys(tid("tenant-name"), "Second Co"),
		chromedp.SendKeys(tid("tenant-slug"), "second"),
		chromedp.Click(tid("tenant-create")),
		chromedp.WaitVisible(tid("card-gateways")),
	)
	if h := textOf(t, b, chromedp.CSS("main h1")); h != "Second Co" {
		t.Fatalf("after creating a tenant the dashboard shows %q", h)
	}
	run(t, b, "switch back to Acme",
		chromedp.Navigate(base+"/tenants"),
		chromedp.WaitVisible(tid("open-tenant-acme")),
		chromedp.Click(tid("open-tenant-acme")),
		chromedp.WaitVisible(tid("card-gateways")),
	)
	if h := textOf(t, b, chromedp.CSS("main h1")); h != "Acme" {
		t.Fatalf("after switching the dashboard shows %q", h)
	}

	run(t, b, "sign out", chromedp.Click(tid("logout")), chromedp.WaitVisible(tid("sign-in")))
	run(t, b, "signed out stays out", chromedp.Navigate(base+"/gateways"), chromedp.WaitVisible(tid("sign-in")))
}
