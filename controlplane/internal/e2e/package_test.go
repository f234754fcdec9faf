package e2e

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/changerequest"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// pinnedEverything is server-everything's version and archive integrity
// as e2e/package-lock.json pins them.
func pinnedEverything(t *testing.T) (version, integrity string) {
	t.Helper()
	var lock struct {
		Packages map[string]struct{ Version, Integrity string }
	}
	b, err := os.ReadFile(filepath.Join(e2eDir, "package-lock.json"))
	if err == nil {
		err = json.Unmarshal(b, &lock)
	}
	p := lock.Packages["node_modules/@modelcontextprotocol/server-everything"]
	if err != nil || p.Version == "" || p.Integrity == "" {
		t.Fatalf("server-everything in e2e/package-lock.json: %+v %v", p, err)
	}
	return p.Version, p.Integrity
}

// TestPackageUpstream runs server-everything as a package upstream through
// the built binaries, from a registry mirror: while the mirror serves a
// tampered archive, the gateway refuses it, the reason (both hashes)
// reaches the CLI and the archive is a change request; once it serves the real one, the gateway installs it,
// with its dependencies, in a store the stdio user cannot change, and runs
// it as that user.
func TestPackageUpstream(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the gateway runs packages as another user: run the tests as root, as make test does")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	version, integrity := pinnedEverything(t)
	const name = "@modelcontextprotocol/server-everything"
	archivePath := "/" + name + "/-/server-everything-" + version + ".tgz"

	// The mirror: npm's registry, but for server-everything's archive while tampered.
	const junk = "\x1f\x8b not the archive that was pinned"
	mirror, tampered, archiveFetches := tamperingMirror(t, "https://registry.npmjs.org", archivePath, junk)

	w := buildWorld(t)
	run := cliAs(t, runBinary, w.cp.PublicURL(), w.adminKeyA)
	run("upstreams", "create", "--gateway", "a-gateway", "--package", "npm:"+name+"@"+version, "--integrity", integrity, "everything", "--", "stdio")
	run("servers", "create", "--gateway", "a-gateway", "--upstreams", "everything", "main")
	if out := run("upstreams", "list"); !strings.Contains(out, "npm:"+name+"@"+version+" stdio") {
		t.Errorf("upstreams list does not show the package:\n%s", out)
	}
	sys := viewer.System(context.Background())
	token, err := w.cp.EnrollmentToken(sys, w.a.ID, w.aGateway, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	work := stdioUserDir(t, "package-upstream-")
	stdioDir, addr := filepath.Join(work, "servers"), freeAddr(t)
	g := startGateway(t, w.cp.AgentEndpoint(), filepath.Join(work, "gateway-data"), addr, "PORTCULLIS_ENROLL_TOKEN="+token,
		"PORTCULLIS_STDIO_ALLOW=npm:"+name, "PORTCULLIS_STDIO_USER=nobody", "PORTCULLIS_STDIO_DIR="+stdioDir,
		"PORTCULLIS_PACKAGE_REGISTRY="+mirror.URL)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.out)
		}
	})

	// Tampered: refused, with what was served and what was pinned.
	eventually(t, "the tampered archive refused", func() error {
		u, err := w.cp.DB.Upstream.Query().Where(upstream.Name("everything"), upstream.TenantID(w.a.ID)).Only(sys)
		if err != nil || !strings.Contains(u.LastError, "integrity mismatch") || !strings.Contains(u.LastError, integrity) {
			return fmt.Errorf("everything upstream: %v, %v", u, err)
		}
		return nil
	})
	if out := run("upstreams", "list"); !strings.Contains(out, "integrity mismatch") {
		t.Errorf("upstreams list does not say why the package is not running:\n%s", out)
	}
	if entries, _ := filepath.Glob(filepath.Join(stdioDir, ".packages", "npm", "*")); len(entries) != 0 {
		t.Errorf("the tampered archive left %q in the store", entries)
	}
	// It reaches the change workflow: a request whose diff is the served
	// integrity; rejected, it is not asked again.
	sum := sha512.Sum512([]byte(junk))
	servedCR := pendingPackageRequest(t, w, changerequest.KindPackageAdded, "")
	if out := run("changes", "show", servedCR.ID.String()); !strings.Contains(out, "sha512-"+base64.StdEncoding.EncodeToString(sum[:])) ||
		!strings.Contains(out, "not the pinned "+integrity) {
		t.Errorf("the served archive's request does not show what was served and pinned:\n%s", out)
	}
	run("changes", "reject", "--comment", "not what npm publishes", servedCR.ID.String())

	// The real archive: installed, and its dependency tree reported, but
	// not run until the tree is approved.
	tampered.Store(false)
	treeCR := pendingPackageRequest(t, w, changerequest.KindPackageAdded, "")
	if out := run("upstreams", "list"); !strings.Contains(out, "await approval") {
		t.Errorf("upstreams list does not say the package awaits approval:\n%s", out)
	}
	tree := run("changes", "show", treeCR.ID.String())
	if !strings.Contains(tree, `"@modelcontextprotocol/sdk@`) || !strings.Contains(tree, `"version": "`+version+`"`) {
		t.Errorf("the request does not show the package's dependencies:\n%s", tree)
	}
	run("changes", "approve", "--comment", "dependencies reviewed", treeCR.ID.String())

	// Approved: run as nobody, called through the gateway.
	pinWhenDiscovered(t, w.cp, w.a.ID, "everything", "echo")
	waitEnforced(t, w.cp, w.a.ID, w.aGateway, addr, "echo pinned")
	text, isErr, err := callText(t, "http://"+addr+"/mcp/main", "everything__echo", `{"message":"from a verified package"}`)
	if err != nil || isErr || !strings.Contains(text, "from a verified package") {
		t.Fatalf("echo: %q %v %v", text, isErr, err)
	}
	dirs, _ := filepath.Glob(filepath.Join(stdioDir, ".packages", "npm", "@modelcontextprotocol+server-everything@"+version+"-*"))
	if len(dirs) != 1 {
		t.Fatalf("package directories %q", dirs)
	}
	for _, p := range []string{dirs[0], filepath.Join(dirs[0], "dist", "index.js"), filepath.Join(dirs[0], "node_modules")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			t.Errorf("%s: owner %d, mode %v: the stdio user could change it", p, st.Uid, fi.Mode())
		}
	}
	runsAs(t, filepath.Join(dirs[0], "dist", "index.js"), nobody.Uid)
	// Later launches use the store (its archive checked again), not the mirror.
	fetches := archiveFetches.Load()
	if _, _, err := callText(t, "http://"+addr+"/mcp/main", "everything__echo", `{"message":"again"}`); err != nil {
		t.Fatal(err)
	}
	if got := archiveFetches.Load(); got != fetches {
		t.Errorf("the archive was fetched %d more times for a launch from the store", got-fetches)
	}

	// A version bump (here to the 2025 line, which adds express 4 and has zod 3 for 4) is a
	// change request whose diff is the dependency list; the new version runs
	// once it is approved.
	const bumped = "2025.8.18"
	run("upstreams", "update", "--gateway", "a-gateway", "--package", "npm:"+name+"@"+bumped, "--integrity", registryIntegrity(t, mirror.URL, name, bumped), "everything")
	bumpCR := pendingPackageRequest(t, w, changerequest.KindPackageChanged, treeCR.ToSha256)
	diff := run("changes", "show", bumpCR.ID.String())
	for _, want := range []string{`-   "version": "` + version + `"`, `+   "version": "` + bumped + `"`, `+     "express@4.`, `-     "zod@4.`, `+     "zod@3.`} {
		if !strings.Contains(diff, want) {
			t.Errorf("the bump's diff has no %q:\n%s", want, diff)
		}
	}
	run("changes", "approve", bumpCR.ID.String())
	eventuallyWithin(t, 3*time.Minute, "the bumped package running", func() error {
		u, err := w.cp.DB.Upstream.Query().Where(upstream.Name("everything"), upstream.TenantID(w.a.ID)).Only(sys)
		if err != nil || !u.Reachable || u.LastError != "" {
			return fmt.Errorf("everything upstream: %v, %v", u, err)
		}
		if dirs, _ := filepath.Glob(filepath.Join(stdioDir, ".packages", "npm", "@modelcontextprotocol+server-everything@"+bumped+"-*")); len(dirs) != 1 {
			return fmt.Errorf("package directories %q", dirs)
		}
		return nil
	})
}

// pendingPackageRequest waits for the pending request of kind about the
// package upstream's dependency tree, from the pinned tree from (or none).
func pendingPackageRequest(t *testing.T, w *world, kind changerequest.Kind, from string) *ent.ChangeRequest {
	t.Helper()
	var cr *ent.ChangeRequest
	eventuallyWithin(t, 5*time.Minute, "a "+string(kind)+" request for the package's tree", func() error {
		var err error
		cr, err = w.cp.DB.ChangeRequest.Query().Where(changerequest.TenantID(w.a.ID), changerequest.StatusEQ(changerequest.StatusPending),
			changerequest.KindEQ(kind), changerequest.FromSha256(from), changerequest.HasToolWith(tool.KindEQ(tool.KindPackage))).Only(viewer.System(context.Background()))
		return err
	})
	return cr
}

// registryIntegrity is the integrity of a version's archive, as the registry gives it.
func registryIntegrity(t *testing.T, registry, name, version string) string {
	t.Helper()
	res, err := http.Get(registry + "/" + name + "/" + version)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc struct {
		Dist struct{ Integrity string }
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil || !strings.HasPrefix(doc.Dist.Integrity, "sha512-") {
		t.Fatalf("%s@%s from %s: %s %+v %v", name, version, registry, res.Status, doc, err)
	}
	return doc.Dist.Integrity
}

// TestGoModuleUpstream runs the MCP Go SDK's hello example as a Go module
// upstream through the built binaries, from a module proxy mirror: a
// tampered zip is refused with both hashes; the real one is built (its
// dependencies checked against the module's go.sum) and runs, as nobody,
// once the tree its binary was built from is approved.
func TestGoModuleUpstream(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the gateway runs packages as another user: run the tests as root, as make test does")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	const (
		module  = "github.com/modelcontextprotocol/go-sdk"
		version = "v1.8.0"
		goSum   = "h1:KIvahhYqwtbeniWVPs3TcXEA7b8jEtwfBpOTAI+Urx4=" // its go.sum line, as sum.golang.org records it
		zipPath = "/" + module + "/@v/" + version + ".zip"
	)
	mirror, tampered, _ := tamperingMirror(t, "https://proxy.golang.org", zipPath, "PK not the module that was pinned")

	w := buildWorld(t)
	run := cliAs(t, runBinary, w.cp.PublicURL(), w.adminKeyA)
	run("upstreams", "create", "--gateway", "a-gateway", "--package", "go:"+module+"@"+version, "--integrity", goSum, "--bin", "examples/server/hello", "hello")
	run("servers", "create", "--gateway", "a-gateway", "--upstreams", "hello", "main")
	sys := viewer.System(context.Background())
	token, err := w.cp.EnrollmentToken(sys, w.a.ID, w.aGateway, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	work := stdioUserDir(t, "go-upstream-")
	stdioDir, addr := filepath.Join(work, "servers"), freeAddr(t)
	g := startGateway(t, w.cp.AgentEndpoint(), filepath.Join(work, "gateway-data"), addr, "PORTCULLIS_ENROLL_TOKEN="+token,
		"PORTCULLIS_STDIO_ALLOW=go:"+module+"@"+version, "PORTCULLIS_STDIO_USER=nobody", "PORTCULLIS_STDIO_DIR="+stdioDir,
		"PORTCULLIS_GO_PROXY="+mirror.URL)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.out)
		}
	})

	eventually(t, "the tampered zip refused", func() error {
		u, err := w.cp.DB.Upstream.Query().Where(upstream.Name("hello"), upstream.TenantID(w.a.ID)).Only(sys)
		if err != nil || !strings.Contains(u.LastError, "integrity mismatch") || !strings.Contains(u.LastError, goSum) {
			return fmt.Errorf("hello upstream: %v, %v", u, err)
		}
		return nil
	})

	// The real zip: built, and the tree its binary was built from awaits approval.
	tampered.Store(false)
	treeCR := pendingPackageRequest(t, w, changerequest.KindPackageAdded, "")
	tree := run("changes", "show", treeCR.ID.String())
	if !strings.Contains(tree, `"github.com/google/jsonschema-go@v`) || !strings.Contains(tree, `"ecosystem": "go"`) {
		t.Errorf("the request does not show the modules the binary was built from:\n%s", tree)
	}
	run("changes", "approve", treeCR.ID.String())
	pinWhenDiscovered(t, w.cp, w.a.ID, "hello", "greet")
	waitEnforced(t, w.cp, w.a.ID, w.aGateway, addr, "greet pinned")
	text, isErr, err := callText(t, "http://"+addr+"/mcp/main", "hello__greet", `{"name":"a verified module"}`)
	if err != nil || isErr || text != "Hi a verified module" {
		t.Fatalf("greet: %q %v %v", text, isErr, err)
	}
	bins, _ := filepath.Glob(filepath.Join(stdioDir, ".packages", "go", "github.com+modelcontextprotocol+go-sdk@"+version+"-*", ".portcullis-bin"))
	if len(bins) != 1 {
		t.Fatalf("built binaries %q", bins)
	}
	runsAs(t, bins[0], nobody.Uid)
}

// tamperingMirror is a package mirror in front of origin that serves junk
// for archivePath while tampered is set (it starts set), and counts the
// archive's fetches.
func tamperingMirror(t *testing.T, origin, archivePath, junk string) (mirror *httptest.Server, tampered *atomic.Bool, fetches *atomic.Int32) {
	t.Helper()
	to, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	tampered, fetches = new(atomic.Bool), new(atomic.Int32)
	tampered.Store(true)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(to)
		r.Out.Host = to.Host
	}}
	mirror = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == archivePath {
			fetches.Add(1)
			if tampered.Load() {
				_, _ = w.Write([]byte(junk))
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(mirror.Close)
	return mirror, tampered, fetches
}

// runsAs checks that at least one process runs the file at path, and that
// every one runs as uid.
func runsAs(t *testing.T, path, uid string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	found := 0
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(cmdline), path) {
			continue
		}
		fi, err := os.Stat(filepath.Dir(p))
		if err != nil {
			continue
		}
		found++
		if got := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); got != uid {
			t.Errorf("%s runs as uid %s, want %s", filepath.Dir(p), got, uid)
		}
	}
	if found == 0 {
		t.Errorf("no process runs %s", path)
	}
}
