package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// TestStdioConfinement runs a tenant admin's stdio servers through the
// built binaries: the gateway runs only the command lines its operator
// allows (the refusal reaches the CLI), as the unprivileged --stdio-user,
// with a minimal environment (its declared credential, none of the
// gateway's), and such a server cannot read the gateway's identity.
func TestStdioConfinement(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the gateway runs stdio servers as another user: run the tests as root, as make test does")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	// The probe lives where the stdio user can run it.
	binDir := stdioUserDir(t, "stdioprobe-")
	probe := filepath.Join(binDir, "stdioprobe")
	if out, err := exec.Command("go", "build", "-o", probe, "./testdata/stdioprobe").CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, out)
	}
	stdioDir := filepath.Join(binDir, "servers")

	w := buildWorld(t)
	base := w.cp.PublicURL()
	run := cliAs(t, runBinary, base, w.adminKeyA)
	run("upstreams", "create", "--gateway", "a-gateway", "--command", probe, "--credential-ref", "env:MCP_CREDENTIAL_PROBE", "probe")
	run("upstreams", "create", "--gateway", "a-gateway", "--command", "sh", "shell", "--", "-c", "id")
	run("servers", "create", "--gateway", "a-gateway", "--upstreams", "probe,shell", "main")
	sys := viewer.System(context.Background())
	token, err := w.cp.EnrollmentToken(sys, w.a.ID, w.aGateway, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// An operator made the data dir readable by all, beside the probe: the
	// gateway closes it.
	gwDir, addr := filepath.Join(binDir, "gateway-data"), freeAddr(t)
	if err := os.Mkdir(gwDir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, w.cp.AgentEndpoint(), gwDir, addr, "PORTCULLIS_ENROLL_TOKEN="+token,
		"PORTCULLIS_STDIO_ALLOW="+probe, "PORTCULLIS_STDIO_USER=nobody", "PORTCULLIS_STDIO_DIR="+stdioDir,
		"MCP_CREDENTIAL_PROBE=probe-secret", "MCP_CREDENTIAL_OTHER=other-secret", "GATEWAY_ONLY=canary")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.out)
		}
	})

	// The command outside the allow-list is refused, readably, in the CLI.
	eventually(t, "the refusal of sh in the inventory", func() error {
		u, err := w.cp.DB.Upstream.Query().Where(upstream.Name("shell"), upstream.TenantID(w.a.ID)).Only(sys)
		if err != nil || !strings.Contains(u.LastError, `does not allow the command "sh -c id"`) {
			return fmt.Errorf("shell upstream: %v, %v", u, err)
		}
		return nil
	})
	if out := run("upstreams", "list"); !strings.Contains(out, "does not allow the command") {
		t.Errorf("upstreams list does not say why shell is not running:\n%s", out)
	}

	for _, tool := range []string{"read", "env", "uid"} {
		pinWhenDiscovered(t, w.cp, w.a.ID, "probe", tool)
	}
	waitEnforced(t, w.cp, w.a.ID, w.aGateway, addr, "the probe pinned")
	cs, err := mcpConnect(sys, "http://"+addr+"/mcp/main")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	call := func(name string, args map[string]any) string {
		t.Helper()
		res, err := cs.CallTool(sys, &mcp.CallToolParams{Name: "probe__" + name, Arguments: args})
		if err != nil || res.IsError {
			t.Fatalf("%s: %v %+v", name, err, res)
		}
		return res.Content[0].(*mcp.TextContent).Text
	}
	if got := call("uid", map[string]any{}); got != nobody.Uid {
		t.Errorf("the stdio server runs as uid %s, want nobody's %s", got, nobody.Uid)
	}
	env := call("env", map[string]any{})
	if !strings.Contains(env, "MCP_CREDENTIAL_PROBE=probe-secret") {
		t.Errorf("the declared credential is missing from the environment:\n%s", env)
	}
	for _, leaked := range []string{"other-secret", "canary", "PORTCULLIS_", "probe-secret\nMCP"} {
		if strings.Contains(env, leaked) {
			t.Errorf("the stdio server sees %q of the gateway's environment:\n%s", leaked, env)
		}
	}
	if fi, err := os.Stat(gwDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the data dir is %v (%v), want 0700", fi.Mode(), err)
	}
	for _, f := range []string{"identity.json", "agent.key", "ca.crt"} {
		if got := call("read", map[string]any{"path": filepath.Join(gwDir, f)}); !strings.Contains(got, "permission denied") {
			t.Errorf("the stdio server read the gateway's %s: %.80q", f, got)
		}
	}
}
