// Package bundle verifies signed policy bundles and keeps the last good one on disk.
package bundle

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// MaxSize bounds a bundle's payload.
const MaxSize = 32 << 20

// Errors a bundle can be refused with.
var (
	ErrSignature   = errors.New("bundle signature does not verify against the tenant's policy key")
	ErrWrongTarget = errors.New("bundle is for another gateway")
	ErrStale       = errors.New("bundle is older than the one enforced")
)

// Verify checks the signature over the payload bytes before parsing them, then
// that the bundle is for this gateway and not older than minVersion.
func Verify(sb *agentv1.SignedBundle, pub ed25519.PublicKey, gatewayID string, minVersion uint64) (*agentv1.PolicyBundle, error) {
	if sb == nil || len(sb.GetPayload()) == 0 {
		return nil, errors.New("bundle is empty")
	}
	if len(sb.GetPayload()) > MaxSize {
		return nil, fmt.Errorf("bundle of %d bytes exceeds %d", len(sb.GetPayload()), MaxSize)
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, sb.GetPayload(), sb.GetSignature()) {
		return nil, ErrSignature
	}
	var b agentv1.PolicyBundle
	if err := proto.Unmarshal(sb.GetPayload(), &b); err != nil {
		return nil, fmt.Errorf("parsing bundle: %w", err)
	}
	if b.GetGatewayId() != gatewayID {
		return nil, fmt.Errorf("%w (%s, this is %s)", ErrWrongTarget, b.GetGatewayId(), gatewayID)
	}
	if b.GetVersion() < minVersion {
		return nil, fmt.Errorf("%w (version %d < %d)", ErrStale, b.GetVersion(), minVersion)
	}
	return &b, nil
}

// Save writes the signed bundle atomically (temp file, fsync, rename).
func Save(path string, sb *agentv1.SignedBundle) error {
	data, err := proto.Marshal(sb)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data, 0o600)
}

// Load reads a signed bundle saved by Save; it returns (nil, nil) when there is none.
func Load(path string) (*agentv1.SignedBundle, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading cached bundle: %w", err)
	}
	var sb agentv1.SignedBundle
	if err := proto.Unmarshal(data, &sb); err != nil {
		return nil, fmt.Errorf("parsing cached bundle %s: %w", path, err)
	}
	return &sb, nil
}

// WriteFileAtomic replaces path with data so a crash leaves the old or the new file, never half of one.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // gone already once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
