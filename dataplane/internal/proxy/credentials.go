package proxy

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Credentials is what upstream credential references may reach on the
// gateway host, as its operator allows. A tenant admin names the reference;
// without this, "env:PORTCULLIS_ENROLL_TOKEN" or "file:/etc/…" would send the
// gateway's own secrets to a URL of their choosing.
type Credentials struct {
	// Env lists the variables "env:NAME" may read: names, or prefixes ending
	// in "*". Variables named PORTCULLIS_* (the gateway's own settings) never.
	Env []string
	// Dirs lists the directories "file:/path" may read below (symbolic
	// links resolved). The gateway's data dir (its identity) never.
	Dirs []string
	// DataDir is the gateway's data dir.
	DataDir string
}

// DefaultCredentialEnv and DefaultCredentialDir are the defaults of
// --credential-env and --credential-dirs.
const (
	DefaultCredentialEnv = "MCP_CREDENTIAL_*"
	DefaultCredentialDir = "/var/run/portcullis/credentials"
)

// maxCredentialBytes bounds a credential read from a file.
const maxCredentialBytes = 16 << 10

// resolve reads an upstream credential where the reference says: the
// gateway's environment ("env:NAME") or a file ("file:/path"), e.g. a mounted
// Kubernetes secret, if the operator allows it there. It is read on every
// connect, so a rotated file takes effect on the next reconnect.
func (c *Credentials) resolve(ref string) (string, error) {
	if c == nil {
		c = &Credentials{}
	}
	switch kind, where, _ := strings.Cut(ref, ":"); kind {
	case "env":
		if !c.envAllowed(where) {
			return "", fmt.Errorf("credential %s is not allowed on this gateway: its operator lets references read only %s (--credential-env)", ref, c.allowedEnv())
		}
		v, ok := os.LookupEnv(where)
		if !ok || v == "" {
			return "", fmt.Errorf("credential %s: the variable is not set in the gateway's environment", ref)
		}
		return v, nil
	case "file":
		path, err := c.fileAllowed(where)
		if err != nil {
			return "", fmt.Errorf("credential %s is not allowed on this gateway: %v", ref, err)
		}
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("credential %s: %w", ref, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxCredentialBytes+1))
		if err != nil {
			return "", fmt.Errorf("credential %s: %w", ref, err)
		}
		if len(b) > maxCredentialBytes {
			return "", fmt.Errorf("credential %s: larger than %d bytes", ref, maxCredentialBytes)
		}
		if v := strings.TrimSpace(string(b)); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("credential %s: the file is empty", ref)
	}
	return "", fmt.Errorf("credential reference %q: use env:NAME or file:/path", ref)
}

func (c *Credentials) envAllowed(name string) bool {
	if name == "" || strings.HasPrefix(strings.ToUpper(name), "PORTCULLIS_") {
		return false
	}
	for _, p := range c.Env {
		if prefix, ok := strings.CutSuffix(p, "*"); ok && prefix != "" && strings.HasPrefix(name, prefix) || p == name {
			return true
		}
	}
	return false
}

func (c *Credentials) allowedEnv() string {
	if len(c.Env) == 0 {
		return "no variables"
	}
	return "the variables " + strings.Join(c.Env, ", ")
}

// fileAllowed returns the file a reference may read: below an allowed
// directory once links are resolved, and not in the data dir.
func (c *Credentials) fileAllowed(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("the path must be absolute")
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(path))
	if err != nil {
		return "", fmt.Errorf("the file cannot be resolved (%v)", err)
	}
	if c.DataDir != "" {
		if data, err := filepath.Abs(c.DataDir); err == nil {
			if rd, err := filepath.EvalSymlinks(data); err == nil {
				data = rd
			}
			if within(real, data) {
				return "", fmt.Errorf("it is in the gateway's data dir")
			}
		}
	}
	for _, d := range c.Dirs {
		if rd, err := filepath.EvalSymlinks(d); err == nil && within(real, rd) {
			return real, nil
		}
	}
	if len(c.Dirs) == 0 {
		return "", fmt.Errorf("its operator lets references read no files (--credential-dirs)")
	}
	return "", fmt.Errorf("its operator lets references read files only below %s (--credential-dirs)", strings.Join(c.Dirs, ", "))
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
