package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/cli"
)

func runCLI(t *testing.T, server, key string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	// Flags go after "command subcommand", before the arguments.
	full := append([]string{}, args[:min(2, len(args))]...)
	full = append(full, "--server", server, "--api-key", key)
	full = append(full, args[min(2, len(args)):]...)
	err := cli.Run(context.Background(), full, &out)
	return out.String(), err
}

func TestCLI(t *testing.T) {
	w := buildWorld(t)
	base := w.cp.PublicURL()

	out, err := runCLI(t, base, w.adminKeyA, "tenants", "list")
	if err != nil || !strings.Contains(out, "tenant-a") || strings.Contains(out, "tenant-b") {
		t.Fatalf("tenants list: %v\n%s", err, out)
	}
	if out, err = runCLI(t, base, w.adminKeyA, "gateways", "create", "cli-gw"); err != nil || !strings.Contains(out, "cli-gw") {
		t.Fatalf("gateways create: %v\n%s", err, out)
	}
	if out, err = runCLI(t, base, w.adminKeyA, "upstreams", "create", "--gateway", "cli-gw", "--url", "https://mcp.internal/mcp", "--labels", "team=data", "web"); err != nil {
		t.Fatalf("upstreams create (url): %v\n%s", err, out)
	}
	if out, err = runCLI(t, base, w.adminKeyA, "upstreams", "create", "--gateway", "cli-gw", "--command", "npx", "local", "--", "-y", "@modelcontextprotocol/server-everything"); err != nil {
		t.Fatalf("upstreams create (stdio): %v\n%s", err, out)
	}
	out, err = runCLI(t, base, w.adminKeyA, "upstreams", "list")
	if err != nil || !strings.Contains(out, "https://mcp.internal/mcp") || !strings.Contains(out, "npx -y @modelcontextprotocol/server-everything") {
		t.Fatalf("upstreams list: %v\n%s", err, out)
	}
	out, err = runCLI(t, base, w.adminKeyA, "tokens", "create", "--ttl", "10m", "cli-gw")
	if err != nil || !strings.Contains(out, "--enroll-token pcgw1.") || !strings.Contains(out, w.cp.AgentEndpoint()) {
		t.Fatalf("tokens create: %v\n%s", err, out)
	}
	if out, err = runCLI(t, base, w.adminKeyA, "gateways", "list", "--output", "json"); err != nil || !strings.Contains(out, `"name": "cli-gw"`) {
		t.Fatalf("gateways list json: %v\n%s", err, out)
	}

	// Clear errors.
	for _, tc := range []struct {
		key  string
		args []string
		want string
	}{
		{w.adminKeyA, []string{"tokens", "create", "no-such-gw"}, `no gateway named "no-such-gw"`},
		{w.adminKeyA, []string{"tokens", "create", w.bGateway.String()}, "not found"},
		{w.adminKeyA, []string{"tokens", "create", "--ttl", "9000h", "cli-gw"}, "invalid input"},
		{w.adminKeyA, []string{"upstreams", "create", "--gateway", "cli-gw", "x"}, "exactly one of --url"},
		{w.adminKeyA, []string{"upstreams", "create", "--gateway", "cli-gw", "--url", "ftp://x", "bad"}, "invalid input"},
		{w.adminKeyA, []string{"gateways", "create", "cli-gw"}, "already exists"},
		{w.adminKeyA, []string{"gateways", "create"}, "usage: portcullis gateways create NAME"},
		{w.viewerKeyA, []string{"gateways", "create", "nope"}, "permission denied"},
		{"pcak_wrong", []string{"gateways", "list"}, "PORTCULLIS_API_KEY"},
		{"", []string{"gateways", "list"}, "no API key"},
		{w.adminKeyA, []string{"gateways", "list", "--output", "yaml"}, "use table or json"},
	} {
		_, err := runCLI(t, base, tc.key, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
	if _, err := runCLI(t, "http://127.0.0.1:1", w.adminKeyA, "gateways", "list"); err == nil || !strings.Contains(err.Error(), "cannot reach the control plane") {
		t.Errorf("unreachable server: %v", err)
	}
}
