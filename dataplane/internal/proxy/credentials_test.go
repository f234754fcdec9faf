package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A credential reference reaches only what the operator allowed: never the
// gateway's own settings or its data dir, whatever links or dots it uses.
func TestCredentialReferences(t *testing.T) {
	root := t.TempDir()
	creds, data := filepath.Join(root, "creds"), filepath.Join(root, "data")
	for _, d := range []string{creds, data} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(creds, "github"), "gh-secret\n")
	write(filepath.Join(data, "agent.key"), "identity")
	write(filepath.Join(root, "elsewhere"), "other")
	if err := os.Symlink(filepath.Join(data, "agent.key"), filepath.Join(creds, "link")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MCP_CREDENTIAL_GITHUB", "env-secret")
	t.Setenv("EXACT_TOKEN", "exact")
	t.Setenv("PORTCULLIS_ENROLL_TOKEN", "pcgw1.enroll")
	t.Setenv("HOME_SECRET", "no")
	c := &Credentials{Env: []string{"MCP_CREDENTIAL_*", "EXACT_TOKEN", "PORTCULLIS_*"}, Dirs: []string{creds, data}, DataDir: data}
	for ref, want := range map[string]string{
		"env:MCP_CREDENTIAL_GITHUB":       "env-secret",
		"env:EXACT_TOKEN":                 "exact",
		"file:" + creds + "/github":       "gh-secret",
		"env:PORTCULLIS_ENROLL_TOKEN":     "error: not allowed",
		"env:HOME_SECRET":                 "error: not allowed on this gateway: its operator lets references read only the variables MCP_CREDENTIAL_*",
		"env:EXACT_TOKEN_2":               "error: not allowed",
		"file:" + data + "/agent.key":     "error: it is in the gateway's data dir",
		"file:" + creds + "/link":         "error: it is in the gateway's data dir",
		"file:" + creds + "/../elsewhere": "error: files only below",
		"file:" + root + "/elsewhere":     "error: files only below",
		"file:relative":                   "error: the path must be absolute",
		"vault:x":                         "error: use env:NAME or file:/path",
		"env:MCP_CREDENTIAL_UNSET":        "error: the variable is not set",
	} {
		got, err := c.resolve(ref)
		if msg, refused := strings.CutPrefix(want, "error: "); refused {
			if err == nil || !strings.Contains(err.Error(), msg) {
				t.Errorf("%s = %q, %v; want an error saying %q", ref, got, err, msg)
			}
		} else if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", ref, got, err, want)
		}
	}
	var none *Credentials
	if _, err := none.resolve("env:MCP_CREDENTIAL_GITHUB"); err == nil {
		t.Error("a gateway without a credential policy resolved a reference")
	}
}
