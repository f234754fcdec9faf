package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/app"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/pki"

	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// TestAgentCertificateLifecycle runs a gateway binary against a control
// plane that issues one-minute certificates: the agent renews its own
// before expiry and keeps receiving policy after the first one expired;
// then an admin revokes it with the CLI, its stream is cut, the gateway
// says why and keeps enforcing its last policy, and its certificate is
// refused for syncing and renewing.
func TestAgentCertificateLifecycle(t *testing.T) {
	sys := viewer.System(context.Background())
	httpAddr := freeAddr(t)
	cp := runControlPlane(t, app.Config{DataDir: t.TempDir(), GRPCListen: freeAddr(t), HTTPListen: httpAddr, PublicURL: "http://" + httpAddr,
		AgentCertLifetime: time.Minute})
	defer cp.stop()
	owner, err := cp.IDs.Login(sys, identity.Claims{Issuer: "https://idp.test", Subject: "ops", Email: "ops@trust.test"})
	if err != nil {
		t.Fatal(err)
	}
	ten, err := cp.Tenants.CreateTenant(sys, "Trust", "trust", owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cp.IDs.UserViewer(sys, owner.ID, ten.ID)
	if err != nil {
		t.Fatal(err)
	}
	adminKey, _, err := cp.IDs.CreateAPIKey(viewer.NewContext(context.Background(), v), ten.ID, "ops", viewer.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	gw := demoGatewayOf(t, cp, ten.ID).gw
	tok, err := cp.EnrollmentToken(sys, ten.ID, gw, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr, dataDir := freeAddr(t), t.TempDir()
	g := startGateway(t, cp.AgentEndpoint(), dataDir, addr, "PORTCULLIS_ENROLL_TOKEN="+tok)
	pinWhenDiscovered(t, cp, ten.ID, "demo", "echo")
	waitEnforced(t, cp, ten.ID, gw, addr, "the first policy")
	first, err := cp.DB.Agent.Query().Only(sys)
	if err != nil {
		t.Fatal(err)
	}
	if first.CertExpiresAt == nil || time.Until(*first.CertExpiresAt) > time.Minute {
		t.Fatalf("the enrollment certificate expires at %v, want within the configured minute", first.CertExpiresAt)
	}

	// Renewal: a new certificate for the same agent, in use (the one it
	// replaced is no longer accepted once the new one was presented).
	eventually(t, "the agent renews its certificate and uses the new one", func() error {
		a, err := cp.DB.Agent.Get(sys, first.ID)
		if err != nil {
			return err
		}
		if a.CertFingerprint == first.CertFingerprint || a.RenewedAt == nil {
			return errors.New("not renewed yet")
		}
		if a.PreviousCertFingerprint != nil {
			return errors.New("renewed, the new certificate not presented yet")
		}
		return nil
	})
	if n, _ := cp.DB.Agent.Query().Count(sys); n != 1 {
		t.Fatalf("%d agents after renewal, want the same one", n)
	}
	// Past the first certificate's expiry, policy still reaches the gateway.
	time.Sleep(time.Until(*first.CertExpiresAt) + time.Second)
	if err := cp.Inventory.Unpin(sys, ten.ID, toolOf(t, cp.DB, "demo", "echo").ID); err != nil {
		t.Fatal(err)
	}
	waitEnforced(t, cp, ten.ID, gw, addr, "a policy change after the first certificate expired")
	if _, ok := readyz(addr); !ok {
		t.Fatal("the gateway is not connected after its first certificate expired")
	}
	pinWhenDiscovered(t, cp, ten.ID, "demo", "echo")
	waitEnforced(t, cp, ten.ID, gw, addr, "echo approved again")
	if !strings.Contains(g.out.String(), "agent certificate renewed") {
		t.Errorf("the gateway did not log its renewal:\n%s", g.out)
	}

	// Revocation, with the built CLI.
	out, err := runCLI(t, cp.PublicURL(), adminKey, "agents", "revoke", first.ID.String())
	if err != nil || !strings.Contains(out, "Revoked agent") {
		t.Fatalf("agents revoke: %v\n%s", err, out)
	}
	eventually(t, "the revoked agent's stream is cut and stays refused", func() error {
		if _, ok := readyz(addr); ok {
			return errors.New("still connected")
		}
		if !strings.Contains(g.out.String(), "agent has been revoked") {
			return errors.New("the gateway has not said why")
		}
		return nil
	})
	if text, isErr, err := callText(t, "http://"+addr+"/mcp/main", "demo__echo", `{"message":"still enforcing"}`); err != nil || isErr || !strings.Contains(text, "still enforcing") {
		t.Fatalf("the revoked gateway stopped enforcing its last policy: %q %v %v", text, isErr, err)
	}
	if out, err := runCLI(t, cp.PublicURL(), adminKey, "agents", "list", "vpc"); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("agents list after revocation: %v\n%s", err, out)
	}
	// The agent's own certificate, from its data dir, is refused for
	// renewing and syncing.
	pair, err := os.ReadFile(filepath.Join(dataDir, "agent.pem"))
	if err != nil {
		t.Fatalf("the renewed certificate is not in the data dir: %v", err)
	}
	cert, err := tls.X509KeyPair(pair, pair)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cp.CA.Cert)
	conn, err := grpc.NewClient(cp.AgentEndpoint(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: roots})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = agentv1.NewAgentServiceClient(conn).Renew(ctx, &agentv1.RenewRequest{CsrDer: csr})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("renewal by a revoked agent: %v, want PermissionDenied", err)
	}
	stream, err := agentv1.NewAgentServiceClient(conn).Sync(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("sync by a revoked agent: %v, want PermissionDenied", err)
	}
	evs, err := cp.DB.AuditEvent.Query().All(sys)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		found = found || (e.Action == "agent.revoke" && e.TargetID == first.ID.String())
	}
	if !found {
		t.Error("no agent.revoke in the audit log")
	}
	if a, err := cp.DB.Agent.Query().Where(agent.ID(first.ID)).Only(sys); err != nil || !a.Revoked || a.RevokedAt == nil {
		t.Fatalf("agent after revocation: %+v %v", a, fmt.Sprint(err))
	}
}

// adminOf makes a tenant with an owner and returns it with an admin API key.
func adminOf(t *testing.T, cp *controlPlane, slug string) (*ent.Tenant, string) {
	t.Helper()
	sys := viewer.System(context.Background())
	owner, err := cp.IDs.Login(sys, identity.Claims{Issuer: "https://idp.test", Subject: "ops-" + slug, Email: "ops@" + slug + ".test"})
	if err != nil {
		t.Fatal(err)
	}
	ten, err := cp.Tenants.CreateTenant(sys, slug, slug, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cp.IDs.UserViewer(sys, owner.ID, ten.ID)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := cp.IDs.CreateAPIKey(viewer.NewContext(context.Background(), v), ten.ID, "ops", viewer.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return ten, key
}

// TestSigningKeyRotation rotates a tenant's bundle-signing key with the
// built CLI while one gateway agent is online and its replica is stopped:
// completing is refused while the stopped one has not seen the next key,
// then forced; the online agent moves to the new key, and the one that
// missed the overlap keeps enforcing its last policy and refuses the new
// bundles, saying it must be enrolled again.
func TestSigningKeyRotation(t *testing.T) {
	sys := viewer.System(context.Background())
	httpAddr := freeAddr(t)
	cp := runControlPlane(t, app.Config{DataDir: t.TempDir(), GRPCListen: freeAddr(t), HTTPListen: httpAddr, PublicURL: "http://" + httpAddr})
	defer cp.stop()
	ten, key := adminOf(t, cp, "rotate")
	cli := func(args ...string) (string, error) { return runCLI(t, cp.PublicURL(), key, args...) }
	gw := demoGatewayOf(t, cp, ten.ID).gw
	tok, err := cp.EnrollmentTokenUses(sys, ten.ID, gw, time.Hour, 2)
	if err != nil {
		t.Fatal(err)
	}
	addr1, addr2, dir2 := freeAddr(t), freeAddr(t), t.TempDir()
	startGateway(t, cp.AgentEndpoint(), t.TempDir(), addr1, "PORTCULLIS_ENROLL_TOKEN="+tok)
	g2 := startGateway(t, cp.AgentEndpoint(), dir2, addr2, "PORTCULLIS_ENROLL_TOKEN="+tok)
	pinWhenDiscovered(t, cp, ten.ID, "demo", "echo")
	waitEnforced(t, cp, ten.ID, gw, addr1, "the first policy on agent 1")
	waitEnforced(t, cp, ten.ID, gw, addr2, "the first policy on agent 2")
	before := readyVersion(addr2)
	g2.stopGracefully(t)

	out, err := cli("signing-key", "start")
	if err != nil || !strings.Contains(out, "rotating to") {
		t.Fatalf("signing-key start: %v\n%s", err, out)
	}
	waitEnforced(t, cp, ten.ID, gw, addr1, "the bundle announcing the next key")
	if out, err := cli("signing-key", "complete"); err == nil || !strings.Contains(err.Error()+out, "1 agents have not applied") {
		t.Fatalf("completing with an agent behind: %v\n%s", err, out)
	}
	if out, err := cli("signing-key", "complete", "--force"); err != nil || strings.Contains(out, "rotating") {
		t.Fatalf("signing-key complete --force: %v\n%s", err, out)
	}
	waitEnforced(t, cp, ten.ID, gw, addr1, "the first bundle signed by the new key")
	rotated, err := cp.DB.Tenant.Get(sys, ten.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(rotated.SigningPublicKey, ten.SigningPublicKey) || (rotated.NextSigningPublicKey != nil && len(*rotated.NextSigningPublicKey) > 0) {
		t.Fatal("the tenant's key did not change")
	}

	// The agent that slept through the overlap.
	var id2 struct {
		AgentID string `json:"agent_id"`
	}
	raw, err := os.ReadFile(filepath.Join(dir2, "identity.json"))
	if err != nil || json.Unmarshal(raw, &id2) != nil {
		t.Fatalf("agent 2's identity: %v", err)
	}
	startGateway(t, cp.AgentEndpoint(), dir2, addr2) // the same data dir: its identity and last bundle
	eventually(t, "agent 2 refuses the new key's bundle and says why", func() error {
		a, err := cp.DB.Agent.Get(sys, uuid.MustParse(id2.AgentID))
		if err != nil {
			return err
		}
		if !strings.Contains(a.LastNack, "must be enrolled again") {
			return fmt.Errorf("last refusal %q", a.LastNack)
		}
		return nil
	})
	if v := readyVersion(addr2); v != before {
		t.Fatalf("agent 2 enforces v%d, want its last good v%d", v, before)
	}
	if text, isErr, err := callText(t, "http://"+addr2+"/mcp/main", "demo__echo", `{"message":"old policy"}`); err != nil || isErr || !strings.Contains(text, "old policy") {
		t.Fatalf("agent 2 stopped enforcing its last policy: %q %v %v", text, isErr, err)
	}
	if out, err := cli("signing-key", "show"); err != nil || !strings.Contains(out, policyKeyID(rotated.SigningPublicKey)) {
		t.Fatalf("signing-key show: %v\n%s", err, out)
	}
}

func policyKeyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// TestCARotation replaces the agent CA without enrolling the gateway again,
// in the three phases docs/trust.md describes: the control plane announces
// the next CA (the gateway adds it to its trust); it switches to it while
// still trusting the old one for client certificates (the gateway
// reconnects, drops the old CA, renews into the new one, and a token made
// now enrolls a second gateway); then it drops the old CA and the gateway
// still syncs.
func TestCARotation(t *testing.T) {
	sys := viewer.System(context.Background())
	dir := t.TempDir()
	pems := map[string][]byte{}
	for _, name := range []string{"old", "new"} {
		_, certPEM, keyPEM, err := pki.Generate()
		if err != nil {
			t.Fatal(err)
		}
		pems[name] = certPEM
		if err := os.WriteFile(filepath.Join(dir, name+".crt"), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dataDir, grpcAddr, httpAddr := t.TempDir(), freeAddr(t), freeAddr(t)
	start := func(ca, next, previous string) *controlPlane {
		cfg := app.Config{DataDir: dataDir, GRPCListen: grpcAddr, HTTPListen: httpAddr, PublicURL: "http://" + httpAddr, AgentCertLifetime: time.Minute,
			CACert: filepath.Join(dir, ca+".crt"), CAKey: filepath.Join(dir, ca+".key")}
		if next != "" {
			cfg.CANextCert = filepath.Join(dir, next+".crt")
		}
		if previous != "" {
			cfg.CAPreviousCert = filepath.Join(dir, previous+".crt")
		}
		return runControlPlane(t, cfg)
	}
	cp := start("old", "", "")
	d := newDemoTenant(t, cp)
	ten, gw := d.ten, d.gw
	tok, err := cp.EnrollmentToken(sys, ten, gw, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr, gwDir := freeAddr(t), t.TempDir()
	g := startGateway(t, cp.AgentEndpoint(), gwDir, addr, "PORTCULLIS_ENROLL_TOKEN="+tok)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.out)
		}
	})
	pinWhenDiscovered(t, cp, ten, "demo", "echo")
	waitEnforced(t, cp, ten, gw, addr, "the policy under the old CA")
	toggle := func(what string) {
		t.Helper()
		if err := cp.Inventory.Unpin(sys, ten, toolOf(t, cp.DB, "demo", "echo").ID); err != nil {
			t.Fatal(err)
		}
		waitEnforced(t, cp, ten, gw, addr, what)
		pinWhenDiscovered(t, cp, ten, "demo", "echo")
		waitEnforced(t, cp, ten, gw, addr, what)
	}
	trusts := func(want ...string) func() error {
		return func() error {
			got, err := os.ReadFile(filepath.Join(gwDir, "ca.crt"))
			if err != nil {
				return err
			}
			var all []byte
			for _, w := range want {
				all = append(all, pems[w]...)
			}
			if !bytes.Equal(got, all) {
				return fmt.Errorf("the gateway trusts %d bytes of CAs, want %v", len(got), want)
			}
			return nil
		}
	}

	// Phase 1: the next CA is announced.
	cp.stop()
	cp = start("old", "new", "")
	eventually(t, "the gateway trusts the old and the next CA", trusts("old", "new"))
	cp.stop()

	// Phase 2: the switch.
	cp = start("new", "", "old")
	toggle("a change after the switch")
	eventually(t, "the gateway trusts the new CA alone", trusts("new"))
	eventually(t, "the gateway renews into the new CA", func() error {
		pair, err := os.ReadFile(filepath.Join(gwDir, "agent.pem"))
		if err != nil {
			return err
		}
		cert, err := tls.X509KeyPair(pair, pair)
		if err != nil {
			return err
		}
		return cert.Leaf.CheckSignatureFrom(cp.CA.Cert)
	})
	tok2, err := cp.EnrollmentToken(sys, ten, gw, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr2 := freeAddr(t)
	startGateway(t, cp.AgentEndpoint(), t.TempDir(), addr2, "PORTCULLIS_ENROLL_TOKEN="+tok2)
	waitEnforced(t, cp, ten, gw, addr2, "a gateway enrolled during the overlap")
	cp.stop()

	// Phase 3: the old CA is gone.
	cp = start("new", "", "")
	defer cp.stop()
	toggle("a change after the old CA was dropped")
}
