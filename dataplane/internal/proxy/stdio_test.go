package proxy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/pkgstore"
)

func TestParseStdio(t *testing.T) {
	dir := t.TempDir()
	if s, err := ParseStdio("", "", dir); err != nil || len(s.Allow) != 0 {
		t.Fatalf("no --stdio-allow: %+v, %v", s, err)
	}
	for _, tc := range []struct{ allow, user, dir, want string }{
		{"node", "", dir, "needs --stdio-user"},
		{"node", "root", dir, "other than the gateway's own"},
		{"node", "no-such-user-here", dir, "no such user"},
		{"node", "nobody", "relative/dir", "absolute path"},
		{"node", "0:0", dir, "other than the gateway's own"},
		{"node", "65534:x", dir, "not a POSIX user"},
	} {
		if _, err := ParseStdio(tc.allow, tc.user, tc.dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseStdio(%q, %q, %q) = %v, want an error saying %q", tc.allow, tc.user, tc.dir, err, tc.want)
		}
	}
	s, err := ParseStdio(" npx -y @modelcontextprotocol/server-everything@2026.8.31 , node ,", "nobody", dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Allow) != 2 || s.Username != "nobody" || s.UID == 0 {
		t.Fatalf("parsed %+v", s)
	}
	for argv, ok := range map[string]bool{
		"npx -y @modelcontextprotocol/server-everything@2026.8.31 stdio": true,
		"npx -y @modelcontextprotocol/server-everything@2025.11.26":      false, // another version
		"npx -y @modelcontextprotocol/server-everything":                 false,
		"node /srv/server.js":          true,
		"/usr/bin/node /srv/server.js": false, // as written, not resolved
		"sh -c node":                   false,
	} {
		if reason := s.refusal(strings.Fields(argv)); (reason == "") != ok {
			t.Errorf("%q: refusal %q, want allowed=%v", argv, reason, ok)
		}
	}
	if n, err := ParseStdio("node", "4242:4343", dir); err != nil || n.UID != 4242 || n.GID != 4343 {
		t.Errorf("a numeric user: %+v, %v", n, err)
	}
	var none *Stdio
	if none.refusal([]string{"node"}) == "" {
		t.Error("a gateway without --stdio-allow ran a command")
	}
	any, _ := ParseStdio("*", "nobody", dir)
	if any.refusal([]string{"anything", "at", "all"}) != "" {
		t.Error("* refused a command")
	}
}

// A package runs when the operator allows it by name (any version) or by
// name and version; command lines, even naming it, do not allow it.
func TestPackageRefusal(t *testing.T) {
	s, err := ParseStdio("npm:@acme/a, npm:@acme/b@1.2.3, npx -y @acme/c@1.0.0", "nobody", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Packages = &pkgstore.Store{}
	for spec, ok := range map[pkgstore.Spec]bool{
		{Ecosystem: "npm", Name: "@acme/a", Version: "9.9.9"}:  true,
		{Ecosystem: "npm", Name: "@acme/b", Version: "1.2.3"}:  true,
		{Ecosystem: "npm", Name: "@acme/b", Version: "1.2.4"}:  false,
		{Ecosystem: "npm", Name: "@acme/c", Version: "1.0.0"}:  false,
		{Ecosystem: "npm", Name: "@acme/ab", Version: "1.0.0"}: false,
	} {
		if reason := s.packageRefusal(spec); (reason == "") != ok {
			t.Errorf("%+v: refusal %q, want allowed=%v", spec, reason, ok)
		}
	}
	if reason := (&Stdio{Allow: [][]string{{"*"}}}).packageRefusal(pkgstore.Spec{Ecosystem: "npm", Name: "x", Version: "1.0.0"}); !strings.Contains(reason, "allows none") {
		t.Errorf("a gateway without a package store: %q", reason)
	}
}

// A stdio server gets only PATH, HOME, TMPDIR, LANG and its declared
// credential, a directory of its own, and the stdio user.
func TestStdioCommand(t *testing.T) {
	t.Setenv("PORTCULLIS_ENROLL_TOKEN", "secret-token")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "gateway-secret")
	s, err := ParseStdio("node", "nobody", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.command("up", []string{"sh", "-c", "id"}, ""); err == nil || !strings.Contains(err.Error(), "does not allow") {
		t.Fatalf("sh: %v, want a refusal", err)
	}
	if _, err := s.command("../up", []string{"node"}, ""); err == nil {
		t.Fatal("an upstream name left the stdio directory")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test gives a directory to another user: run it as root, as make test does")
	}
	cmd, err := s.command("up", []string{"node", "server.js"}, "MCP_CREDENTIAL_X=x")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, kv := range cmd.Env {
		names = append(names, strings.SplitN(kv, "=", 2)[0])
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"HOME", "LANG", "MCP_CREDENTIAL_X", "PATH", "TMPDIR"}) {
		t.Errorf("environment %v", names)
	}
	fi, err := os.Stat(cmd.Dir)
	if err != nil || fi.Mode().Perm() != 0o700 || !strings.HasPrefix(cmd.Dir, s.Dir) {
		t.Fatalf("directory %s: %v %v", cmd.Dir, fi, err)
	}
	if c := cmd.SysProcAttr.Credential; c == nil || c.Uid != s.UID || c.Gid != s.GID {
		t.Errorf("runs as %+v, want %d:%d", c, s.UID, s.GID)
	}
	// Under the systemd unit's umask the directory it makes is still one the
	// stdio user can pass through.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	s.Dir = filepath.Join(t.TempDir(), "fresh")
	if _, err := s.command("up", []string{"node"}, ""); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.Dir); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("stdio directory made %v (%v), want 0711", fi.Mode(), err)
	}
}
