package dataplane_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the gateway lightweight: its production code must
// not link the control plane's storage or UI stack, nor the testing package.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./cmd/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"entgo.io/", "github.com/a-h/templ", "github.com/jackc/pgx", "modernc.org/sqlite", "github.com/portcullis-mcp/portcullis/ent", "github.com/portcullis-mcp/portcullis/controlplane"}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "testing" {
			t.Errorf("production code imports the testing package")
		}
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("the gateway depends on %s", pkg)
			}
		}
	}
}
