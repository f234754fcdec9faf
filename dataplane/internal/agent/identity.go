package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/bundle"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Identity is what enrollment gave this agent, kept in the data directory.
type Identity struct {
	AgentID         string `json:"agent_id"`
	GatewayID       string `json:"gateway_id"`
	TenantID        string `json:"tenant_id"`
	PolicyPublicKey []byte `json:"policy_public_key"`
	// NextPolicyPublicKey is the key a rotation announced (in a bundle
	// signed by PolicyPublicKey): bundles signed by it are accepted, and the
	// first one retires PolicyPublicKey.
	NextPolicyPublicKey []byte `json:"next_policy_public_key,omitempty"`
	// cert is the client certificate, swapped when it is renewed: new
	// handshakes use the newest.
	cert   atomic.Pointer[tls.Certificate]
	caPool atomic.Pointer[x509.CertPool] // replaced by a TrustUpdate
}

const (
	identityFile = "identity.json"
	keyFile      = "agent.key"
	certFile     = "agent.crt"
	// renewedFile holds a renewed certificate and its key in one file, so
	// that replacing the pair is one atomic rename; it wins over the
	// enrollment's pair.
	renewedFile = "agent.pem"
	caFile      = "ca.crt"
)

// loadIdentity reads the identity; it returns (nil, nil) when the agent has not enrolled.
func loadIdentity(dir string) (*Identity, error) {
	raw, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	id := &Identity{}
	if err := json.Unmarshal(raw, id); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", identityFile, err)
	}
	var cert tls.Certificate
	if pair, rerr := os.ReadFile(filepath.Join(dir, renewedFile)); rerr == nil {
		cert, err = tls.X509KeyPair(pair, pair)
	} else {
		cert, err = tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	}
	if err != nil {
		return nil, fmt.Errorf("loading agent certificate: %w", err)
	}
	id.cert.Store(&cert)
	caPEM, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("loading control-plane CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	id.caPool.Store(pool)
	return id, nil
}

var (
	errCAMismatch = errors.New("control plane CA does not match the enrollment token")
	errBadToken   = errors.New("enrollment token is malformed: expected pcgw1.<secret>.<ca-hash>, as shown in the console")
)

// parseToken splits "pcgw1.<secret>.<sha256 of CA, base64url>".
func parseToken(token string) (caHash []byte, err error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 || parts[0] != "pcgw1" {
		return nil, errBadToken
	}
	caHash, err = base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(caHash) != sha256.Size {
		return nil, fmt.Errorf("%w (bad CA hash)", errBadToken)
	}
	return caHash, nil
}

// enroll redeems the token and writes the identity into dir.
func enroll(ctx context.Context, dir, target, token, hostname, version string) (*Identity, error) {
	caHash, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("control plane address %q must be host:port: %w", target, err)
	}
	// Trust on first use, pinned by the token: the server chain must contain a
	// CA whose SHA-256 is in the token, and the leaf must verify against it.
	tlsCfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			for _, c := range cs.PeerCertificates {
				sum := sha256.Sum256(c.Raw)
				if !bytes.Equal(sum[:], caHash) {
					continue
				}
				pool := x509.NewCertPool()
				pool.AddCert(c)
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: host})
				return err
			}
			return errCAMismatch
		},
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	key, csr, err := newKey()
	if err != nil {
		return nil, err
	}
	resp, err := agentv1.NewAgentServiceClient(conn).Enroll(ctx, &agentv1.EnrollRequest{
		Token: strings.TrimSpace(token), CsrDer: csr, Hostname: hostname, AgentVersion: version,
	})
	if err != nil {
		return nil, fmt.Errorf("enrolling with %s: %w", target, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	id := Identity{AgentID: resp.GetAgentId(), GatewayID: resp.GetGatewayId(), TenantID: resp.GetTenantId(), PolicyPublicKey: resp.GetPolicyPublicKey()}
	idJSON, _ := json.MarshalIndent(&id, "", "  ")
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.GetCertificateDer()}), 0o644},
		{caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.GetCaCertificateDer()}), 0o644},
		{identityFile, idJSON, 0o600}, // last: its presence means enrolled
	}
	for _, f := range files {
		if err := bundle.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, fmt.Errorf("saving %s: %w", f.name, err)
		}
	}
	return loadIdentity(dir)
}

// save rewrites identity.json (after a key rotation).
func (id *Identity) save(dir string) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	return bundle.WriteFileAtomic(filepath.Join(dir, identityFile), b, 0o600)
}

// keyID names a policy key as the control plane does: hex of the first 8
// bytes of its SHA-256.
func keyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// newKey makes a key pair and a certificate signing request for it.
func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	return key, csr, err
}

// transportCredentials are the mTLS credentials for Sync and ReportTelemetry;
// each handshake presents the newest certificate.
func (id *Identity) transportCredentials(host string) credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.cert.Load(), nil
		},
		// Verified against the CAs trusted at each handshake, which a
		// TrustUpdate may have changed since the connection was made.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyConnection, which checks the chain and name
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the control plane sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: id.caPool.Load(), Intermediates: inter, DNSName: host})
			return err
		},
	})
}

// trust replaces the CAs trusted for the control plane with those the
// control plane listed (over a connection verified with the CAs trusted so
// far), keeping them in ca.crt.
func (id *Identity) trust(dir string, ders [][]byte) error {
	if len(ders) == 0 || len(ders) > 8 {
		return fmt.Errorf("%d CA certificates", len(ders))
	}
	pool := x509.NewCertPool()
	var pemBytes []byte
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil || !c.IsCA {
			return errors.New("a listed certificate is not a CA certificate")
		}
		pool.AddCert(c)
		pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if pool.Equal(id.caPool.Load()) {
		return nil
	}
	if err := bundle.WriteFileAtomic(filepath.Join(dir, caFile), pemBytes, 0o644); err != nil {
		return err
	}
	id.caPool.Store(pool)
	return nil
}

// NotAfter is when the client certificate expires.
func (id *Identity) NotAfter() time.Time { return id.cert.Load().Leaf.NotAfter }

// renewAt is when to renew: two thirds into the certificate's lifetime.
func (id *Identity) renewAt() time.Time {
	leaf := id.cert.Load().Leaf
	return leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 3)
}

// renew asks the control plane for a certificate for a new key, checks it,
// keeps it in dir and uses it for new connections.
func (id *Identity) renew(ctx context.Context, client agentv1.AgentServiceClient, dir string) error {
	key, csr, err := newKey()
	if err != nil {
		return err
	}
	resp, err := client.Renew(ctx, &agentv1.RenewRequest{CsrDer: csr})
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(resp.GetCertificateDer())
	if err != nil {
		return fmt.Errorf("the renewed certificate does not parse: %w", err)
	}
	// Issued by the control plane's current CA (which, right after a CA
	// switch, may not be in the trust list yet: the answer came over a
	// connection verified with that list).
	caPool := x509.NewCertPool()
	if ca, err := x509.ParseCertificate(resp.GetCaCertificateDer()); err == nil {
		caPool.AddCert(ca)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: caPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("the renewed certificate does not verify against the control plane's CA: %w", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return errors.New("the renewed certificate is not for the key this agent sent")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	pair := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.GetCertificateDer()}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	if err := bundle.WriteFileAtomic(filepath.Join(dir, renewedFile), pair, 0o600); err != nil {
		return fmt.Errorf("saving the renewed certificate: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{resp.GetCertificateDer()}, PrivateKey: key, Leaf: leaf}
	id.cert.Store(&cert)
	return nil
}
