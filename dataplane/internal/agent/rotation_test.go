package agent

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/bundle"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

func signed(t *testing.T, priv ed25519.PrivateKey, b *agentv1.PolicyBundle) *agentv1.SignedBundle {
	t.Helper()
	payload, err := proto.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return &agentv1.SignedBundle{Payload: payload, Signature: ed25519.Sign(priv, payload), KeyId: keyID(priv.Public().(ed25519.PublicKey))}
}

// TestKeyRotation: a bundle signed by the current key announces the next
// one; a bundle signed by the next one is accepted and retires the old key,
// whose bundles are refused from then on; a gateway that never saw the
// announcement refuses the new key's bundles and says why.
func TestKeyRotation(t *testing.T) {
	oldPub, oldKey, _ := ed25519.GenerateKey(nil)
	newPub, newKey, _ := ed25519.GenerateKey(nil)
	_, strangerKey, _ := ed25519.GenerateKey(nil)
	newAgent := func() *Agent {
		dir := t.TempDir()
		a, err := New(Config{DataDir: dir, ControlPlane: "cp:7443", Applier: &fakeApplier{changed: make(chan struct{})}})
		if err != nil {
			t.Fatal(err)
		}
		a.id = &Identity{AgentID: "a", GatewayID: "gw", PolicyPublicKey: oldPub}
		return a
	}
	bundleOf := func(v uint64, next ed25519.PublicKey) *agentv1.PolicyBundle {
		return &agentv1.PolicyBundle{Version: v, GatewayId: "gw", NextPolicyPublicKey: next}
	}

	a := newAgent()
	if err := a.apply(signed(t, oldKey, bundleOf(1, newPub))); err != nil {
		t.Fatal(err)
	}
	var saved Identity
	raw, err := os.ReadFile(filepath.Join(a.cfg.DataDir, identityFile))
	if err != nil || json.Unmarshal(raw, &saved) != nil || !newPub.Equal(ed25519.PublicKey(saved.NextPolicyPublicKey)) {
		t.Fatalf("the announced key is not kept: %v %s", err, raw)
	}
	if err := a.apply(signed(t, oldKey, bundleOf(2, newPub))); err != nil {
		t.Fatalf("during the overlap the current key still signs: %v", err)
	}
	if err := a.apply(signed(t, newKey, bundleOf(3, nil))); err != nil {
		t.Fatalf("a bundle signed by the announced key: %v", err)
	}
	if !newPub.Equal(ed25519.PublicKey(a.id.PolicyPublicKey)) || a.id.NextPolicyPublicKey != nil {
		t.Fatal("the new key did not replace the old one")
	}
	for name, k := range map[string]ed25519.PrivateKey{"retired": oldKey, "unknown": strangerKey} {
		err := a.apply(signed(t, k, bundleOf(4, nil)))
		if !errors.Is(err, bundle.ErrSignature) || a.AppliedVersion() != 3 {
			t.Fatalf("a bundle signed by the %s key: %v (enforcing v%d)", name, err, a.AppliedVersion())
		}
	}

	offline := newAgent()
	if err := offline.apply(signed(t, oldKey, bundleOf(1, nil))); err != nil {
		t.Fatal(err)
	}
	err = offline.apply(signed(t, newKey, bundleOf(5, nil)))
	if !errors.Is(err, bundle.ErrSignature) || !strings.Contains(err.Error(), "must be enrolled again") || !strings.Contains(err.Error(), keyID(newPub)) {
		t.Fatalf("a gateway that missed the rotation: %v", err)
	}
	// A cancelled rotation withdraws the announced key.
	c := newAgent()
	_ = c.apply(signed(t, oldKey, bundleOf(1, newPub)))
	_ = c.apply(signed(t, oldKey, bundleOf(2, nil)))
	if err := c.apply(signed(t, newKey, bundleOf(3, nil))); !errors.Is(err, bundle.ErrSignature) {
		t.Fatalf("a withdrawn key still signs: %v", err)
	}
}
