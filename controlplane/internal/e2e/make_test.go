package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeTestRunsEveryModule: a failing step does not stop the ones after
// it, the status is a failure and the summary names it; and `make test` and
// `make lint` run their modules through that runner.
func TestMakeTestRunsEveryModule(t *testing.T) {
	ran := filepath.Join(t.TempDir(), "ran")
	cmd := exec.Command(filepath.Join(repoRoot, ".ci", "steps"), "first=echo failing; exit 3", "second=touch "+ran)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("a failed step: %v, want exit status 1\n%s", err, out)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Fatalf("the step after a failure did not run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "FAILED: first\n") {
		t.Fatalf("the summary does not name the failed step:\n%s", out)
	}
	if out, err := exec.Command(filepath.Join(repoRoot, ".ci", "steps"), "a=true", "b=true").CombinedOutput(); err != nil || !strings.Contains(string(out), "all steps passed: a b") {
		t.Fatalf("passing steps: %v\n%s", err, out)
	}

	for target, want := range map[string][]string{
		"test": {"vet:./dataplane=", "vet:./proto=", "test:.=", "test:dataplane="},
		"lint": {"buf=", "lint:.=", "lint:./dataplane=", "lint:./proto="},
	} {
		dry := exec.Command("make", "-n", "-s", target)
		dry.Dir = repoRoot
		out, err := dry.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		if !strings.Contains(string(out), ".ci/steps ") {
			t.Fatalf("make %s does not run its steps with .ci/steps:\n%s", target, out)
		}
		for _, w := range want {
			if !strings.Contains(string(out), `"`+w) {
				t.Errorf("make %s has no step %q:\n%s", target, w, out)
			}
		}
	}
}
