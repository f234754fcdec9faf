package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/pkgstore"
)

// Stdio is what the gateway's operator lets tenant admins run as stdio
// upstreams, and how they run: never as the gateway's own user, with a
// minimal environment, in a directory of their own, outside the data dir.
// A tenant admin names the command; without this, any command would run as
// the gateway on every gateway host of the tenant.
type Stdio struct {
	// Allow lists command lines (command, then leading arguments) an
	// upstream's command line must start with; ["*"] allows any. None: no
	// stdio upstream runs.
	Allow [][]string
	// UID and GID are the user stdio servers run as; Username names it.
	UID, GID uint32
	Username string
	// Dir holds each upstream's working (and home) directory.
	Dir string
	// Packages installs the packages of "package" upstreams; allowed as
	// "npm:NAME" (any version) or "npm:NAME@VERSION" in Allow.
	Packages *pkgstore.Store
}

// ParseStdio checks the operator's --stdio-allow, --stdio-user and
// --stdio-dir. A gateway that allows stdio servers needs a user for them
// other than root and its own.
func ParseStdio(allow, username, dir string) (Stdio, error) {
	var s Stdio
	for _, entry := range strings.Split(allow, ",") {
		if words := strings.Fields(entry); len(words) > 0 {
			s.Allow = append(s.Allow, words)
		}
	}
	if len(s.Allow) == 0 {
		return s, nil
	}
	if username == "" {
		return s, errors.New("--stdio-allow needs --stdio-user: stdio servers never run as the gateway's own user")
	}
	var uid, gid uint64
	var err1, err2 error
	if u, err := user.Lookup(username); err == nil {
		uid, err1 = strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 = strconv.ParseUint(u.Gid, 10, 32)
		username = u.Username
	} else {
		// UID[:GID], for a host (an image) without /etc/passwd.
		us, gs, ok := strings.Cut(username, ":")
		uid, err1 = strconv.ParseUint(us, 10, 32)
		gid, err2 = uid, nil
		if ok {
			gid, err2 = strconv.ParseUint(gs, 10, 32)
		}
		if err1 != nil {
			return s, fmt.Errorf("--stdio-user %q: no such user (name one, or give UID[:GID])", username)
		}
	}
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("--stdio-user %q: not a POSIX user", username)
	}
	if uid == 0 || int(uid) == os.Geteuid() {
		return s, fmt.Errorf("--stdio-user %q: use an unprivileged user other than the gateway's own", username)
	}
	if !filepath.IsAbs(dir) {
		return s, fmt.Errorf("--stdio-dir %q: use an absolute path", dir)
	}
	s.UID, s.GID, s.Username, s.Dir = uint32(uid), uint32(gid), username, filepath.Clean(dir)
	return s, nil
}

// refusal says why argv may not run here, or "".
func (s *Stdio) refusal(argv []string) string {
	if s == nil || len(s.Allow) == 0 {
		return "this gateway runs no stdio servers: its operator allows none (--stdio-allow)"
	}
	for _, prefix := range s.Allow {
		if (len(prefix) == 1 && prefix[0] == "*") || (len(argv) >= len(prefix) && slices.Equal(argv[:len(prefix)], prefix)) {
			return ""
		}
	}
	allowed := make([]string, len(s.Allow))
	for i, p := range s.Allow {
		allowed[i] = strings.Join(p, " ")
	}
	return fmt.Sprintf("this gateway's operator does not allow the command %q (--stdio-allow: %s)", strings.Join(argv, " "), strings.Join(allowed, ", "))
}

// packageRefusal says why the package may not run here, or "".
func (s *Stdio) packageRefusal(p pkgstore.Spec) string {
	if s == nil || len(s.Allow) == 0 || s.Packages == nil {
		return "this gateway runs no stdio servers: its operator allows none (--stdio-allow)"
	}
	for _, prefix := range s.Allow {
		if len(prefix) == 1 && (prefix[0] == "*" || prefix[0] == p.Ecosystem+":"+p.Name || prefix[0] == p.Ecosystem+":"+p.String()) {
			return ""
		}
	}
	return fmt.Sprintf("this gateway's operator does not allow the package %s:%s (--stdio-allow lists %s:NAME or %s:NAME@VERSION for packages)", p.Ecosystem, p, p.Ecosystem, p.Ecosystem)
}

// packageCommand installs and verifies the package (pkgstore) and, when its
// dependency tree is the approved one (pin, its hash), prepares its
// executable with args, as command does. What was installed is returned
// either way, for the inventory.
func (s *Stdio) packageCommand(ctx context.Context, name string, p pkgstore.Spec, pin string, args []string, credEnv string) (*exec.Cmd, pkgstore.Installed, error) {
	if reason := s.packageRefusal(p); reason != "" {
		return nil, pkgstore.Installed{}, errors.New(reason)
	}
	installed, err := s.Packages.Install(ctx, p, pin)
	if err != nil {
		return nil, installed, err
	}
	switch short := installed.TreeSHA[:12]; {
	case pin == "":
		return nil, installed, fmt.Errorf("%s:%s and its dependencies (tree %s) await approval: approve the package's change request to run it", p.Ecosystem, p, short)
	case pin != installed.TreeSHA:
		return nil, installed, fmt.Errorf("%s:%s resolved to dependencies (tree %s) other than the approved ones (tree %s): approve the package's change request to run it",
			p.Ecosystem, p, short, pin[:min(12, len(pin))])
	}
	cmd, err := s.prepare(name, append(installed.Argv, args...), credEnv)
	return cmd, installed, err
}

// stdioMaxFiles bounds a stdio server's open files.
const stdioMaxFiles = 4096

// command prepares argv for upstream name: as the stdio user, in its own
// directory (its home too), with only PATH, HOME, TMPDIR, LANG and the
// credential the upstream declares (env, the variable of that name), ended
// with the gateway.
func (s *Stdio) command(name string, argv []string, credEnv string) (*exec.Cmd, error) {
	if reason := s.refusal(argv); reason != "" {
		return nil, errors.New(reason)
	}
	return s.prepare(name, argv, credEnv)
}

// prepare is command for an allowed argv.
func (s *Stdio) prepare(name string, argv []string, credEnv string) (*exec.Cmd, error) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return nil, fmt.Errorf("stdio server name %q cannot name a directory", name)
	}
	// Each server may pass through it to its own directory, and no further
	// (made so whatever the umask; one the operator made is left as it is).
	if _, err := os.Stat(s.Dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(s.Dir, 0o711); err != nil {
			return nil, fmt.Errorf("stdio servers' directory: %w", err)
		}
		if err := os.Chmod(s.Dir, 0o711); err != nil {
			return nil, fmt.Errorf("stdio servers' directory: %w", err)
		}
	}
	dir := filepath.Join(s.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("directory of stdio server %q: %w", name, err)
	}
	if err := os.Chown(dir, int(s.UID), int(s.GID)); err != nil {
		return nil, fmt.Errorf("directory of stdio server %q for user %s: %w", name, s.Username, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir, "LANG=C.UTF-8"}
	if credEnv != "" {
		cmd.Env = append(cmd.Env, credEnv)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: s.UID, Gid: s.GID, Groups: []uint32{}},
		Pdeathsig:  syscall.SIGKILL, // it does not outlive the gateway
		Setsid:     true,            // nor reads the gateway's terminal
	}
	return cmd, nil
}

// limitStdio sets what the host supports of a started stdio server's
// resource limits: open files, no core dumps (they would hold its memory,
// credentials included).
func limitStdio(pid int) {
	_ = unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: stdioMaxFiles, Max: stdioMaxFiles}, nil)
	_ = unix.Prlimit(pid, unix.RLIMIT_CORE, &unix.Rlimit{}, nil)
}
