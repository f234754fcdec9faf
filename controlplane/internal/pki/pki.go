// Package pki holds the control plane's certificate authority: it issues the
// gRPC server certificate and the client certificates agents get at enrollment.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority held in memory.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	now  func() time.Time
	// During a CA rotation (docs/trust.md): next is announced to agents
	// before the control plane switches to it; previous is the CA it
	// switched from, still trusted for the client certificates of agents
	// that have not renewed yet.
	next, previous []*x509.Certificate
}

// Rotating sets the CAs of a rotation: next to announce, previous to keep
// trusting for agents' client certificates.
func (ca *CA) Rotating(next, previous []*x509.Certificate) {
	ca.next, ca.previous = next, previous
}

// Trusted is what agents are to trust for the control plane: this CA and,
// during the first phase of a rotation, the next one.
func (ca *CA) Trusted() [][]byte {
	out := [][]byte{ca.Cert.Raw}
	for _, c := range ca.next {
		out = append(out, c.Raw)
	}
	return out
}

// ParseCertificates reads PEM certificates.
func ParseCertificates(pemBytes []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		if !c.IsCA {
			return nil, fmt.Errorf("certificate %q is not a CA", c.Subject)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

// LoadOrCreate reads the CA from certPath and keyPath, creating both (mode
// 0600 for the key) when neither exists.
func LoadOrCreate(certPath, keyPath string) (*CA, error) {
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		return Parse(certPEM, keyPEM)
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("reading CA (both %s and %s must exist, or neither): cert: %v, key: %v", certPath, keyPath, certErr, keyErr)
	}
	ca, certPEM, keyPEM, err := Generate()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return nil, fmt.Errorf("creating CA directory: %w", err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("writing CA key: %w", err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("writing CA certificate: %w", err)
	}
	return ca, nil
}

// Sealer seals and opens the CA key at rest (keyring.KEK).
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// LoadOrCreateSealed is LoadOrCreate for a CA the control plane keeps in its
// data dir: the key is stored sealed at sealedKeyPath. A plaintext key at
// plainKeyPath (from before keys were encrypted at rest) is sealed and
// removed.
func LoadOrCreateSealed(certPath, sealedKeyPath, plainKeyPath string, s Sealer, aad []byte) (*CA, error) {
	certPEM, certErr := os.ReadFile(certPath)
	sealed, sealedErr := os.ReadFile(sealedKeyPath)
	plain, plainErr := os.ReadFile(plainKeyPath)
	switch {
	case certErr == nil && sealedErr == nil:
		keyPEM, err := s.Open(sealed, aad)
		if err != nil {
			return nil, fmt.Errorf("opening the CA key %s: %w", sealedKeyPath, err)
		}
		return Parse(certPEM, keyPEM)
	case certErr == nil && plainErr == nil:
		ca, err := Parse(certPEM, plain)
		if err != nil {
			return nil, err
		}
		if err := writeSealed(sealedKeyPath, plain, s, aad); err != nil {
			return nil, err
		}
		if err := os.Remove(plainKeyPath); err != nil {
			return nil, fmt.Errorf("removing the plaintext CA key after sealing it: %w", err)
		}
		return ca, nil
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(sealedErr, os.ErrNotExist) && errors.Is(plainErr, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("reading CA (%s with %s or %s, or none of them): cert: %v, sealed key: %v", certPath, sealedKeyPath, plainKeyPath, certErr, sealedErr)
	}
	ca, certPEM, keyPEM, err := Generate()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return nil, fmt.Errorf("creating CA directory: %w", err)
	}
	if err := writeSealed(sealedKeyPath, keyPEM, s, aad); err != nil {
		return nil, err
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("writing CA certificate: %w", err)
	}
	return ca, nil
}

func writeSealed(path string, keyPEM []byte, s Sealer, aad []byte) error {
	sealed, err := s.Seal(keyPEM, aad)
	if err != nil {
		return fmt.Errorf("sealing the CA key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, sealed, 0o600); err != nil {
		return fmt.Errorf("writing the sealed CA key: %w", err)
	}
	return os.Rename(tmp, path)
}

// Generate creates a new self-signed CA and returns it with its PEM encodings.
func Generate() (*CA, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "Portcullis agent CA", Organization: []string{"Portcullis"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("self-signing CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return &CA{Cert: cert, key: key, now: time.Now}, certPEM, keyPEM, nil
}

// Parse reads a CA from PEM.
func Parse(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("CA certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate is not a CA (basicConstraints CA:FALSE)")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("CA key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing CA key (PKCS#8 expected): %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("CA key cannot sign")
	}
	return &CA{Cert: cert, key: signer, now: time.Now}, nil
}

// Fingerprint is the hex SHA-256 of a certificate's DER bytes.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ServerTLS returns a TLS configuration for the agent gRPC listener: a fresh
// server certificate for hosts, and optional client certificates verified
// against this CA (Enroll has none yet; the other calls check for one).
func (ca *CA) ServerTLS(hosts []string) (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "portcullis control plane"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issuing server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, p := range ca.previous {
		pool.AddCert(p)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key}},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"},
	}, nil
}

// AgentURI names an agent in its certificate.
func AgentURI(tenantID, gatewayID, agentID string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: "portcullis", Path: "/tenant/" + tenantID + "/gateway/" + gatewayID + "/agent/" + agentID}
}

// SignAgentCSR checks a CSR and issues a client certificate for the agent.
func (ca *CA) SignAgentCSR(csrDER []byte, agentURI *url.URL, validity time.Duration) ([]byte, error) {
	if len(csrDER) == 0 || len(csrDER) > 16<<10 {
		return nil, errors.New("certificate signing request is empty or too large")
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate signing request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate signing request signature: %w", err)
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: agentURI.Path},
		URIs:         []*url.URL{agentURI},
		NotBefore:    now.Add(-min(5*time.Minute, validity/10)), // some clock skew, without eating a short lifetime
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issuing agent certificate: %w", err)
	}
	return der, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}
