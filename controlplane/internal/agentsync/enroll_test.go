package agentsync_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/agentsync"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/app"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/inventory"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/policy"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

func TestEnrollTokenIsOneTime(t *testing.T) {
	ctx := viewer.System(context.Background())
	a, err := app.New(ctx, app.Config{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", KEK: testutil.KEK(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ten, err := a.Tenants.CreateTenant(ctx, "A", "ten-a", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := a.Tenants.CreateGateway(ctx, ten.ID, "gw")
	if err != nil {
		t.Fatal(err)
	}
	token, err := a.EnrollmentToken(ctx, ten.ID, gw.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := a.EnrollmentToken(ctx, ten.ID, gw.ID, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := inventory.New(a.DB, a.Policy, nil)
	tel, _ := telemetry.New(a.SQL, nil)
	srv, err := agentsync.New(agentsync.Config{DB: a.DB, CA: a.CA, Policy: a.Policy, Broker: policy.NewLocalBroker(), Inventory: inv, Telemetry: tel})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)

	resp, err := srv.Enroll(ctx, &agentv1.EnrollRequest{Token: token, CsrDer: csr, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(resp.GetCertificateDer())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(a.CA.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify as a client certificate: %v", err)
	}
	if resp.GetGatewayId() != gw.ID.String() || string(resp.GetPolicyPublicKey()) != string(ten.SigningPublicKey) {
		t.Fatalf("enroll response for the wrong gateway or key: %v", resp)
	}
	for name, tok := range map[string]string{"reused": token, "expired": expired, "malformed": "pcgw1.x.y", "empty": ""} {
		t.Run(name, func(t *testing.T) {
			_, err := srv.Enroll(ctx, &agentv1.EnrollRequest{Token: tok, CsrDer: csr})
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("Enroll with a %s token: %v, want Unauthenticated", name, err)
			}
		})
	}
	n, err := a.DB.Agent.Query().Count(ctx)
	if err != nil || n != 1 {
		t.Fatalf("%d agents stored, want 1 (err %v)", n, err)
	}

	// A token for three replicas enrolls three agents, even when eight race for it.
	if _, err := a.EnrollmentTokenUses(ctx, ten.ID, gw.ID, time.Hour, 0); err == nil {
		t.Fatal("a token with 0 uses was issued")
	}
	if _, err := a.EnrollmentTokenUses(ctx, ten.ID, gw.ID, time.Hour, 1001); err == nil {
		t.Fatal("a token with 1001 uses was issued")
	}
	shared, err := a.EnrollmentTokenUses(ctx, ten.ID, gw.ID, time.Hour, 3)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := srv.Enroll(ctx, &agentv1.EnrollRequest{Token: shared, CsrDer: csr, Hostname: "replica"})
			errs <- err
		}()
	}
	ok := 0
	for range 8 {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case status.Code(err) != codes.Unauthenticated:
			t.Fatalf("enrolling with a spent shared token: %v", err)
		}
	}
	if ok != 3 {
		t.Fatalf("a 3-use token enrolled %d agents", ok)
	}
}

func pool(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}
