package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

func sign(t *testing.T, priv ed25519.PrivateKey, b *agentv1.PolicyBundle) *agentv1.SignedBundle {
	t.Helper()
	p, err := proto.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return &agentv1.SignedBundle{Payload: p, Signature: ed25519.Sign(priv, p)}
}

func TestVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	good := sign(t, priv, &agentv1.PolicyBundle{Version: 3, GatewayId: "gw"})
	tampered := proto.Clone(good).(*agentv1.SignedBundle)
	tampered.Payload = append([]byte(nil), good.Payload...)
	tampered.Payload[len(tampered.Payload)-1] ^= 1
	for _, tc := range []struct {
		name    string
		sb      *agentv1.SignedBundle
		min     uint64
		wantErr error
	}{
		{"good", good, 3, nil},
		{"tampered payload", tampered, 0, ErrSignature},
		{"signed by another key", sign(t, other, &agentv1.PolicyBundle{Version: 9, GatewayId: "gw"}), 0, ErrSignature},
		{"for another gateway", sign(t, priv, &agentv1.PolicyBundle{Version: 9, GatewayId: "gw2"}), 0, ErrWrongTarget},
		{"older than enforced", good, 4, ErrStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Verify(tc.sb, pub, "gw", tc.min)
			if tc.wantErr == nil {
				if err != nil || b.GetVersion() != 3 {
					t.Fatalf("Verify = %v, %v", b, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bundle.pb")
	if sb, err := Load(path); sb != nil || err != nil {
		t.Fatalf("Load of missing file = %v, %v", sb, err)
	}
	want := &agentv1.SignedBundle{Payload: []byte("p"), Signature: []byte("s"), KeyId: "k"}
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("Load = %v, %v", got, err)
	}
}
