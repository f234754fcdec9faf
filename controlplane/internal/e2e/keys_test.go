package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/pki"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// testKEK is testutil.KEK's key, as the environment passes it to binaries.
var testKEK = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))

func kekEnv() string { return "PORTCULLIS_KEY_ENCRYPTION_KEY=" + testKEK }

// TestKeysEncryptedAtRest runs the built `portcullis serve` on a data dir
// left by a version that kept keys in plaintext: without a key-encryption
// key it refuses to start; with one it seals the CA key and the tenant's
// signing key (the same keys, still usable), after which neither the data
// dir nor the database holds a private key in plaintext; a wrong key stops
// the next start.
func TestKeysEncryptedAtRest(t *testing.T) {
	dataDir := t.TempDir()
	sys := viewer.System(context.Background())
	// The plaintext state of old: a generated CA and a tenant's seed.
	_, certPEM, keyPEM, err := pki.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "ca.crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "ca.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	dbURL := "sqlite://" + filepath.Join(dataDir, "portcullis.db")
	db, err := store.Open(sys, dbURL, testutil.Logger())
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	old, err := db.Tenant.Create().SetID(uuid.New()).SetName("Old").SetSlug("old").SetSigningPrivateKey(priv.Seed()).SetSigningPublicKey(pub).Save(sys)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	var httpAddr string
	serve := func(env ...string) (*exec.Cmd, *syncBuffer) {
		httpAddr = freeAddr(t)
		cmd := exec.Command(portcullisBin, "serve", "--data-dir", dataDir, "--http-listen", httpAddr, "--grpc-listen", freeAddr(t), "--log-level", "info",
			"--bootstrap-tenant", "acme")
		cmd.Env = append(os.Environ(), env...)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, out
	}
	exits := func(cmd *exec.Cmd, out *syncBuffer, want string) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(out.String(), want) {
				t.Fatalf("serve: %v, output should say %q:\n%s", err, want, out.String())
			}
		case <-time.After(45 * time.Second):
			t.Fatalf("serve did not stop; output should say %q:\n%s", want, out.String())
		}
	}

	cmd, out := serve("PORTCULLIS_KEY_ENCRYPTION_KEY=")
	exits(cmd, out, "needs a key-encryption key")

	cmd, out = serve(kekEnv())
	eventually(t, "the control plane up with its keys sealed", func() error {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		resp.Body.Close()
		_, err = os.Stat(filepath.Join(dataDir, "ca.key.sealed"))
		return err
	})
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(dataDir, "ca.key")); !os.IsNotExist(err) {
		t.Fatalf("the plaintext CA key is still there: %v", err)
	}

	// The same keys, sealed and still usable.
	db, err = store.Open(sys, dbURL, testutil.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts, err := db.Tenant.Query().All(sys)
	if err != nil || len(ts) != 2 {
		t.Fatalf("tenants: %v %v", ts, err)
	}
	var seeds [][]byte
	for _, tn := range ts {
		if !keyring.Sealed(tn.SigningPrivateKey) {
			t.Fatalf("tenant %s's signing key is not sealed", tn.Slug)
		}
		k, err := keyring.TenantKey(testutil.KEK(), tn.ID, tn.SigningPrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.Public().(ed25519.PublicKey), tn.SigningPublicKey) {
			t.Fatalf("tenant %s's sealed key is not its key", tn.Slug)
		}
		if tn.ID == old.ID && !bytes.Equal(k.Seed(), priv.Seed()) {
			t.Fatal("the old tenant's key changed")
		}
		seeds = append(seeds, k.Seed())
	}
	sealedCA, err := os.ReadFile(filepath.Join(dataDir, "ca.key.sealed"))
	if err != nil {
		t.Fatal(err)
	}
	opened, err := testutil.KEK().Open(sealedCA, keyring.CAKeyAAD)
	if err != nil || !bytes.Equal(opened, keyPEM) {
		t.Fatalf("the sealed CA key is not the CA key: %v", err)
	}
	// No private key in plaintext anywhere in the data dir, database included.
	block, _ := pem.Decode(keyPEM)
	secrets := append([][]byte{keyPEM, block.Bytes}, seeds...)
	err = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("%s holds a private key in plaintext", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x11}, 32))
	cmd, out = serve("PORTCULLIS_KEY_ENCRYPTION_KEY=" + other)
	exits(cmd, out, "not with the one given")
}
