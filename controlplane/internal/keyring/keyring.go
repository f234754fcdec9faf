// Package keyring keeps the control plane's private keys (tenants' bundle
// signing keys, the generated agent CA key) encrypted at rest under a
// key-encryption key (KEK) the operator holds. KEK is the seam for a cloud
// KMS: an implementation that calls one replaces Local without touching
// callers.
package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// KEK seals and opens private keys. The additional data binds a sealed key
// to its use: a tenant's key sealed under another tenant's name does not open.
type KEK interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
	// ID names the key (not secret), so that errors say which key sealed what.
	ID() string
}

// magic starts every sealed value: "pcseal1." then the KEK's id.
const magic = "pcseal1."

// Sealed reports whether b was sealed by a KEK (rather than stored plain,
// as before keys were encrypted at rest).
func Sealed(b []byte) bool { return bytes.HasPrefix(b, []byte(magic)) }

// Local is a KEK held by the control plane itself: AES-256-GCM with a
// 32-byte key from a file or the environment.
type Local struct {
	aead cipher.AEAD
	id   string
}

// NewLocal makes a KEK from 32 random bytes.
func NewLocal(key []byte) (*Local, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("a key-encryption key is 32 bytes, not %d (create one with: openssl rand -base64 32)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("portcullis kek id\x00"), key...))
	return &Local{aead: aead, id: hex.EncodeToString(sum[:4])}, nil
}

// Parse reads a KEK written as base64 (standard or URL alphabet, padding
// optional), as `openssl rand -base64 32` prints it.
func Parse(s string) (*Local, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			return NewLocal(key)
		}
	}
	return nil, errors.New("the key-encryption key is not base64 (create one with: openssl rand -base64 32)")
}

// LoadFile reads a KEK file (base64 of 32 bytes). It must not be readable
// by others.
func LoadFile(path string) (*Local, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key-encryption key %s is readable by group or others (mode %v): chmod 600 it", path, st.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	k, err := Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateFile reads the KEK file, creating it (0600) with a random key
// when it does not exist: for `portcullis dev` only, where the key and
// what it protects share a disk.
func LoadOrCreateFile(path string) (*Local, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("writing key-encryption key: %w", err)
		}
	}
	return LoadFile(path)
}

// ID implements KEK.
func (k *Local) ID() string { return k.id }

// Seal implements KEK: magic, key id, ".", nonce, ciphertext.
func (k *Local) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte(magic+k.id+"."), nonce...)
	return k.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open implements KEK.
func (k *Local) Open(sealed, aad []byte) ([]byte, error) {
	if !Sealed(sealed) {
		return nil, errors.New("not a sealed key")
	}
	rest := sealed[len(magic):]
	id, body, ok := bytes.Cut(rest, []byte("."))
	if !ok {
		return nil, errors.New("malformed sealed key")
	}
	if string(id) != k.id {
		return nil, fmt.Errorf("sealed with key-encryption key %s, not with the one given (%s)", id, k.id)
	}
	if len(body) < k.aead.NonceSize() {
		return nil, errors.New("malformed sealed key")
	}
	pt, err := k.aead.Open(nil, body[:k.aead.NonceSize()], body[k.aead.NonceSize():], aad)
	if err != nil {
		return nil, errors.New("a sealed key does not open with the key-encryption key given (altered, or sealed for another use)")
	}
	return pt, nil
}

// tenantAAD binds a tenant's signing key to the tenant.
func tenantAAD(tenantID uuid.UUID) []byte {
	return []byte("tenant bundle-signing key " + tenantID.String())
}

// SealTenantKey seals a tenant's ed25519 seed.
func SealTenantKey(k KEK, tenantID uuid.UUID, seed []byte) ([]byte, error) {
	return k.Seal(seed, tenantAAD(tenantID))
}

// TenantKey opens a tenant's signing key.
func TenantKey(k KEK, tenantID uuid.UUID, stored []byte) (ed25519.PrivateKey, error) {
	seed, err := k.Open(stored, tenantAAD(tenantID))
	if err != nil {
		return nil, fmt.Errorf("tenant %s signing key: %w", tenantID, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("tenant %s signing key: %d bytes, want %d", tenantID, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// CAKeyAAD binds the sealed agent CA key to its use.
var CAKeyAAD = []byte("agent CA private key")
