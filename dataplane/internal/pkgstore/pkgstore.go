// Package pkgstore installs the version-locked packages that "package"
// upstreams run. An npm package's archive comes from the registry the
// gateway's operator names (a mirror, in a private network), must have the
// integrity the tenant pinned, and is unpacked and given its dependencies
// (npm, without install scripts); a Go module's zip comes from the
// operator's module proxy, must have the go.sum hash pinned, and is built
// (gomod.go). Either lands in a directory the stdio user may read but not
// change; the archive is kept and checked again before every launch.
package pkgstore

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gowebpki/jcs"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/canonical"
)

// Spec is a package at an exact version with the integrity of its archive.
type Spec struct {
	Ecosystem, Name, Version, Integrity string
	// Bin is the executable, a key of package.json "bin"; "" for its only one.
	Bin string
}

func (s Spec) String() string { return s.Name + "@" + s.Version }

// base is the name without its scope, as npm names the archive and a lone executable.
func (s Spec) base() string { return s.Name[strings.LastIndex(s.Name, "/")+1:] }

// ErrIntegrity is a package whose archive is not the one pinned.
var ErrIntegrity = errors.New("integrity mismatch")

// ServedError is an archive a registry served without the pinned hash
// (errors.Is ErrIntegrity). Served is the hash it has, as pins write it.
type ServedError struct {
	Spec         Spec
	From, Served string
}

func (e *ServedError) Error() string {
	return fmt.Sprintf("%v: %s from %s has %s, not the pinned %s; refused", ErrIntegrity, e.Spec, e.From, e.Served, e.Spec.Integrity)
}

func (e *ServedError) Is(target error) bool { return target == ErrIntegrity }

// Tree is what the gateway reports for the served archive in place of the
// package's dependency tree, which it does not know, since it never
// unpacks the archive: the package with the integrity served, and why it
// was refused. Approvers see it against the pinned tree, so a registry or
// mirror serving other bytes reaches the change workflow; approving it
// makes the served archive the upstream's pin.
func (e *ServedError) Tree() ([]byte, string, error) {
	raw, err := json.Marshal(struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
		Version   string `json:"version"`
		Integrity string `json:"integrity"`
		Refused   string `json:"refused"`
	}{e.Spec.Ecosystem, e.Spec.Name, e.Spec.Version, e.Served,
		fmt.Sprintf("%s served this archive for %s, not the pinned %s; the gateway did not unpack it, so its dependencies are not known", e.From, e.Spec, e.Spec.Integrity)})
	if err != nil {
		return nil, "", err
	}
	tree, err := jcs.Transform(raw)
	if err != nil {
		return nil, "", err
	}
	return tree, canonical.Hash(tree), nil
}

var (
	// npm's rules for new package names: lower case, URL-safe, optionally scoped.
	nameRE = regexp.MustCompile(`^(@[a-z0-9-~][a-z0-9-._~]*/)?[a-z0-9-~][a-z0-9-._~]*$`)
	// An exact semantic version: no range, no tag.
	versionRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

// Validate checks s and returns the digest its archive must have: an npm
// archive's SHA-512, a Go module zip's go.sum hash.
func (s Spec) Validate() ([]byte, error) {
	switch s.Ecosystem {
	case "npm":
		return s.validateNPM()
	case "go":
		return s.validateGo()
	}
	return nil, fmt.Errorf("package ecosystem %q: npm packages and Go modules are supported", s.Ecosystem)
}

// digestOf is what spec's archive hashes to, and that hash as pins write it.
func (s Spec) digestOf(archive []byte) ([]byte, string, error) {
	if s.Ecosystem == "go" {
		sum, err := goSumOf(archive)
		if err != nil {
			return nil, "", err
		}
		d, err := parseGoSum(sum)
		return d, sum, err
	}
	d := sha512.Sum512(archive)
	return d[:], integrityOf(archive), nil
}

func (s Spec) validateNPM() ([]byte, error) {
	if len(s.Name) > 214 || !nameRE.MatchString(s.Name) {
		return nil, fmt.Errorf("package name %q is not an npm package name", s.Name)
	}
	if len(s.Version) > 128 || !versionRE.MatchString(s.Version) {
		return nil, fmt.Errorf("package version %q: give an exact version (1.2.3), not a range or a tag", s.Version)
	}
	digest, err := parseIntegrity(s.Integrity)
	if err != nil {
		return nil, err
	}
	if len(s.Bin) > 214 || strings.ContainsAny(s.Bin, "/\\\x00") {
		return nil, fmt.Errorf("package executable %q is not a name", s.Bin)
	}
	return digest, nil
}

// parseIntegrity reads a Subresource Integrity value of SHA-512, the hash
// npm records for every package.
func parseIntegrity(v string) ([]byte, error) {
	b64, ok := strings.CutPrefix(v, "sha512-")
	digest, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(digest) != sha512.Size {
		return nil, fmt.Errorf("package integrity %q: give the archive's sha512-<base64> (npm view NAME@VERSION dist.integrity)", v)
	}
	return digest, nil
}

func integrityOf(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
}

// Store installs packages below Dir.
type Store struct {
	// Dir holds the installed packages; it is made readable by all, and
	// writable only by the gateway.
	Dir string
	// Registry is the npm registry's base URL (the operator's mirror).
	Registry string
	// NPM is the npm command that installs dependencies.
	NPM string
	// GoProxy is the Go module proxy (the operator's mirror; default
	// proxy.golang.org); Go is the go command that builds modules.
	GoProxy, Go string
	// Client fetches archives.
	Client *http.Client
	// MaxArchive bounds an archive, MaxUnpacked what it unpacks to.
	MaxArchive, MaxUnpacked int64

	mu       sync.Mutex
	locks    map[string]*sync.Mutex
	resolved map[string]bool // base and tree resolved afresh (firstResolution)
}

// Installed is a verified package, ready to run.
type Installed struct {
	// Dir is the package's directory.
	Dir string
	// Argv runs its executable (arguments follow).
	Argv []string
	// Tree is the package with every dependency it runs with (what npm
	// resolved, or the modules a Go binary was built from), as canonical
	// JSON (RFC 8785): what approvers pin, and the SBOM the gateway
	// reports. TreeSHA is its hex SHA-256.
	Tree    []byte
	TreeSHA string
}

// lock serializes the installs of one package directory.
func (s *Store) lock(dir string) func() {
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]*sync.Mutex{}
	}
	m := s.locks[dir]
	if m == nil {
		m = new(sync.Mutex)
		s.locks[dir] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// archiveName (goArchiveName for a Go module) is the archive kept in a
// package's directory.
const (
	archiveName   = ".portcullis-package.tgz"
	goArchiveName = ".portcullis-package.zip"
)

// Install returns spec installed and verified, with the dependency tree
// whose hash is tree if one is wanted ("" takes any): from the store when an
// install kept there has it (its kept archive still with the pinned
// integrity), else fetched, checked, unpacked and given its dependencies
// afresh. A registry may resolve dependencies differently than when the kept
// install was made, so a wanted tree that is not kept is resolved afresh
// once; the installs of one archive live side by side, one directory per
// tree. An archive that is not the one pinned is refused with ErrIntegrity
// and never unpacked.
func (s *Store) Install(ctx context.Context, spec Spec, tree string) (Installed, error) {
	want, err := spec.Validate()
	if err != nil {
		return Installed{}, err
	}
	// The directories of one name, version and integrity: a changed pin
	// never reuses what another pin installed.
	base := filepath.Join(s.Dir, spec.Ecosystem, strings.ReplaceAll(spec.Name, "/", "+")+"@"+spec.Version+"-"+hex.EncodeToString(want[:8]))
	defer s.lock(base)()
	kept := archiveName
	if spec.Ecosystem == "go" {
		kept = goArchiveName
	}
	dirs, err := filepath.Glob(base + "-*")
	if err != nil {
		return Installed{}, err
	}
	var other *Installed                     // a kept install with another tree
	for _, dir := range append(dirs, base) { // base: an install made before trees named directories
		b, err := os.ReadFile(filepath.Join(dir, kept))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return Installed{}, fmt.Errorf("%s: %w", spec, err)
		}
		got, sum, err := spec.digestOf(b)
		if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
			return Installed{}, fmt.Errorf("%w: %s: the archive kept in %s has %s, not the pinned %s; remove the directory to fetch it again",
				ErrIntegrity, spec, dir, sum, spec.Integrity)
		}
		in, err := s.installed(dir, spec)
		if err != nil {
			return Installed{}, err
		}
		if tree == "" || in.TreeSHA == tree {
			return in, nil
		}
		other = &in
	}
	if other != nil && !s.firstResolution(base, tree) {
		return *other, nil // resolved afresh for this tree already: what is kept is all there is
	}
	from := redacted(s.Registry)
	if spec.Ecosystem == "go" {
		from = redacted(s.goProxy())
	}
	archive, err := s.fetch(ctx, spec)
	if err != nil {
		return Installed{}, err
	}
	got, sum, err := spec.digestOf(archive)
	if err != nil {
		return Installed{}, fmt.Errorf("%w: %s from %s: %v, not the pinned %s; refused", ErrIntegrity, spec, from, err, spec.Integrity)
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return Installed{}, &ServedError{Spec: spec, From: from, Served: sum}
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return Installed{}, err
	}
	if err := s.readable(spec.Ecosystem); err != nil {
		return Installed{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(base), ".installing-")
	if err != nil {
		return Installed{}, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if spec.Ecosystem == "go" {
		if err := s.buildGo(ctx, archive, tmp, spec); err != nil {
			return Installed{}, err
		}
	} else {
		if err := unpack(archive, tmp, s.maxUnpacked()); err != nil {
			return Installed{}, fmt.Errorf("%s: unpacking: %w", spec, err)
		}
		if err := s.dependencies(ctx, tmp, spec); err != nil {
			return Installed{}, err
		}
	}
	if err := readableTree(tmp); err != nil {
		return Installed{}, err
	}
	in, err := s.installed(tmp, spec)
	if err != nil {
		return Installed{}, err
	}
	dir := base + "-" + in.TreeSHA[:16]
	if _, err := os.Stat(filepath.Join(dir, kept)); err == nil {
		return s.installed(dir, spec) // this tree is kept already
	}
	// The archive goes in last: a directory without it is an install that did not finish.
	if err := os.WriteFile(filepath.Join(tmp, kept), archive, 0o644); err != nil {
		return Installed{}, err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return Installed{}, err
	}
	return s.installed(dir, spec)
}

// firstResolution says whether the installs of base have not yet been
// resolved afresh for tree, and notes that they now are.
func (s *Store) firstResolution(base, tree string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resolved == nil {
		s.resolved = map[string]bool{}
	}
	key := base + "\x00" + tree
	first := !s.resolved[key]
	s.resolved[key] = true
	return first
}

// readable makes the store's root passable by the stdio user whatever the umask.
func (s *Store) readable(ecosystem string) error {
	for d := filepath.Join(s.Dir, ecosystem); ; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
		if d == filepath.Clean(s.Dir) || d == filepath.Dir(d) {
			return nil
		}
	}
}

// readableTree lets everyone read dir and run its executables, whatever
// the umask the files were made under (a systemd unit's is 0077); only the
// gateway's user may change them.
func readableTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Chmod(p, 0o755)
		case info.Mode().IsRegular() && info.Mode()&0o100 != 0:
			return os.Chmod(p, 0o755)
		case info.Mode().IsRegular():
			return os.Chmod(p, 0o644)
		}
		return nil // symbolic links (npm's node_modules/.bin) have no mode of their own
	})
}

func (s *Store) maxUnpacked() int64 {
	if s.MaxUnpacked > 0 {
		return s.MaxUnpacked
	}
	return 512 << 20
}

// redacted is a registry's URL as messages (and approvers) see it: without
// a password an operator may have put in it.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the registry"
	}
	return u.Redacted()
}

// fetch gets the archive from the registry, as npm names it there.
func (s *Store) fetch(ctx context.Context, spec Spec) ([]byte, error) {
	var u string
	var err error
	if spec.Ecosystem == "go" {
		u, err = s.goArchiveURL(spec)
	} else {
		u, err = url.JoinPath(s.Registry, spec.Name, "-", spec.base()+"-"+spec.Version+".tgz")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: archive URL: %w", spec, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: fetching %s: %w", spec, redacted(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: fetching %s: %s", spec, redacted(u), resp.Status)
	}
	limit := s.MaxArchive
	if limit <= 0 {
		limit = 100 << 20
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: fetching %s: %w", spec, redacted(u), err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: the archive at %s is larger than %d bytes", spec, u, limit)
	}
	return b, nil
}

// unpack writes an npm archive's files into dir, without its top
// directory ("package/"): regular files and directories only, none outside
// dir, at most max bytes.
func unpack(archive []byte, dir string, max int64) error {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n >= 100_000 {
			return errors.New("more than 100,000 entries")
		}
		name := path.Clean(strings.ReplaceAll(h.Name, "\\", "/"))
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q leaves the package", h.Name)
		}
		_, rel, ok := strings.Cut(name, "/")
		if !ok {
			continue // the top directory itself
		}
		target := filepath.Join(dir, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if total += h.Size; total > max {
				return fmt.Errorf("it unpacks to more than %d bytes", max)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, h.Size))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default: // links, devices: npm packs none, and they could point anywhere
			return fmt.Errorf("entry %q is not a file or a directory", h.Name)
		}
	}
}

// manifest is what the gateway reads of package.json.
type manifest struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Bin          json.RawMessage   `json:"bin"`
	Dependencies map[string]string `json:"dependencies"`
}

func readManifest(dir string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("package.json: %w", err)
	}
	return m, nil
}

// dependencies installs the package's production dependencies with npm,
// from the same registry, without running any package's scripts; npm
// checks each archive against the integrity the registry (or the package's
// npm-shrinkwrap.json) gives, and records what it resolved in
// package-lock.json.
func (s *Store) dependencies(ctx context.Context, dir string, spec Spec) error {
	m, err := readManifest(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", spec, err)
	}
	if m.Name != spec.Name || m.Version != spec.Version {
		return fmt.Errorf("%s: the archive holds %s@%s", spec, m.Name, m.Version)
	}
	if len(m.Dependencies) == 0 {
		return nil
	}
	npm := s.NPM
	if npm == "" {
		npm = "npm"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund",
		"--no-update-notifier", "--registry="+s.Registry)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_ENV=production")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: installing its dependencies (npm install): %w: %s", spec, err, lastLines(out, 5))
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}

// installed resolves the package's executable in dir, and its tree.
func (s *Store) installed(dir string, spec Spec) (Installed, error) {
	var in Installed
	var err error
	if spec.Ecosystem == "go" {
		in, err = installedGo(dir, spec)
	} else {
		in, err = installedNPM(dir, spec)
	}
	if err != nil {
		return Installed{}, err
	}
	in.TreeSHA = canonical.Hash(in.Tree)
	return in, nil
}

// installedNPM resolves an npm package's executable in dir.
func installedNPM(dir string, spec Spec) (Installed, error) {
	m, err := readManifest(dir)
	if err != nil {
		return Installed{}, fmt.Errorf("%s: %w", spec, err)
	}
	bins := map[string]string{}
	var one string
	if err := json.Unmarshal(m.Bin, &one); err == nil {
		bins[spec.base()] = one
	} else if len(m.Bin) > 0 {
		if err := json.Unmarshal(m.Bin, &bins); err != nil {
			return Installed{}, fmt.Errorf("%s: package.json bin: %w", spec, err)
		}
	}
	var rel string
	switch {
	case spec.Bin != "":
		rel = bins[spec.Bin]
	case len(bins) == 1:
		for _, v := range bins {
			rel = v
		}
	}
	if rel == "" {
		names := make([]string, 0, len(bins))
		for k := range bins {
			names = append(names, k)
		}
		slices.Sort(names)
		return Installed{}, fmt.Errorf("%s: name its executable, one of %q", spec, names)
	}
	rel = filepath.Clean(filepath.FromSlash(rel))
	if !filepath.IsLocal(rel) {
		return Installed{}, fmt.Errorf("%s: executable %q is outside the package", spec, rel)
	}
	exe := filepath.Join(dir, rel)
	if fi, err := os.Lstat(exe); err != nil || !fi.Mode().IsRegular() {
		return Installed{}, fmt.Errorf("%s: executable %q is not a file of the package", spec, rel)
	}
	tree, err := dependencyTree(dir, spec, len(m.Dependencies) > 0)
	if err != nil {
		return Installed{}, fmt.Errorf("%s: %w", spec, err)
	}
	return Installed{Dir: dir, Argv: []string{"node", exe}, Tree: tree}, nil
}

// Bounds of a dependency tree: the control plane takes definitions of at
// most 256 KiB.
const (
	maxLockfile     = 32 << 20
	maxTree         = 256 << 10
	maxDependencies = 4096
)

// treeDoc is a package's dependency tree as approvers see it: one line
// per dependency ("name@version integrity"), sorted, so a version bump
// diffs line by line.
type treeDoc struct {
	Ecosystem    string   `json:"ecosystem"`
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	Integrity    string   `json:"integrity"`
	Dependencies []string `json:"dependencies"`
}

// lockfile is what the gateway reads of npm's lockfile (versions 2 and 3).
type lockfile struct {
	LockfileVersion int `json:"lockfileVersion"`
	Packages        map[string]struct {
		Name      string `json:"name"`
		Version   string `json:"version"`
		Integrity string `json:"integrity"`
		Dev       bool   `json:"dev"`
		Link      bool   `json:"link"`
	} `json:"packages"`
}

// dependencyTree reads what npm installed in dir (its npm-shrinkwrap.json
// when the package ships one, else the package-lock.json npm wrote) into
// the package's tree. Development dependencies are not installed, so not
// listed; a package without dependencies has no lockfile.
func dependencyTree(dir string, spec Spec, hasDeps bool) ([]byte, error) {
	var lf lockfile
	for _, name := range []string{"npm-shrinkwrap.json", "package-lock.json"} {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		err = json.NewDecoder(io.LimitReader(f, maxLockfile)).Decode(&lf)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if lf.LockfileVersion < 2 {
			return nil, fmt.Errorf("%s has lockfileVersion %d; npm 7 or later writes 2 or 3", name, lf.LockfileVersion)
		}
		break
	}
	if lf.Packages == nil && hasDeps {
		return nil, errors.New("no lockfile records its dependencies; remove the package's directory to install it again")
	}
	seen := map[string]bool{}
	deps := []string{}
	for key, p := range lf.Packages {
		if key == "" || p.Dev || p.Link {
			continue // the package itself, what is not installed, and links inside it
		}
		name := p.Name
		if name == "" {
			name = key[strings.LastIndex(key, "node_modules/")+len("node_modules/"):]
		}
		line := name + "@" + p.Version + " " + p.Integrity
		if !utf8.ValidString(line) || len(line) > 1024 {
			return nil, fmt.Errorf("lockfile entry %q is not a valid dependency", truncate(key, 64))
		}
		if !seen[line] {
			seen[line] = true
			deps = append(deps, line)
		}
	}
	slices.Sort(deps)
	return treeOf(spec, deps)
}

// treeOf is the canonical tree of spec with its sorted dependency lines.
func treeOf(spec Spec, deps []string) ([]byte, error) {
	if len(deps) > maxDependencies {
		return nil, fmt.Errorf("%d dependencies; the gateway reports at most %d", len(deps), maxDependencies)
	}
	if deps == nil {
		deps = []string{}
	}
	doc := treeDoc{Ecosystem: spec.Ecosystem, Name: spec.Name, Version: spec.Version, Integrity: spec.Integrity, Dependencies: deps}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	tree, err := jcs.Transform(raw)
	if err != nil {
		return nil, err
	}
	if len(tree) > maxTree {
		return nil, fmt.Errorf("its dependency tree takes %d bytes; the gateway reports at most %d", len(tree), maxTree)
	}
	return tree, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
