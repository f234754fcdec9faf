package keyring

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestSealOpen(t *testing.T) {
	k, err := Parse("WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewLocal(bytes.Repeat([]byte{1}, 32))
	sealed, err := k.Seal([]byte("secret"), []byte("use a"))
	if err != nil || !Sealed(sealed) || bytes.Contains(sealed, []byte("secret")) {
		t.Fatalf("sealed %q, %v", sealed, err)
	}
	if pt, err := k.Open(sealed, []byte("use a")); err != nil || string(pt) != "secret" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := k.Open(sealed, []byte("use b")); err == nil {
		t.Fatal("opened for another use")
	}
	if _, err := other.Open(sealed, []byte("use a")); err == nil || !strings.Contains(err.Error(), "not with the one given") {
		t.Fatalf("another key: %v", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := k.Open(tampered, []byte("use a")); err == nil {
		t.Fatal("opened a tampered key")
	}
	if _, err := k.Open([]byte("plain"), nil); err == nil {
		t.Fatal("opened a plaintext value")
	}
	for _, bad := range []string{"", "not base64!", "AAAA"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestTenantKeyIsBoundToItsTenant(t *testing.T) {
	k, _ := NewLocal(bytes.Repeat([]byte{2}, 32))
	_, priv, _ := ed25519.GenerateKey(nil)
	a, b := uuid.New(), uuid.New()
	sealed, err := SealTenantKey(k, a, priv.Seed())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := TenantKey(k, a, sealed); err != nil || !got.Equal(priv) {
		t.Fatalf("tenant key: %v", err)
	}
	if _, err := TenantKey(k, b, sealed); err == nil {
		t.Fatal("tenant A's key opened as tenant B's")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	created, err := LoadOrCreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateFile(path)
	if err != nil || again.ID() != created.ID() {
		t.Fatalf("the second load made another key: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key file: %v", err)
	}
}
