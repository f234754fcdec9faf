package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/gateway"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// TestConsoleEditAndDelete changes and removes an upstream, a virtual
// server, an enrollment token and a gateway in Chromium: forms show what is
// there, saving changes it, deleting needs its confirmation, an upstream a
// virtual server serves offers no delete, and a gateway with a connected
// agent is deleted only when its agents are cut off too.
func TestConsoleEditAndDelete(t *testing.T) {
	cp := startConsole(t)
	sys := viewer.System(context.Background())
	ten, err := cp.Tenants.CreateTenant(sys, "Acme", "acme", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.IDs.Invite(sys, ten.ID, alice.Email, viewer.RoleOwner); err != nil {
		t.Fatal(err)
	}
	gw, err := cp.Tenants.CreateGateway(sys, ten.ID, "edit-gw")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one", "two"} {
		if _, err := cp.Tenants.CreateUpstream(sys, ten.ID, gw.ID, tenantSpec(name, "streamable_http", "http://"+name+".internal/mcp", "")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cp.Tenants.CreateVirtualServer(sys, ten.ID, gw.ID, "main", []string{"one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Tenants.CreateEnrollmentToken(sys, ten.ID, gw.ID, time.Hour, 1); err != nil {
		t.Fatal(err)
	}
	// An agent the database holds as connected (no Redis here); the CLI
	// test cuts a real one off.
	for i, host := range []string{"vpc-host-1", "vpc-host-2"} {
		if err := cp.DB.Agent.Create().SetTenantID(ten.ID).SetGatewayID(gw.ID).SetHostname(host).SetCertFingerprint(fmt.Sprint("fp-edit-", i)).
			SetConnected(true).SetLastSeen(time.Now()).SetCertExpiresAt(time.Now().Add(20 * 24 * time.Hour)).Exec(sys); err != nil {
			t.Fatal(err)
		}
	}

	b := browser(t)
	base := cp.PublicURL()
	signIn(t, b, base, alice)

	run(t, b, "edit upstream one",
		chromedp.Navigate(base+"/upstreams"),
		chromedp.Click(tid("upstream-edit-one")),
		chromedp.WaitVisible(tid("upstream-title")),
	)
	if got := inputValue(t, b, "upstream-url"); got != "http://one.internal/mcp" {
		t.Fatalf("the edit form shows URL %q", got)
	}
	screenshot(t, b, "13-upstream-edit")
	run(t, b, "save upstream one",
		chromedp.SetValue(tid("upstream-url"), "https://one.example/mcp"),
		chromedp.Click(tid("upstream-deny-roots")),
		chromedp.SetValue(tid("upstream-auth"), "oauth_user"),
		chromedp.SetValue(tid("upstream-oauth-scopes"), "openid offline_access"),
		chromedp.Click(tid("upstream-save")),
		chromedp.WaitVisible(tid("upstreams")),
	)
	if got := textOf(t, b, tid("upstreams")); !strings.Contains(got, "https://one.example/mcp") || strings.Contains(got, "one.internal") {
		t.Fatalf("upstreams after the edit:\n%s", got)
	}
	if got := textOf(t, b, tid("upstream-denied-one")); got != "roots" {
		t.Fatalf("upstream one may not ask for %q, want roots", got)
	}
	run(t, b, "edit upstream one again",
		chromedp.Click(tid("upstream-edit-one")),
		chromedp.WaitVisible(tid("upstream-title")),
	)
	if mode, scopes := inputValue(t, b, "upstream-auth"), inputValue(t, b, "upstream-oauth-scopes"); mode != "oauth_user" || scopes != "openid offline_access" {
		t.Fatalf("upstream one's authorization on its form: %q, scopes %q", mode, scopes)
	}

	run(t, b, "edit virtual server main",
		chromedp.Navigate(base+"/virtual-servers"),
		chromedp.Click(tid("vs-edit-main")),
		chromedp.WaitVisible(tid("vs-title")),
		chromedp.SetValue(tid("vs-upstreams"), "one, two"),
		chromedp.Click(tid("vs-save")),
		chromedp.WaitVisible(tid("virtual-servers")),
	)
	if got := textOf(t, b, tid("virtual-servers")); !strings.Contains(got, "one, two") {
		t.Fatalf("virtual servers after the edit:\n%s", got)
	}
	run(t, b, "upstream two is served: no delete",
		chromedp.Navigate(base+"/upstreams"),
		chromedp.Click(tid("upstream-edit-two")),
		chromedp.WaitVisible(tid("upstream-served-by")),
	)
	if n := count(t, b, `[data-testid="upstream-delete"]`); n != 0 {
		t.Fatalf("%d delete buttons for a served upstream", n)
	}
	run(t, b, "delete virtual server main",
		chromedp.Navigate(base+"/virtual-servers"),
		chromedp.Click(tid("vs-edit-main")),
		chromedp.WaitVisible(tid("vs-delete-confirm")),
	)
	screenshot(t, b, "14-virtual-server-edit")
	run(t, b, "delete virtual server main",
		chromedp.Click(tid("vs-delete-confirm")),
		chromedp.Click(tid("vs-delete")),
		chromedp.WaitVisible(tid("vs-name")), // the list page's create form
		chromedp.WaitNotPresent(tid("vs-edit-main")),
	)
	run(t, b, "delete upstream two",
		chromedp.Navigate(base+"/upstreams"),
		chromedp.Click(tid("upstream-edit-two")),
		chromedp.WaitVisible(tid("upstream-delete-confirm")),
		chromedp.Click(tid("upstream-delete-confirm")),
		chromedp.Click(tid("upstream-delete")),
		chromedp.WaitVisible(tid("upstream-edit-one")),
		chromedp.WaitNotPresent(tid("upstream-edit-two")),
	)

	run(t, b, "revoke the enrollment token",
		chromedp.Navigate(base+"/gateways/"+gw.ID.String()),
		chromedp.WaitVisible(tid("tokens")),
	)
	if got := textOf(t, b, tid("token-state")); got != "usable" {
		t.Fatalf("token state %q", got)
	}
	run(t, b, "revoke the enrollment token",
		chromedp.Click(tid("token-revoke")),
		chromedp.WaitNotPresent(tid("tokens")),
		chromedp.SetValue(tid("gateway-rename-name"), "edit-gw-2"),
		chromedp.Click(tid("gateway-rename")),
		chromedp.WaitVisible(chromedp.Search(`//span[@data-testid="gateway-title"][text()="edit-gw-2"]`)),
	)
	screenshot(t, b, "15-gateway-admin")
	run(t, b, "revoke vpc-host-2",
		chromedp.SetValue(tid("agent-revoke-select"), agentID(t, cp, "vpc-host-2")),
		chromedp.Click(tid("agent-revoke-confirm")),
		chromedp.Click(tid("agent-revoke")),
		chromedp.WaitVisible(tid("agent-revoked")),
	)
	if n := count(t, b, `[data-testid="agent-revoked"]`); n != 1 {
		t.Fatalf("%d agents shown revoked, want 1", n)
	}
	run(t, b, "delete without cutting the agent off",
		chromedp.Click(tid("gateway-delete-confirm")),
		chromedp.Click(tid("gateway-delete")),
		chromedp.WaitVisible(tid("error")),
	)
	if got := textOf(t, b, tid("error")); !strings.Contains(got, "has 1 connected agents (vpc-host-1)") {
		t.Fatalf("refusal: %q", got)
	}
	screenshot(t, b, "16-gateway-delete-refused")
	if ok, err := cp.DB.Gateway.Query().Where(gateway.ID(gw.ID)).Exist(sys); err != nil || !ok {
		t.Fatalf("the gateway is gone after a refused delete (%v)", err)
	}
	run(t, b, "delete, cutting the agent off",
		chromedp.Click(tid("gateway-delete-confirm")),
		chromedp.Click(tid("gateway-delete-force")),
		chromedp.Click(tid("gateway-delete")),
		chromedp.WaitVisible(tid("gateway-create")), // the list page's create form
		chromedp.WaitNotPresent(tid("gateway-edit-gw-2")),
	)
	if ok, err := cp.DB.Gateway.Query().Where(gateway.ID(gw.ID)).Exist(sys); err != nil || ok {
		t.Fatalf("the gateway is still there (%v)", err)
	}
	if n, err := cp.DB.Upstream.Query().Where(upstream.GatewayID(gw.ID)).Count(sys); err != nil || n != 0 {
		t.Fatalf("%d upstreams of the deleted gateway remain (%v)", n, err)
	}
	run(t, b, "audit log", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(tid("audit")))
	auditText := textOf(t, b, tid("audit"))
	for _, want := range []string{"upstream.update", "virtual_server.update", "virtual_server.delete", "upstream.delete", "enrollment_token.revoke", "gateway.update", "agent.revoke", "gateway.delete"} {
		if !strings.Contains(auditText, want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
}

// agentID finds an agent by hostname.
func agentID(t *testing.T, cp *controlPlane, host string) string {
	t.Helper()
	a, err := cp.DB.Agent.Query().Where(agent.Hostname(host)).Only(viewer.System(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	return a.ID.String()
}

// inputValue reads an input's value.
func inputValue(t *testing.T, ctx context.Context, testID string) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Value(tid(testID)))
	if err != nil {
		t.Fatalf("reading %s: %v", testID, err)
	}
	return v
}

// count counts the elements a CSS selector matches.
func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := chromedp.Run(c, chromedp.Evaluate[int](`document.querySelectorAll(`+"`"+sel+"`"+`).length`))
	if err != nil {
		t.Fatalf("counting %s: %v", sel, err)
	}
	return n
}
