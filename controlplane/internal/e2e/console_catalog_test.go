package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent/catalogentry"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// TestConsoleCatalog imports a server.json, approves an entry someone else
// added, and adds an upstream from the catalog, in Chromium.
func TestConsoleCatalog(t *testing.T) {
	cp := startConsole(t)
	sys := viewer.System(context.Background())
	ten, err := cp.Tenants.CreateTenant(sys, "Acme", "acme", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.IDs.Invite(sys, ten.ID, alice.Email, viewer.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Tenants.CreateGateway(sys, ten.ID, "cat-gw"); err != nil {
		t.Fatal(err)
	}
	version, integrity := pinnedEverything(t)
	const name = "io.github.modelcontextprotocol/everything"
	serverJSON := `{"name":"` + name + `","description":"Exercises every MCP feature","version":"` + version + `",
		"packages":[{"registryType":"npm","identifier":"@modelcontextprotocol/server-everything","version":"` + version + `","transport":{"type":"stdio"},
		"packageArguments":[{"type":"positional","value":"stdio"}]}]}`

	b := browser(t)
	base := cp.PublicURL()
	signIn(t, b, base, alice)

	// Imported by alice: pending, and hers to wait on, not to approve.
	run(t, b, "import a server.json",
		chromedp.Navigate(base+"/catalog"),
		chromedp.WaitVisible(tid("no-catalog")),
		chromedp.SetValue(tid("catalog-json"), serverJSON),
		chromedp.SetValue(tid("catalog-integrity"), integrity),
		chromedp.Click(tid("catalog-import")),
		chromedp.WaitVisible(tid("catalog")),
	)
	row := tid("catalog-" + name + "@" + version)
	if got := textOf(t, b, row); !strings.Contains(got, "npm:@modelcontextprotocol/server-everything@"+version+" stdio") || !strings.Contains(got, "pending") {
		t.Fatalf("imported entry: %q", got)
	}
	run(t, b, "approve her own entry", chromedp.Click(tid("catalog-approve-"+name+"@"+version)), chromedp.WaitVisible(tid("error")))
	if got := textOf(t, b, tid("error")); !strings.Contains(got, "someone else must approve") {
		t.Fatalf("self-approval: %q", got)
	}

	// Another person approves it; alice approves a remote someone else added.
	reviewerKey, _, err := cp.IDs.CreateAPIKey(sys, ten.ID, "reviewer", viewer.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	reviewer := cliAs(t, runBinary, base, reviewerKey)
	e, err := cp.DB.CatalogEntry.Query().Where(catalogentry.TenantID(ten.ID), catalogentry.Name(name)).Only(sys)
	if err != nil {
		t.Fatal(err)
	}
	reviewer("catalog", "approve", e.ID.String())
	remote := filepath.Join(t.TempDir(), "remote.json")
	if err := os.WriteFile(remote, []byte(`{"name":"io.acme/tickets","version":"3.1.0","description":"Tickets","remotes":[{"type":"streamable-http","url":"https://mcp.acme.test/mcp"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	reviewer("catalog", "import", remote)
	run(t, b, "approve the remote",
		chromedp.Navigate(base+"/catalog"),
		chromedp.Click(tid("catalog-approve-io.acme/tickets@3.1.0")),
		chromedp.WaitVisible(tid("notice")),
	)
	if got := textOf(t, b, tid("catalog-io.acme/tickets@3.1.0")); !strings.Contains(got, "approved") || !strings.Contains(got, "approved by") {
		t.Fatalf("remote after approval: %q", got)
	}
	screenshot(t, b, "20-catalog")

	// The owner makes the catalog the only way in: a URL upstream is refused.
	run(t, b, "catalog only",
		chromedp.Navigate(base+"/settings"),
		chromedp.Click(tid("catalog-only")),
		chromedp.Click(tid("catalog-only-save")),
		chromedp.WaitVisible(tid("notice")),
		chromedp.Navigate(base+"/upstreams"),
		chromedp.SetValue(tid("upstream-name"), "elsewhere"),
		chromedp.SetValue(tid("upstream-url"), "https://elsewhere.test/mcp"),
		chromedp.Click(tid("upstream-create")),
		chromedp.WaitVisible(tid("error")),
	)
	if got := textOf(t, b, tid("error")); !strings.Contains(got, "only servers from its approved catalog") {
		t.Fatalf("a URL upstream under catalog only: %q", got)
	}

	// An upstream from the catalog, in the upstream form.
	run(t, b, "add an upstream from the catalog",
		chromedp.Navigate(base+"/upstreams"),
		chromedp.SetValue(tid("upstream-name"), "everything"),
		chromedp.SetValue(tid("upstream-transport"), "catalog"),
		chromedp.SetValue(tid("upstream-catalog"), name+"@"+version),
		chromedp.Click(tid("upstream-create")),
		chromedp.WaitVisible(tid("upstreams")),
	)
	if got := textOf(t, b, tid("upstreams")); !strings.Contains(got, "(catalog "+name+"@"+version+")") {
		t.Fatalf("upstreams: %q", got)
	}
	u, err := cp.DB.Upstream.Query().Where(upstream.TenantID(ten.ID), upstream.Name("everything")).Only(sys)
	if err != nil || u.Transport != upstream.TransportPackage || u.PackageIntegrity != integrity || strings.Join(u.Args, " ") != "stdio" {
		t.Fatalf("upstream from the catalog: %+v %v", u, err)
	}
	// Its edit page shows where it comes from; saving keeps it so.
	run(t, b, "edit the catalog upstream",
		chromedp.Click(tid("upstream-edit-everything")),
		chromedp.WaitVisible(tid("upstream-title")),
	)
	if got := inputValue(t, b, "upstream-transport"); got != "catalog" {
		t.Fatalf("the edit form shows transport %q", got)
	}
	run(t, b, "save it", chromedp.Click(tid("upstream-save")), chromedp.WaitVisible(tid("upstreams")))
	if u, err = cp.DB.Upstream.Query().Where(upstream.ID(u.ID)).Only(sys); err != nil || u.CatalogEntry != name+"@"+version {
		t.Fatalf("after saving: %+v %v", u, err)
	}

	// A package upstream by hand (catalog only off again), and its edit form.
	run(t, b, "catalog only off",
		chromedp.Navigate(base+"/settings"),
		chromedp.Click(tid("catalog-only")),
		chromedp.Click(tid("catalog-only-save")),
		chromedp.WaitVisible(tid("notice")),
	)
	run(t, b, "add a package upstream",
		chromedp.Navigate(base+"/upstreams"),
		chromedp.SetValue(tid("upstream-name"), "pinned"),
		chromedp.SetValue(tid("upstream-transport"), "package"),
		chromedp.SetValue(tid("upstream-package"), "npm:@modelcontextprotocol/server-everything@"+version),
		chromedp.SetValue(tid("upstream-integrity"), integrity),
		chromedp.SetValue(tid("upstream-args"), "stdio"),
		chromedp.Click(tid("upstream-create")),
		chromedp.WaitVisible(tid("upstream-edit-pinned")),
		chromedp.Click(tid("upstream-edit-pinned")),
		chromedp.WaitVisible(tid("upstream-title")),
	)
	if got := inputValue(t, b, "upstream-package") + " " + inputValue(t, b, "upstream-integrity"); got != "npm:@modelcontextprotocol/server-everything@"+version+" "+integrity {
		t.Fatalf("the edit form shows %q", got)
	}
	run(t, b, "a package with a bad integrity",
		chromedp.SetValue(tid("upstream-integrity"), "sha512-tooshort"),
		chromedp.Click(tid("upstream-save")),
		chromedp.WaitVisible(tid("error")),
	)
	if got := textOf(t, b, tid("error")); !strings.Contains(got, "integrity") {
		t.Fatalf("saving with a bad integrity: %q", got)
	}

	// Once a gateway reported its dependency tree, the upstream links to it.
	pinned, err := cp.DB.Upstream.Query().Where(upstream.TenantID(ten.ID), upstream.Name("pinned")).Only(sys)
	if err != nil {
		t.Fatal(err)
	}
	def := []byte(`{"dependencies":["zod@4.6.7 sha512-g8W2D2kU6a8untc053fX1uVBKzM7yqAxW/3zwk83+6RyF2+SKOuV+c0wBDhUwzV1PaGapmZH+rmcUzPf+3CGwg=="],"ecosystem":"npm","integrity":"` + integrity + `","name":"@modelcontextprotocol/server-everything","version":"` + version + `"}`)
	sha := fmt.Sprintf("%x", sha256.Sum256(def))
	tree, err := cp.DB.Tool.Create().SetTenantID(ten.ID).SetUpstreamID(pinned.ID).SetKind(tool.KindPackage).SetName("npm:@modelcontextprotocol/server-everything").SetLiveSha256(sha).Save(sys)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.DB.ToolVersion.Create().SetTenantID(ten.ID).SetToolID(tree.ID).SetSha256(sha).SetDefinition(def).Exec(sys); err != nil {
		t.Fatal(err)
	}
	run(t, b, "the upstream's dependencies",
		chromedp.Navigate(base+"/upstreams"),
		chromedp.WaitVisible(tid("upstream-tree-pinned")),
	)
	if got := textOf(t, b, tid("upstreams")); !strings.Contains(got, "dependencies awaiting approval") {
		t.Fatalf("upstreams: %q", got)
	}
	run(t, b, "open them", chromedp.Click(tid("upstream-tree-pinned")), chromedp.WaitVisible(tid("tool-version")))
	if got := textOf(t, b, tid("tool-version")); !strings.Contains(got, "zod@4.6.7") {
		t.Fatalf("the tree's page: %q", got)
	}
}
