// Package testcontrol is an in-process fake control plane for the agent's
// tests: it enrolls agents with a throwaway CA and lets a test script what
// Sync sends and observe what the agent answers.
package testcontrol

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Server is a fake AgentService.
type Server struct {
	agentv1.UnimplementedAgentServiceServer
	Addr      string
	GatewayID string
	PolicyKey ed25519.PrivateKey
	// Bundles are sent to every Sync stream, in order.
	Bundles chan *agentv1.SignedBundle
	// Replies receive every ACK and NACK.
	Replies chan *agentv1.SyncRequest
	// Hellos receive every Hello.
	Hellos chan *agentv1.Hello
	// OnTelemetry, if set, sees every telemetry batch before it is acknowledged.
	OnTelemetry func([]*agentv1.CallEvent)
	caCert      *x509.Certificate
	caKey       *ecdsa.PrivateKey
	srv         *grpc.Server
	nonce       atomic.Int64
}

// Start listens on a loopback port; stop it with Close.
func Start() (*Server, error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(der)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	_, policyKey, _ := ed25519.GenerateKey(rand.Reader)
	s := &Server{
		GatewayID: "gw-test", PolicyKey: policyKey, caCert: caCert, caKey: caKey,
		Bundles: make(chan *agentv1.SignedBundle, 16), Replies: make(chan *agentv1.SyncRequest, 16), Hellos: make(chan *agentv1.Hello, 16),
	}
	s.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, caCert.Raw}, PrivateKey: srvKey}},
		ClientAuth:   tls.VerifyClientCertIfGiven, ClientCAs: pool, MinVersion: tls.VersionTLS13,
	})))
	agentv1.RegisterAgentServiceServer(s.srv, s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Addr = ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server and its streams.
func (s *Server) Close() { s.srv.Stop() }

// Token is an enrollment token pinning this server's CA.
func (s *Server) Token() string {
	sum := sha256.Sum256(s.caCert.Raw)
	return "pcgw1." + base64.RawURLEncoding.EncodeToString(make([]byte, 32)) + "." + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Sign signs a bundle with the policy key given to agents.
func (s *Server) Sign(b *agentv1.PolicyBundle) *agentv1.SignedBundle {
	return SignWith(s.PolicyKey, b)
}

// SignWith signs a bundle with any key (e.g. a wrong one).
func SignWith(key ed25519.PrivateKey, b *agentv1.PolicyBundle) *agentv1.SignedBundle {
	p, _ := proto.Marshal(b)
	return &agentv1.SignedBundle{Payload: p, Signature: ed25519.Sign(key, p)}
}

// Enroll issues a client certificate for any well-formed request.
func (s *Server) Enroll(_ context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	csr, err := x509.ParseCertificateRequest(req.GetCsrDer())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, csr.PublicKey, s.caKey)
	if err != nil {
		return nil, err
	}
	return &agentv1.EnrollResponse{AgentId: "agent-1", GatewayId: s.GatewayID, TenantId: "t", CertificateDer: der,
		CaCertificateDer: s.caCert.Raw, PolicyPublicKey: s.PolicyKey.Public().(ed25519.PublicKey)}, nil
}

// Sync requires a client certificate, records the Hello, then sends queued
// bundles and records the agent's ACKs and NACKs.
func (s *Server) Sync(stream agentv1.AgentService_SyncServer) error {
	p, _ := peer.FromContext(stream.Context())
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); !ok || len(ti.State.VerifiedChains) == 0 {
		return status.Error(codes.Unauthenticated, "client certificate required")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	s.Hellos <- first.GetHello()
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			if m.GetAck() != nil || m.GetNack() != nil {
				s.Replies <- m
			}
		}
	}()
	for {
		select {
		case err := <-errc:
			return err
		case b := <-s.Bundles:
			n := strconv.FormatInt(s.nonce.Add(1), 10)
			if err := stream.Send(&agentv1.SyncResponse{Message: &agentv1.SyncResponse_Bundle{Bundle: &agentv1.BundleUpdate{Bundle: b, Nonce: n}}}); err != nil {
				return err
			}
		}
	}
}

// ReportTelemetry acknowledges every batch, after OnTelemetry.
func (s *Server) ReportTelemetry(stream agentv1.AgentService_ReportTelemetryServer) error {
	n := 0
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&agentv1.ReportTelemetryResponse{Accepted: uint64(n)})
		}
		if err != nil {
			return err
		}
		if s.OnTelemetry != nil {
			s.OnTelemetry(req.GetEvents())
		}
		n += len(req.GetEvents())
	}
}
