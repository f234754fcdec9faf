package pkgstore

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// moduleZip is a module zip as a Go module proxy serves it.
func moduleZip(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create("example.com/hello@v1.0.0/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestInstallGoModule(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go command builds Go modules: put it on PATH")
	}
	good := moduleZip(t, map[string]string{
		"go.mod":              "module example.com/hello\n\ngo 1.22\n",
		"cmd/hello/main.go":   "package main\n\nfunc main() { println(\"hello\") }\n",
		"cmd/hello/README.md": "a server",
	})
	sum, err := goSumOf(good)
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Value
	served.Store(good)
	var hits atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/example.com/hello/@v/v1.0.0.zip" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		_, _ = w.Write(served.Load().([]byte))
	}))
	t.Cleanup(proxy.Close)
	s := &Store{Dir: t.TempDir(), GoProxy: proxy.URL}
	spec := Spec{Ecosystem: "go", Name: "example.com/hello", Version: "v1.0.0", Integrity: sum, Bin: "cmd/hello"}

	// A zip that is not the one pinned is refused, never unzipped or built.
	served.Store(moduleZip(t, map[string]string{"go.mod": "module example.com/hello\n", "cmd/hello/main.go": "package main\n\nfunc main() {}\n"}))
	if _, err := s.Install(context.Background(), spec, ""); !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), sum) {
		t.Fatalf("tampered zip: %v", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(s.Dir, "go", "example.com+hello@*")); len(entries) != 0 {
		t.Fatalf("the tampered zip left %q", entries)
	}

	served.Store(good)
	got, err := s.Install(context.Background(), spec, "")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(got.Argv[0]).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("the built binary %q: %q %v", got.Argv, out, err)
	}
	if want := `{"dependencies":[],"ecosystem":"go","integrity":"` + sum + `","name":"example.com/hello","version":"v1.0.0"}`; string(got.Tree) != want || got.TreeSHA == "" {
		t.Errorf("tree %s, want %s", got.Tree, want)
	}
	// Again: from the store, its zip checked, not fetched.
	if again, err := s.Install(context.Background(), spec, ""); err != nil || again.TreeSHA != got.TreeSHA || hits.Load() != 2 {
		t.Fatalf("again: %+v %v, %d fetches", again, err, hits.Load())
	}
	if err := os.WriteFile(filepath.Join(got.Dir, goArchiveName), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install(context.Background(), spec, ""); !errors.Is(err, ErrIntegrity) {
		t.Errorf("tampered store: %v", err)
	}
}

func TestGoSpecValidate(t *testing.T) {
	const sum = "h1:KIvahhYqwtbeniWVPs3TcXEA7b8jEtwfBpOTAI+Urx4="
	ok := Spec{Ecosystem: "go", Name: "github.com/modelcontextprotocol/go-sdk", Version: "v1.8.0", Integrity: sum, Bin: "examples/server/hello"}
	if _, err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Spec){
		"a branch":        func(s *Spec) { s.Version = "main" },
		"a short version": func(s *Spec) { s.Version = "v1.8" },
		"an npm hash":     func(s *Spec) { s.Integrity = "sha512-" + strings.Repeat("A", 86) + "==" },
		"a bad path":      func(s *Spec) { s.Name = "not a module" },
		"a parent dir":    func(s *Spec) { s.Bin = "../other" },
		"an absolute dir": func(s *Spec) { s.Bin = "/examples" },
	} {
		s := ok
		mut(&s)
		if _, err := s.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, s)
		}
	}
}
