package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// TestCatalog runs the catalog through the built CLI: server.json files are
// imported, approved by someone other than who imported them, and upstreams
// are added from (and bumped to) approved entries only.
func TestCatalog(t *testing.T) {
	w := buildWorld(t)
	base := w.cp.PublicURL()
	sys := viewer.System(context.Background())
	reviewerKey, _, err := w.cp.IDs.CreateAPIKey(sys, w.a.ID, "reviewer", viewer.RoleApprover)
	if err != nil {
		t.Fatal(err)
	}
	admin, reviewer := cliAs(t, runBinary, base, w.adminKeyA), cliAs(t, runBinary, base, reviewerKey)
	fails := func(key, want string, args ...string) {
		t.Helper()
		if out, err := runCLI(t, base, key, args...); err == nil || !strings.Contains(err.Error()+out, want) {
			t.Errorf("portcullis %v: %v %s, want an error saying %q", args, err, out, want)
		}
	}
	dir := t.TempDir()
	serverJSON := func(file, version string) string {
		p := filepath.Join(dir, file)
		doc := fmt.Sprintf(`{"$schema":"https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
			"name":"io.github.modelcontextprotocol/everything","description":"Exercises every MCP feature","version":%q,
			"packages":[{"registryType":"npm","identifier":"@modelcontextprotocol/server-everything","version":%q,"transport":{"type":"stdio"},
				"packageArguments":[{"type":"positional","value":"stdio"}]}]}`, version, version)
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const name = "io.github.modelcontextprotocol/everything"
	version, integrity := pinnedEverything(t)
	idOf := func(out string) string {
		t.Helper()
		id := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}`).FindString(out)
		if id == "" {
			t.Fatalf("no id in %q", out)
		}
		return id
	}

	// Imported, pending: not usable, and not approvable by who imported it.
	fails(w.adminKeyA, "integrity", "catalog", "import", serverJSON("v1.json", version))
	v1 := idOf(admin("catalog", "import", "--integrity", integrity, serverJSON("v1.json", version)))
	fails(w.adminKeyA, "already in the catalog", "catalog", "import", "--integrity", integrity, serverJSON("v1.json", version))
	fails(w.viewerKeyA, "permission denied", "catalog", "import", "--integrity", integrity, serverJSON("v1b.json", "2026.8.18"))
	fails(w.adminKeyA, "someone else must approve", "catalog", "approve", v1)
	fails(w.adminKeyA, "no approved entry", "upstreams", "create", "--gateway", "a-gateway", "--from-catalog", name, "everything")

	// Approved by another person: upstreams come from it.
	if out := reviewer("catalog", "approve", "--comment", "reviewed the package", v1); !strings.Contains(out, "approved (1/1 approvals)") {
		t.Fatalf("approve: %s", out)
	}
	fails(w.adminKeyA, "none may follow", "upstreams", "create", "--gateway", "a-gateway", "--from-catalog", name, "everything", "--", "sse")
	admin("upstreams", "create", "--gateway", "a-gateway", "--from-catalog", name, "everything")
	if out := admin("upstreams", "list"); !strings.Contains(out, "npm:@modelcontextprotocol/server-everything@"+version+" stdio (catalog "+name+"@"+version+")") {
		t.Errorf("upstreams list does not show the catalog entry:\n%s", out)
	}

	// A bump is a new entry, approved in its turn; it supersedes the old one,
	// and upstreams take it when updated from the catalog.
	const bumped = "2025.8.18"
	v2 := idOf(admin("catalog", "import", "--integrity", "sha512-oKhMHq3WlKfUEJCzNaTgCiXp2fisv7a2ZtAdRNXM4lwesWI0Ak+69eqe06infEKy946+ZvSV808yEyERTml1Bg==", serverJSON("v2.json", bumped)))
	reviewer("catalog", "approve", v2)
	list := admin("catalog", "list")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(v1 + `\s+` + regexp.QuoteMeta(name) + `\s+` + version + `\s.*superseded`),
		regexp.MustCompile(v2 + `\s+` + regexp.QuoteMeta(name) + `\s+` + bumped + `\s.*approved\s+1/1`),
	} {
		if !want.MatchString(list) {
			t.Errorf("catalog list does not match %s:\n%s", want, list)
		}
	}
	admin("upstreams", "update", "--gateway", "a-gateway", "--from-catalog", name, "everything")
	u, err := w.cp.DB.Upstream.Query().Where(upstream.TenantID(w.a.ID), upstream.Name("everything")).Only(sys)
	if err != nil || u.PackageVersion != bumped || u.CatalogEntry != name+"@"+bumped || strings.Join(u.Args, " ") != "stdio" {
		t.Fatalf("bumped upstream: %+v %v", u, err)
	}

	// A remote's secret header: the upstream must say where the gateway finds it.
	remote := filepath.Join(dir, "remote.json")
	if err := os.WriteFile(remote, []byte(`{"name":"io.acme/tickets","version":"3.1.0","description":"Tickets",
		"remotes":[{"type":"streamable-http","url":"https://mcp.acme.test/mcp","headers":[{"name":"X-Api-Key","isSecret":true,"isRequired":true}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := idOf(admin("catalog", "import", remote))
	fails(reviewerKey, "must be a UUID", "catalog", "reject", "--comment", "not yet", "not-an-id")
	reviewer("catalog", "approve", r)
	fails(w.adminKeyA, "needs its secret header X-Api-Key", "upstreams", "create", "--gateway", "a-gateway", "--from-catalog", "io.acme/tickets", "tickets")
	admin("upstreams", "create", "--gateway", "a-gateway", "--from-catalog", "io.acme/tickets@3.1.0", "--credential-ref", "env:TICKETS_KEY", "tickets")
	tu, err := w.cp.DB.Upstream.Query().Where(upstream.TenantID(w.a.ID), upstream.Name("tickets")).Only(sys)
	if err != nil || tu.URL != "https://mcp.acme.test/mcp" || tu.CredentialHeader != "X-Api-Key" || tu.CredentialRef != "env:TICKETS_KEY" {
		t.Fatalf("tickets upstream: %+v %v", tu, err)
	}
	// An owner can make the catalog the only way in; admins cannot undo it.
	ownerKey, _, err := w.cp.IDs.CreateAPIKey(sys, w.a.ID, "owner", viewer.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	owner := cliAs(t, runBinary, base, ownerKey)
	if out := admin("catalog", "policy"); !strings.Contains(out, "off") {
		t.Errorf("catalog policy: %s", out)
	}
	fails(w.adminKeyA, "permission denied", "catalog", "only", "on")
	owner("catalog", "only", "on")
	fails(w.adminKeyA, "only servers from its approved catalog", "upstreams", "create", "--gateway", "a-gateway", "--url", "https://elsewhere.test/mcp", "elsewhere")
	fails(w.adminKeyA, "only servers from its approved catalog", "upstreams", "update", "--gateway", "a-gateway", "--url", "https://elsewhere.test/mcp", "tickets")
	admin("upstreams", "create", "--gateway", "a-gateway", "--from-catalog", "io.acme/tickets", "--credential-ref", "env:TICKETS_KEY", "tickets-2")
	if out := admin("catalog", "policy"); !strings.Contains(out, "on") {
		t.Errorf("catalog policy: %s", out)
	}
	owner("catalog", "only", "off")
	admin("upstreams", "create", "--gateway", "a-gateway", "--url", "https://elsewhere.test/mcp", "elsewhere")

	// Deleting an entry leaves its upstreams as they are.
	admin("catalog", "delete", r)
	if out := admin("upstreams", "list"); !strings.Contains(out, "https://mcp.acme.test/mcp (catalog io.acme/tickets@3.1.0)") {
		t.Errorf("the upstream changed with its deleted entry:\n%s", out)
	}
}
