package pkgstore

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// A Go module is pinned by its go.sum hash ("h1:<base64>", the SHA-256 of
// its file list), fetched from the operator's module proxy, unzipped with
// the checks the go command makes, and built (CGO off, no toolchain
// download, dependencies only as the module's own go.sum pins them). Its
// tree is what the binary's build information says it was built from.

// goBinary is the executable a Go module is built into, in its directory.
const goBinary = ".portcullis-bin"

// validateGo checks a Go module spec and returns the hash its zip must have.
func (s Spec) validateGo() ([]byte, error) {
	if err := module.CheckPath(s.Name); err != nil {
		return nil, fmt.Errorf("module path %q: %v", s.Name, err)
	}
	if !semver.IsValid(s.Version) || semver.Canonical(s.Version) != s.Version && !strings.HasSuffix(s.Version, "+incompatible") {
		return nil, fmt.Errorf("module version %q: give an exact version (v1.2.3)", s.Version)
	}
	if err := module.Check(s.Name, s.Version); err != nil {
		return nil, err
	}
	digest, err := parseGoSum(s.Integrity)
	if err != nil {
		return nil, err
	}
	if s.Bin != "" {
		if p := path.Clean(s.Bin); p != s.Bin || path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") || module.CheckImportPath(s.Name+"/"+p) != nil {
			return nil, fmt.Errorf("module package %q is not a directory of the module", s.Bin)
		}
	}
	return digest, nil
}

// parseGoSum reads a go.sum hash.
func parseGoSum(v string) ([]byte, error) {
	b64, ok := strings.CutPrefix(v, "h1:")
	digest, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(digest) != 32 {
		return nil, fmt.Errorf("module hash %q: give its go.sum hash, h1:<base64> (go mod download -json MODULE@VERSION)", v)
	}
	return digest, nil
}

// goSumOf is the go.sum hash of a module zip.
func goSumOf(archive []byte) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		return "", fmt.Errorf("not a module zip: %w", err)
	}
	files := make([]string, 0, len(zr.File))
	byName := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		if strings.Contains(f.Name, "\n") {
			return "", errors.New("a file name in the zip has a newline")
		}
		files = append(files, f.Name)
		byName[f.Name] = f
	}
	return dirhash.Hash1(files, func(name string) (io.ReadCloser, error) { return byName[name].Open() })
}

// goArchiveURL is where the module proxy serves the module's zip.
func (s *Store) goArchiveURL(spec Spec) (string, error) {
	p, err := module.EscapePath(spec.Name)
	if err != nil {
		return "", err
	}
	v, err := module.EscapeVersion(spec.Version)
	if err != nil {
		return "", err
	}
	return url.JoinPath(s.goProxy(), p, "@v", v+".zip")
}

func (s *Store) goProxy() string {
	if s.GoProxy != "" {
		return s.GoProxy
	}
	return "https://proxy.golang.org"
}

// buildGo unzips the verified module into dir and builds its package.
func (s *Store) buildGo(ctx context.Context, archive []byte, dir string, spec Spec) error {
	zf := dir + ".zip"
	if err := os.WriteFile(zf, archive, 0o600); err != nil {
		return err
	}
	defer func() { _ = os.Remove(zf) }()
	if err := modzip.Unzip(dir, module.Version{Path: spec.Name, Version: spec.Version}, zf); err != nil {
		return fmt.Errorf("%s: unzipping: %w", spec, err)
	}
	cache := filepath.Join(s.Dir, "go", ".cache") // the gateway's own module and build caches
	gocmd := s.Go
	if gocmd == "" {
		gocmd = "go"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gocmd, "build", "-trimpath", "-buildvcs=false", "-mod=readonly", "-o", goBinary, "./"+spec.Bin)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(cache, "home"), "GOPATH=" + filepath.Join(cache, "gopath"),
		"GOMODCACHE=" + filepath.Join(cache, "mod"), "GOCACHE=" + filepath.Join(cache, "build"), "GOPROXY=" + s.goProxy(),
		// Dependencies are checked against the module's go.sum, which the pinned hash covers.
		"GOSUMDB=off", "GONOSUMDB=", "GOPRIVATE=", "GOFLAGS=-mod=readonly", "GOWORK=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: building %s (go build): %w: %s", spec, "./"+spec.Bin, err, lastLines(out, 5))
	}
	return nil
}

// installedGo is the built module, with the tree its binary was built from.
func installedGo(dir string, spec Spec) (Installed, error) {
	bin := filepath.Join(dir, goBinary)
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return Installed{}, fmt.Errorf("%s: reading what its binary was built from: %w", spec, err)
	}
	var deps []string
	for _, d := range info.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		deps = append(deps, d.Path+"@"+d.Version+" "+d.Sum)
	}
	slices.Sort(deps)
	tree, err := treeOf(spec, slices.Compact(deps))
	if err != nil {
		return Installed{}, fmt.Errorf("%s: %w", spec, err)
	}
	return Installed{Dir: dir, Argv: []string{bin}, Tree: tree}, nil
}
