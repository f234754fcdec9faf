package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/demoupstream"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/auditevent"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ent/virtualserver"
)

// TestCLIGatewayLifecycle renames and deletes a gateway and revokes an
// enrollment token with the built binaries: a revoked token enrolls
// nobody, a gateway with a connected agent is deleted only with --force,
// and then its agent's stream is cut and refused while it keeps enforcing
// its last policy.
func TestCLIGatewayLifecycle(t *testing.T) {
	w := buildWorld(t)
	base := w.cp.PublicURL()
	sys := viewer.System(context.Background())
	run := cliAs(t, runCLI, base, w.adminKeyA)
	token := func() string {
		t.Helper()
		var tok struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(run("tokens", "create", "--output", "json", "life")), &tok); err != nil || tok.Token == "" {
			t.Fatalf("token: %v %+v", err, tok)
		}
		return tok.Token
	}
	up := httptest.NewServer(demoupstream.Handler())
	t.Cleanup(func() { up.CloseClientConnections(); up.Close() })

	run("gateways", "create", "life")
	run("upstreams", "create", "--gateway", "life", "--url", up.URL+"/mcp", "demo")
	run("servers", "create", "--gateway", "life", "--upstreams", "demo", "life-main")

	// A revoked token enrolls nobody; the gateway says why and exits.
	revoked := token()
	var list struct {
		Tokens []struct {
			ID     string `json:"id"`
			Usable bool   `json:"usable"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(run("tokens", "list", "--output", "json", "life")), &list); err != nil || len(list.Tokens) != 1 || !list.Tokens[0].Usable {
		t.Fatalf("tokens list: %v %+v", err, list)
	}
	id := list.Tokens[0].ID
	if out := run("tokens", "revoke", id); !strings.Contains(out, "Revoked") {
		t.Fatalf("revoke: %s", out)
	}
	if out := run("tokens", "list", "life"); strings.Contains(out, id) {
		t.Fatalf("a revoked token is still listed: %s", out)
	}
	g := startGateway(t, w.cp.AgentEndpoint(), t.TempDir(), freeAddr(t), "PORTCULLIS_ENROLL_TOKEN="+revoked)
	done := make(chan error, 1)
	go func() { done <- g.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(g.out.String(), "invalid, expired, revoked or already used") {
			t.Fatalf("a gateway with a revoked token: %v\n%s", err, g.out)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("a gateway with a revoked token did not exit:\n%s", g.out)
	}

	// A live gateway.
	addr := freeAddr(t)
	live := startGateway(t, w.cp.AgentEndpoint(), t.TempDir(), addr, "PORTCULLIS_ENROLL_TOKEN="+token())
	eventually(t, "the gateway connects", func() error {
		if _, ok := readyz(addr); !ok {
			return errors.New("not connected")
		}
		return nil
	})
	pinWhenDiscovered(t, w.cp, w.a.ID, "demo", "echo")
	mcpURL := "http://" + addr + "/mcp/life-main"
	echo := func() error {
		cs, err := mcpConnect(sys, mcpURL)
		if err != nil {
			return err
		}
		defer cs.Close()
		res, err := cs.CallTool(sys, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "hi"}})
		if err != nil {
			return err
		}
		if res.IsError {
			return fmt.Errorf("echo refused: %v", res.Content)
		}
		return nil
	}
	eventually(t, "echo through the gateway", echo)

	// Renaming changes nothing the agent or its clients see.
	run("gateways", "rename", "life", "life-2")
	if out := run("gateways", "list"); !strings.Contains(out, "life-2") || !strings.Contains(out, "1/1") {
		t.Fatalf("after rename: %s", out)
	}
	if err := echo(); err != nil {
		t.Fatalf("echo after the rename: %v", err)
	}

	// Deleting it needs --force while its agent is connected.
	if out, err := runCLI(t, base, w.adminKeyA, "gateways", "delete", "life-2"); err == nil || !strings.Contains(err.Error()+out, "has 1 connected agents") {
		t.Fatalf("deleting a gateway with a live agent: %v\n%s", err, out)
	}
	if _, err := runCLI(t, base, w.viewerKeyA, "gateways", "delete", "--force", "life-2"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("a viewer deleting a gateway: %v", err)
	}
	if out := run("gateways", "delete", "--force", "life-2"); !strings.Contains(out, "1 connected agents were cut off") {
		t.Fatalf("forced delete: %s", out)
	}
	eventually(t, "the agent's stream is cut and stays refused", func() error {
		if _, ok := readyz(addr); ok {
			return errors.New("still connected")
		}
		if !strings.Contains(live.out.String(), "gateway was deleted from the control plane") {
			return errors.New("the gateway has not said why")
		}
		return nil
	})
	if err := echo(); err != nil {
		t.Fatalf("the cut-off gateway stopped enforcing its last policy: %v", err)
	}
	if out := run("gateways", "list"); strings.Contains(out, "life-2") {
		t.Fatalf("deleted gateway listed: %s", out)
	}
	for what, n := range map[string]func(context.Context) (int, error){
		"upstreams":       w.cp.DB.Upstream.Query().Where(upstream.Name("demo")).Count,
		"virtual servers": w.cp.DB.VirtualServer.Query().Where(virtualserver.Name("life-main")).Count,
		"agents":          w.cp.DB.Agent.Query().Where(agent.TenantID(w.a.ID)).Count,
	} {
		if c, err := n(sys); err != nil || c != 0 {
			t.Errorf("%d %s left (%v)", c, what, err)
		}
	}
	var actions []string
	evs, err := w.cp.DB.AuditEvent.Query().Where(auditevent.TargetTypeIn("gateway")).All(sys)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"gateway.update", "gateway.delete", "enrollment_token.revoke"} {
		if !slices.Contains(actions, want) {
			t.Errorf("no %s in the audit log (%v)", want, actions)
		}
	}
}
