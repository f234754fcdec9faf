package pkgstore

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/canonical"
)

// tgz packs files (path → content) as npm does, below "package/".
func tgz(t *testing.T, files map[string]string, extra ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		mode := int64(0o644)
		if strings.HasPrefix(name, "bin/") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: "package/" + name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range extra {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// registry serves archives by path, counting requests.
func registry(t *testing.T, archives map[string][]byte) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, ok := archives[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

const manifestJSON = `{"name":"@acme/mcp-demo","version":"1.2.3","bin":{"mcp-demo":"bin/server.js"}}`

func TestInstallVerifiesAndKeeps(t *testing.T) {
	good := tgz(t, map[string]string{"package.json": manifestJSON, "bin/server.js": "console.log(1)"})
	srv, hits := registry(t, map[string][]byte{"/@acme/mcp-demo/-/mcp-demo-1.2.3.tgz": good})
	s := &Store{Dir: t.TempDir(), Registry: srv.URL}
	spec := Spec{Ecosystem: "npm", Name: "@acme/mcp-demo", Version: "1.2.3", Integrity: integrityOf(good)}
	got, err := s.Install(context.Background(), spec, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Argv) != 2 || got.Argv[0] != "node" || got.Argv[1] != filepath.Join(got.Dir, "bin", "server.js") {
		t.Fatalf("argv %q", got.Argv)
	}
	if b, err := os.ReadFile(got.Argv[1]); err != nil || string(b) != "console.log(1)" {
		t.Fatalf("executable: %q %v", b, err)
	}
	for _, p := range []string{got.Dir, got.Argv[1]} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o005 != 0o005 && fi.Mode().Perm()&0o004 == 0 {
			t.Errorf("%s is not readable by others: %v %v", p, fi.Mode(), err)
		}
	}
	// Launched again: from the store, its kept archive checked, no fetch.
	if again, err := s.Install(context.Background(), spec, ""); err != nil || again.Dir != got.Dir {
		t.Fatalf("again: %+v %v", again, err)
	}
	if hits.Load() != 1 {
		t.Errorf("%d fetches, want 1", hits.Load())
	}
	// The kept archive changed on disk: refused, not run.
	if err := os.WriteFile(filepath.Join(got.Dir, archiveName), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install(context.Background(), spec, ""); !errors.Is(err, ErrIntegrity) {
		t.Errorf("tampered store: %v", err)
	}
}

func TestRedactedRegistry(t *testing.T) {
	if got := redacted("https://ci:s3cret@mirror.example/npm/"); strings.Contains(got, "s3cret") || !strings.Contains(got, "mirror.example/npm/") {
		t.Errorf("redacted = %q", got)
	}
}

func TestInstallRefusesWhatIsNotPinned(t *testing.T) {
	good := tgz(t, map[string]string{"package.json": manifestJSON, "bin/server.js": "console.log(1)"})
	evil := tgz(t, map[string]string{"package.json": manifestJSON, "bin/server.js": "require('child_process')"})
	srv, _ := registry(t, map[string][]byte{"/@acme/mcp-demo/-/mcp-demo-1.2.3.tgz": evil})
	s := &Store{Dir: t.TempDir(), Registry: srv.URL}
	spec := Spec{Ecosystem: "npm", Name: "@acme/mcp-demo", Version: "1.2.3", Integrity: integrityOf(good)}
	_, err := s.Install(context.Background(), spec, "")
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), integrityOf(evil)) || !strings.Contains(err.Error(), spec.Integrity) {
		t.Fatalf("want an integrity error naming both hashes, got %v", err)
	}
	// What is reported for approval: the package with the served integrity,
	// canonical and hashed as items are.
	var served *ServedError
	if !errors.As(err, &served) || served.Served != integrityOf(evil) || served.From != srv.URL {
		t.Fatalf("served: %+v", served)
	}
	tree, sha, err := served.Tree()
	if err != nil || sha != canonical.Hash(tree) {
		t.Fatal(sha, err)
	}
	var doc map[string]string
	if err := json.Unmarshal(tree, &doc); err != nil || doc["integrity"] != integrityOf(evil) || doc["version"] != "1.2.3" ||
		!strings.Contains(doc["refused"], spec.Integrity) || !strings.Contains(doc["refused"], "not unpack") {
		t.Errorf("served tree %s: %v", tree, err)
	}
	// Nothing of it was unpacked.
	entries, _ := os.ReadDir(filepath.Join(s.Dir, "npm"))
	if len(entries) != 0 {
		t.Errorf("left %d entries in the store", len(entries))
	}
	// Not in the registry: the registry's answer, not a hash error.
	spec.Version = "9.9.9"
	if _, err := s.Install(context.Background(), spec, ""); err == nil || errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing version: %v", err)
	}
}

func TestInstallRefusesHostileArchives(t *testing.T) {
	for name, archive := range map[string][]byte{
		"escapes": tgz(t, map[string]string{"package.json": manifestJSON, "../../etc/x": "x"}),
		"symlink": tgz(t, map[string]string{"package.json": manifestJSON},
			&tar.Header{Name: "package/bin/server.js", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}),
		"other package": tgz(t, map[string]string{"package.json": `{"name":"@acme/other","version":"1.2.3","bin":"x.js"}`}),
		"bin outside":   tgz(t, map[string]string{"package.json": `{"name":"@acme/mcp-demo","version":"1.2.3","bin":"../../x.js"}`}),
	} {
		t.Run(name, func(t *testing.T) {
			srv, _ := registry(t, map[string][]byte{"/@acme/mcp-demo/-/mcp-demo-1.2.3.tgz": archive})
			s := &Store{Dir: t.TempDir(), Registry: srv.URL}
			spec := Spec{Ecosystem: "npm", Name: "@acme/mcp-demo", Version: "1.2.3", Integrity: integrityOf(archive)}
			if got, err := s.Install(context.Background(), spec, ""); err == nil {
				t.Fatalf("installed %+v", got)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Spec{Ecosystem: "npm", Name: "@modelcontextprotocol/server-everything", Version: "2026.1.14", Integrity: integrityOf([]byte("x"))}
	if _, err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Spec){
		"ecosystem":    func(s *Spec) { s.Ecosystem = "pypi" },
		"range":        func(s *Spec) { s.Version = "^1.2.3" },
		"tag":          func(s *Spec) { s.Version = "latest" },
		"name":         func(s *Spec) { s.Name = "../etc" },
		"upper":        func(s *Spec) { s.Name = "Server" },
		"sha1":         func(s *Spec) { s.Integrity = "sha1-AAAA" },
		"short digest": func(s *Spec) { s.Integrity = "sha512-AAAA" },
		"bin path":     func(s *Spec) { s.Bin = "../x" },
	} {
		s := ok
		mutate(&s)
		if _, err := s.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, s)
		}
	}
}

func TestDependencyTree(t *testing.T) {
	spec := Spec{Ecosystem: "npm", Name: "@acme/mcp-demo", Version: "1.2.3", Integrity: "sha512-x"}
	dir := t.TempDir()
	// No dependencies and no lockfile: the package alone.
	tree, err := dependencyTree(dir, spec, false)
	if err != nil || string(tree) != `{"dependencies":[],"ecosystem":"npm","integrity":"sha512-x","name":"@acme/mcp-demo","version":"1.2.3"}` {
		t.Fatalf("%s %v", tree, err)
	}
	if _, err := dependencyTree(dir, spec, true); err == nil {
		t.Fatal("dependencies without a lockfile were accepted")
	}
	lock := `{"lockfileVersion":3,"packages":{
		"":{"name":"@acme/mcp-demo","version":"1.2.3"},
		"node_modules/zod":{"version":"3.23.8","integrity":"sha512-z"},
		"node_modules/@scope/a":{"version":"1.0.0","integrity":"sha512-a"},
		"node_modules/@scope/a/node_modules/zod":{"version":"3.22.0","integrity":"sha512-y"},
		"node_modules/b/node_modules/zod":{"version":"3.23.8","integrity":"sha512-z"},
		"node_modules/typescript":{"version":"5.0.0","integrity":"sha512-t","dev":true},
		"node_modules/local":{"resolved":"packages/local","link":true}}}`
	if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), []byte(lock), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err = dependencyTree(dir, spec, true)
	want := `{"dependencies":["@scope/a@1.0.0 sha512-a","zod@3.22.0 sha512-y","zod@3.23.8 sha512-z"],"ecosystem":"npm","integrity":"sha512-x","name":"@acme/mcp-demo","version":"1.2.3"}`
	if err != nil || string(tree) != want {
		t.Fatalf("got  %s %v\nwant %s", tree, err, want)
	}
	// A shrinkwrap the package ships is what npm installed from.
	if err := os.WriteFile(filepath.Join(dir, "npm-shrinkwrap.json"), []byte(`{"lockfileVersion":1,"dependencies":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := dependencyTree(dir, spec, true); err == nil || !strings.Contains(err.Error(), "lockfileVersion 1") {
		t.Fatalf("old shrinkwrap: %v", err)
	}
}

// TestInstallResolvesAWantedTreeOnce: a registry that resolves a
// dependency differently over time (a fake npm that installs zod 3.0.N on
// its Nth run) leaves one install per tree side by side; a wanted tree that
// is not kept is resolved afresh once, and taken when it comes out so.
func TestInstallResolvesAWantedTreeOnce(t *testing.T) {
	work := t.TempDir()
	npm := filepath.Join(work, "npm")
	script := `#!/bin/sh
n=$(cat "` + work + `/runs" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "` + work + `/runs"
printf '{"lockfileVersion":3,"packages":{"":{},"node_modules/zod":{"version":"3.0.%s","integrity":"sha512-z%s"}}}' $n $n > package-lock.json
`
	if err := os.WriteFile(npm, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	runs := func() string {
		b, _ := os.ReadFile(filepath.Join(work, "runs"))
		return strings.TrimSpace(string(b))
	}
	archive := tgz(t, map[string]string{"package.json": `{"name":"@acme/mcp-demo","version":"1.2.3","bin":{"mcp-demo":"bin/server.js"},"dependencies":{"zod":"^3.0.0"}}`, "bin/server.js": "1"})
	srv, hits := registry(t, map[string][]byte{"/@acme/mcp-demo/-/mcp-demo-1.2.3.tgz": archive})
	s := &Store{Dir: t.TempDir(), Registry: srv.URL, NPM: npm}
	spec := Spec{Ecosystem: "npm", Name: "@acme/mcp-demo", Version: "1.2.3", Integrity: integrityOf(archive)}
	treeWith := func(n string) string {
		tree, err := treeOf(spec, []string{"zod@3.0." + n + " sha512-z" + n})
		if err != nil {
			t.Fatal(err)
		}
		return canonical.Hash(tree)
	}

	first, err := s.Install(context.Background(), spec, "")
	if err != nil || first.TreeSHA != treeWith("1") || runs() != "1" {
		t.Fatalf("first install: %s %v, npm ran %s times", first.Tree, err, runs())
	}
	// Approved since: the tree the registry resolves now (zod 3.0.2).
	second, err := s.Install(context.Background(), spec, treeWith("2"))
	if err != nil || second.TreeSHA != treeWith("2") || second.Dir == first.Dir || runs() != "2" {
		t.Fatalf("wanted tree: %s %v, npm ran %s times", second.Tree, err, runs())
	}
	// Both are kept; wanting either takes it from the store.
	for _, in := range []Installed{first, second} {
		if got, err := s.Install(context.Background(), spec, in.TreeSHA); err != nil || got.Dir != in.Dir {
			t.Fatalf("kept %s: %+v %v", in.Dir, got, err)
		}
	}
	// A tree the registry no longer resolves to: one more try, then what is kept.
	for range 3 {
		got, err := s.Install(context.Background(), spec, treeWith("9"))
		if err != nil || got.TreeSHA == treeWith("9") {
			t.Fatalf("unreachable tree: %s %v", got.Tree, err)
		}
	}
	if runs() != "3" || hits.Load() != 3 {
		t.Errorf("npm ran %s times and the archive was fetched %d times, want 3 each", runs(), hits.Load())
	}
}
