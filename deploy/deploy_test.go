// Package deploy holds the Helm charts, systemd units and Dockerfiles; its
// test checks them against the binaries they run: `helm lint` and
// `helm template` on default and production values, the guard rails that
// refuse values which cannot work, the manifests' probes, security context
// and disruption budget, every PORTCULLIS_* variable and flag they set being
// a real flag, and `systemd-analyze verify` on the units.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// helm finds the pinned helm that `make test` installs into .bin.
func helm(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../.bin/helm"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("helm")
	if err != nil {
		t.Fatal("helm is not installed: run the tests with `make test` (it installs the pinned helm into .bin)")
	}
	return p
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	var out, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		return out.String() + stderr.String(), fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return out.String() + stderr.String(), nil
}

// render runs helm template and decodes every manifest.
func render(t *testing.T, chart string, args ...string) []map[string]any {
	t.Helper()
	out, err := run(t, helm(t), append([]string{"template", "rel", filepath.Join("helm", chart), "--namespace", "mcp"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template %s produced invalid YAML: %v", chart, err)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	return docs
}

func kinds(docs []map[string]any) []string {
	var out []string
	for _, d := range docs {
		out = append(out, d["kind"].(string))
	}
	slices.Sort(out)
	return out
}

func find(t *testing.T, docs []map[string]any, kind string) map[string]any {
	t.Helper()
	for _, d := range docs {
		if d["kind"] == kind {
			return d
		}
	}
	t.Fatalf("no %s rendered (got %v)", kind, kinds(docs))
	return nil
}

// get walks a decoded manifest: get(m, "spec", "template", 0, "name").
func get(m any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, ok := m.(map[string]any)
			if !ok {
				return nil
			}
			m = mm[k]
		case int:
			s, ok := m.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			m = s[k]
		}
	}
	return m
}

// envNames are the container's environment variable names.
func envNames(container any) []string {
	var out []string
	for _, e := range get(container, "env").([]any) {
		out = append(out, get(e, "name").(string))
	}
	return out
}

// flagsOf lists the flags a binary documents in -h.
func flagsOf(t *testing.T, bin string, args ...string) map[string]bool {
	t.Helper()
	cmd := exec.Command(bin, append(args, "-h")...)
	out, _ := cmd.CombinedOutput() // -h exits non-zero with the usage
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-{1,2}([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 5 {
		t.Fatalf("%s %v -h listed %d flags:\n%s", bin, args, len(flags), out)
	}
	return flags
}

// envFlag maps PORTCULLIS_UPSTREAM_TIMEOUT to upstream-timeout.
func envFlag(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "PORTCULLIS_")), "_", "-")
}

type binaries struct{ controlPlane, gateway string }

// build compiles both binaries the way the Dockerfiles do (static, trimmed).
func build(t *testing.T) binaries {
	t.Helper()
	dir := t.TempDir()
	b := binaries{controlPlane: filepath.Join(dir, "portcullis"), gateway: filepath.Join(dir, "portcullis-gateway")}
	for _, c := range []struct{ dir, out, pkg string }{
		{"..", b.controlPlane, "./controlplane/cmd/portcullis"},
		{"../dataplane", b.gateway, "./cmd/portcullis-gateway"},
	} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", c.out, c.pkg)
		cmd.Dir = c.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if c.dir == "../dataplane" {
			cmd.Env = append(cmd.Env, "GOWORK=off")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("static build of %s (as in the Dockerfile): %v\n%s", c.pkg, err, out)
		}
	}
	return b
}

func TestDeploy(t *testing.T) {
	bins := build(t)
	cpFlags := flagsOf(t, bins.controlPlane, "serve")
	gwFlags := flagsOf(t, bins.gateway)
	checkEnv := func(t *testing.T, c any, flags map[string]bool) {
		t.Helper()
		for _, name := range envNames(c) {
			if strings.HasPrefix(name, "PORTCULLIS_") && !flags[envFlag(name)] {
				t.Errorf("the chart sets %s, but the binary has no --%s flag", name, envFlag(name))
			}
		}
	}

	t.Run("lint", func(t *testing.T) {
		for _, c := range []struct {
			chart string
			args  []string
		}{
			{"portcullis", nil},
			{"portcullis", []string{"-f", "helm/portcullis/ci/ha-values.yaml"}},
			{"portcullis-gateway", []string{"--set", "controlPlane=cp.example.com:7443", "--set", "enrollment.token=pcgw1.x"}},
			{"portcullis-gateway", []string{"-f", "helm/portcullis-gateway/ci/ha-values.yaml"}},
		} {
			if out, err := run(t, helm(t), append([]string{"lint", "--strict", filepath.Join("helm", c.chart)}, c.args...)...); err != nil {
				t.Errorf("helm lint %s %v:\n%s", c.chart, c.args, out)
			}
		}
	})

	t.Run("values that cannot work are refused", func(t *testing.T) {
		for _, c := range []struct {
			chart string
			args  []string
			want  string
		}{
			{"portcullis-gateway", nil, "controlPlane is required"},
			{"portcullis-gateway", []string{"--set", "controlPlane=cp:7443", "--set", "replicaCount=3"}, "needs redis.url"},
			{"portcullis-gateway", []string{"--set", "controlPlane=cp:7443", "--set", "enrollment.token=a", "--set", "enrollment.existingSecret=b"}, "not both"},
			{"portcullis", []string{"--set", "replicaCount=2"}, "needs PostgreSQL"},
			{"portcullis", []string{"--set", "replicaCount=2", "--set", "database.url=postgres://db/p"}, "needs Redis"},
			{"portcullis", []string{"--set", "replicaCount=2", "--set", "database.url=postgres://db/p", "--set", "redis.url=redis://r"}, "ca.existingSecret"},
			{"portcullis", []string{"--set", "oidc.issuer=https://idp", "--set", "oidc.clientID=c"}, "needs publicURL"},
		} {
			out, err := run(t, helm(t), append([]string{"template", "rel", filepath.Join("helm", c.chart)}, c.args...)...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("helm template %s %v: err %v, output should say %q:\n%s", c.chart, c.args, err, c.want, out)
			}
		}
	})

	t.Run("gateway: stdio upstreams only when allowed, with the capabilities to switch users", func(t *testing.T) {
		c := get(find(t, render(t, "portcullis-gateway", "--set", "controlPlane=cp:7443"), "StatefulSet"), "spec", "template", "spec", "containers", 0)
		if slices.Contains(envNames(c), "PORTCULLIS_STDIO_ALLOW") || get(c, "securityContext", "capabilities", "add") != nil {
			t.Errorf("stdio allowed by default: env %v, capabilities %v", envNames(c), get(c, "securityContext", "capabilities"))
		}
		c = get(find(t, render(t, "portcullis-gateway", "--set", "controlPlane=cp:7443", "--set", "stdio.allow=npx -y @modelcontextprotocol/server-everything@2026.8.31"), "StatefulSet"),
			"spec", "template", "spec", "containers", 0)
		for _, want := range []string{"PORTCULLIS_STDIO_ALLOW", "PORTCULLIS_STDIO_USER", "PORTCULLIS_STDIO_DIR"} {
			if !slices.Contains(envNames(c), want) {
				t.Errorf("env lacks %s: %v", want, envNames(c))
			}
		}
		if fmt.Sprint(get(c, "securityContext", "capabilities")) != "map[add:[SETUID SETGID] drop:[ALL]]" {
			t.Errorf("capabilities %v, want SETUID and SETGID alone", get(c, "securityContext", "capabilities"))
		}
		checkEnv(t, c, gwFlags)
	})

	t.Run("gateway: replicas with identity, probes, budget, policy and credentials", func(t *testing.T) {
		docs := render(t, "portcullis-gateway", "-f", "helm/portcullis-gateway/ci/ha-values.yaml")
		if got := strings.Join(kinds(docs), ","); got != "NetworkPolicy,PodDisruptionBudget,Service,Service,StatefulSet" {
			t.Fatalf("kinds: %s", got)
		}
		sts := find(t, docs, "StatefulSet")
		if get(sts, "spec", "replicas") != 3 || get(sts, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "data" {
			t.Fatalf("StatefulSet: replicas %v, volume claim %v", get(sts, "spec", "replicas"), get(sts, "spec", "volumeClaimTemplates"))
		}
		c := get(sts, "spec", "template", "spec", "containers", 0)
		if get(c, "readinessProbe", "httpGet", "path") != "/readyz" || get(c, "livenessProbe", "httpGet", "path") != "/healthz" {
			t.Errorf("probes: %v %v", get(c, "readinessProbe"), get(c, "livenessProbe"))
		}
		if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(sts, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
			t.Error("the gateway must run as non-root on a read-only root filesystem")
		}
		for _, want := range []string{"PORTCULLIS_CONTROL_PLANE", "PORTCULLIS_ENROLL_TOKEN", "PORTCULLIS_REDIS_URL", "PORTCULLIS_UPSTREAM_TIMEOUT"} {
			if !slices.Contains(envNames(c), want) {
				t.Errorf("env lacks %s: %v", want, envNames(c))
			}
		}
		for _, e := range get(c, "env").([]any) {
			if n := get(e, "name"); (n == "PORTCULLIS_ENROLL_TOKEN" || n == "PORTCULLIS_REDIS_URL") && get(e, "valueFrom", "secretKeyRef", "name") == nil {
				t.Errorf("%s must come from a Secret: %v", n, e)
			}
		}
		if get(c, "envFrom", 0, "secretRef", "name") != "github-mcp-token" {
			t.Errorf("upstream credentials from the Secret: %v", get(c, "envFrom"))
		}
		checkEnv(t, c, gwFlags)
		if get(find(t, docs, "PodDisruptionBudget"), "spec", "maxUnavailable") != 1 {
			t.Error("PodDisruptionBudget maxUnavailable should be 1")
		}
		np := find(t, docs, "NetworkPolicy")
		if get(np, "spec", "ingress", 0, "from", 0, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name") != "ai-agents" {
			t.Errorf("NetworkPolicy ingress: %v", get(np, "spec", "ingress"))
		}
		// One replica, defaults: no budget to keep, the token from the chart's Secret.
		docs = render(t, "portcullis-gateway", "--set", "controlPlane=cp:7443", "--set", "enrollment.token=pcgw1.x")
		if got := strings.Join(kinds(docs), ","); got != "NetworkPolicy,Secret,Service,Service,StatefulSet" {
			t.Fatalf("kinds with one replica: %s", got)
		}
		if s := find(t, docs, "Secret"); get(s, "stringData", "enroll-token") != "pcgw1.x" {
			t.Errorf("the token Secret: %v", s)
		}
	})

	t.Run("control plane: SQLite on a volume, or replicas on PostgreSQL and Redis", func(t *testing.T) {
		docs := render(t, "portcullis")
		if got := strings.Join(kinds(docs), ","); got != "Deployment,NetworkPolicy,PersistentVolumeClaim,Secret,Service,Service" {
			t.Fatalf("kinds by default: %s", got)
		}
		d := find(t, docs, "Deployment")
		if get(d, "spec", "strategy", "type") != "Recreate" {
			t.Error("one SQLite writer: the Deployment must recreate, not roll")
		}
		checkEnv(t, get(d, "spec", "template", "spec", "containers", 0), cpFlags)
		// A key-encryption key is generated into a Secret kept on uninstall.
		kek := find(t, docs, "Secret")
		if get(kek, "metadata", "name") != "rel-portcullis-kek" || get(kek, "metadata", "annotations", "helm.sh/resource-policy") != "keep" {
			t.Errorf("generated key-encryption key Secret: %v", kek["metadata"])
		}
		if !slices.Contains(envNames(get(d, "spec", "template", "spec", "containers", 0)), "PORTCULLIS_KEY_ENCRYPTION_KEY") {
			t.Error("the control plane gets no key-encryption key")
		}

		docs = render(t, "portcullis", "-f", "helm/portcullis/ci/ha-values.yaml")
		if got := strings.Join(kinds(docs), ","); got != "Deployment,Ingress,NetworkPolicy,PodDisruptionBudget,Service,Service" {
			t.Fatalf("kinds with replicas: %s", got)
		}
		d = find(t, docs, "Deployment")
		c := get(d, "spec", "template", "spec", "containers", 0)
		if get(d, "spec", "replicas") != 3 || get(d, "spec", "strategy") != nil {
			t.Errorf("replicas %v, strategy %v", get(d, "spec", "replicas"), get(d, "spec", "strategy"))
		}
		for _, want := range []string{"PORTCULLIS_DATABASE_URL", "PORTCULLIS_REDIS_URL", "PORTCULLIS_OIDC_CLIENT_SECRET", "PORTCULLIS_CA_CERT", "PORTCULLIS_CA_KEY", "PORTCULLIS_KEY_ENCRYPTION_KEY"} {
			if !slices.Contains(envNames(c), want) {
				t.Errorf("env lacks %s: %v", want, envNames(c))
			}
		}
		if get(c, "readinessProbe", "httpGet", "path") != "/healthz" || get(c, "securityContext", "allowPrivilegeEscalation") != false {
			t.Errorf("probe or security context: %v %v", get(c, "readinessProbe"), get(c, "securityContext"))
		}
		checkEnv(t, c, cpFlags)
		for _, s := range docs {
			if s["kind"] == "Service" && get(s, "metadata", "name") == "rel-portcullis-agents" && get(s, "spec", "type") != "LoadBalancer" {
				t.Errorf("agent Service type: %v", get(s, "spec", "type"))
			}
		}
	})

	t.Run("Dockerfiles and systemd units name real flags", func(t *testing.T) {
		for file, flags := range map[string]map[string]bool{
			"docker/Dockerfile.controlplane": cpFlags, "docker/Dockerfile.gateway": gwFlags,
			"systemd/portcullis.service": cpFlags, "systemd/portcullis-gateway.service": gwFlags,
		} {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(b))
			n := 0
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, "CMD") && !strings.HasPrefix(line, "ExecStart=") {
					continue
				}
				for _, m := range regexp.MustCompile(`"?--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(line, -1) {
					n++
					if !flags[m[1]] {
						t.Errorf("%s: --%s is not a flag of the binary", file, m[1])
					}
				}
			}
			if n == 0 {
				t.Errorf("%s: no flags found on its CMD or ExecStart line", file)
			}
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Fatal("systemd-analyze is not installed: run the tests with `make test` (it installs systemd from Debian)")
		}
		// The units name /usr/local/bin; point them at the binaries just built.
		dir := t.TempDir()
		var units []string
		for _, u := range []string{"portcullis.service", "portcullis-gateway.service"} {
			b, err := os.ReadFile(filepath.Join("systemd", u))
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.ReplaceAll(b, []byte("/usr/local/bin/"), []byte(filepath.Dir(bins.gateway)+"/"))
			p := filepath.Join(dir, u)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			units = append(units, p)
		}
		// The stdio drop-in, where systemd reads a unit's drop-ins.
		b, err := os.ReadFile(filepath.Join("systemd", "portcullis-gateway-stdio.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "portcullis-gateway.service.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "portcullis-gateway.service.d", "stdio.conf"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, sa, append([]string{"verify"}, units...)...)
		if err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}
