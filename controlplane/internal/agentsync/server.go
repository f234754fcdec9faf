// Package agentsync implements AgentService: enrollment, the policy Sync
// stream and telemetry ingestion for data-plane agents.
package agentsync

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/bound"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/inventory"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/pki"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/policy"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/enrollmenttoken"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// CapabilityVersion is the Sync protocol version this server speaks.
const CapabilityVersion = 1

// Config configures the Server.
type Config struct {
	DB        *ent.Client
	CA        *pki.CA
	Policy    *policy.Service
	Broker    policy.Broker
	Inventory *inventory.Service
	Telemetry *telemetry.Service
	Logger    *slog.Logger
	// KeepaliveInterval between server keepalives on Sync (default 15s).
	KeepaliveInterval time.Duration
	// HelloTimeout bounds the wait for the first message (default 10s).
	HelloTimeout time.Duration
	// CertValidity of agent certificates (default 30 days; agents renew
	// them two thirds into it).
	CertValidity time.Duration
	// Presence, when set, records which agents hold a stream (in Redis, for
	// replicas); keepalives then refresh it instead of writing the database.
	Presence Presence
}

// Presence records agents holding a Sync stream on this replica.
type Presence interface {
	Seen(ctx context.Context, agentID uuid.UUID) error
	Gone(ctx context.Context, agentID uuid.UUID) error
}

// Server implements agentv1.AgentServiceServer.
type Server struct {
	agentv1.UnimplementedAgentServiceServer
	cfg Config
	log *slog.Logger
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil || cfg.CA == nil || cfg.Policy == nil || cfg.Broker == nil || cfg.Inventory == nil || cfg.Telemetry == nil {
		return nil, errors.New("agentsync.New: DB, CA, Policy, Broker, Inventory and Telemetry are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = 15 * time.Second
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	if cfg.CertValidity == 0 {
		cfg.CertValidity = 30 * 24 * time.Hour
	}
	if cfg.CertValidity < time.Minute {
		return nil, fmt.Errorf("agent certificate lifetime %s is under a minute", cfg.CertValidity)
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "agentsync")}, nil
}

var errBadToken = status.Error(codes.Unauthenticated, "enrollment token is invalid, expired, revoked or already used; create a new one in the console")

// Enroll redeems a one-time token for a client certificate.
func (s *Server) Enroll(ctx context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	ctx = viewer.System(ctx) // agents are authenticated by token and certificate, not by a viewer
	secret, ok := tokenSecret(req.GetToken())
	if !ok {
		return nil, errBadToken
	}
	if len(req.GetHostname()) > 255 || len(req.GetAgentVersion()) > 64 {
		return nil, status.Error(codes.InvalidArgument, "hostname or agent version too long")
	}
	now := time.Now()
	tok, err := s.cfg.DB.EnrollmentToken.Query().Where(enrollmenttoken.SecretHash(tenant.HashSecret(secret))).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, errBadToken
	} else if err != nil {
		return nil, status.Error(codes.Internal, "looking up enrollment token")
	}
	if tok.Uses >= tok.MaxUses || now.After(tok.ExpiresAt) {
		return nil, errBadToken
	}
	// Claim a use atomically: concurrent enrollments cannot exceed max_uses.
	n, err := s.cfg.DB.EnrollmentToken.Update().Where(enrollmenttoken.ID(tok.ID), enrollmenttoken.UsesLT(tok.MaxUses)).
		AddUses(1).SetUsedAt(now).Save(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, "claiming enrollment token")
	}
	if n != 1 {
		return nil, errBadToken
	}
	agentID := uuid.New()
	certDER, err := s.cfg.CA.SignAgentCSR(req.GetCsrDer(), pki.AgentURI(tok.TenantID.String(), tok.GatewayID.String(), agentID.String()), s.cfg.CertValidity)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	ten, err := s.cfg.DB.Tenant.Get(ctx, tok.TenantID)
	if err != nil {
		return nil, status.Error(codes.Internal, "loading tenant")
	}
	if err := s.cfg.DB.Agent.Create().SetID(agentID).SetTenantID(tok.TenantID).SetGatewayID(tok.GatewayID).
		SetHostname(req.GetHostname()).SetVersion(req.GetAgentVersion()).
		SetCertFingerprint(pki.Fingerprint(certDER)).SetCertExpiresAt(now.Add(s.cfg.CertValidity)).Exec(ctx); err != nil {
		return nil, status.Error(codes.Internal, "storing agent")
	}
	s.log.Info("agent enrolled", "agent", agentID, "gateway", tok.GatewayID, "hostname", req.GetHostname())
	return &agentv1.EnrollResponse{
		AgentId: agentID.String(), GatewayId: tok.GatewayID.String(), TenantId: tok.TenantID.String(),
		CertificateDer: certDER, CaCertificateDer: s.cfg.CA.Cert.Raw, PolicyPublicKey: ten.SigningPublicKey,
	}, nil
}

// authenticate maps the verified client certificate to an agent.
func (s *Server) authenticate(ctx context.Context) (*ent.Agent, string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, "", status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil, "", status.Error(codes.Unauthenticated, "a client certificate from enrollment is required")
	}
	leaf := ti.State.VerifiedChains[0][0]
	if !hasClientAuth(leaf) {
		return nil, "", status.Error(codes.Unauthenticated, "certificate is not a client certificate")
	}
	fp := pki.Fingerprint(leaf.Raw)
	a, err := s.cfg.DB.Agent.Query().Where(agent.Or(agent.CertFingerprint(fp), agent.PreviousCertFingerprint(fp))).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, "", status.Error(codes.Unauthenticated, "unknown agent certificate (its gateway may have been deleted); enroll again")
	} else if err != nil {
		return nil, "", status.Error(codes.Internal, "looking up agent")
	}
	if a.Revoked {
		return nil, "", status.Error(codes.PermissionDenied, "agent has been revoked")
	}
	if a.CertFingerprint == fp && a.PreviousCertFingerprint != nil {
		// The agent uses its renewed certificate: the one it replaced is done.
		if err := a.Update().ClearPreviousCertFingerprint().Exec(ctx); err != nil {
			return nil, "", status.Error(codes.Internal, "recording agent")
		}
	}
	return a, fp, nil
}

// Renew issues a new certificate, same agent identity, for the key in the
// request. The one it replaces stays accepted until the agent first uses
// the new one, so a renewal whose answer was lost can be asked again.
func (s *Server) Renew(ctx context.Context, req *agentv1.RenewRequest) (*agentv1.RenewResponse, error) {
	ctx = viewer.System(ctx)
	a, presented, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	certDER, err := s.cfg.CA.SignAgentCSR(req.GetCsrDer(), pki.AgentURI(a.TenantID.String(), a.GatewayID.String(), a.ID.String()), s.cfg.CertValidity)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// Presented with the previous certificate (a retry): that one stays the
	// fallback; presented with the current one: the current becomes it.
	previous := a.CertFingerprint
	if a.PreviousCertFingerprint != nil && *a.PreviousCertFingerprint == presented {
		previous = presented
	}
	if err := a.Update().SetCertFingerprint(pki.Fingerprint(certDER)).SetPreviousCertFingerprint(previous).
		SetCertExpiresAt(now.Add(s.cfg.CertValidity)).SetRenewedAt(now).Exec(ctx); err != nil {
		return nil, status.Error(codes.Internal, "recording the renewed certificate")
	}
	s.log.Info("agent certificate renewed", "agent", a.ID, "gateway", a.GatewayID, "expires", now.Add(s.cfg.CertValidity))
	return &agentv1.RenewResponse{CertificateDer: certDER, CaCertificateDer: s.cfg.CA.Cert.Raw}, nil
}

// stillEnrolled refuses an agent that was deleted (with its gateway) or
// revoked since its stream opened.
func (s *Server) stillEnrolled(ctx context.Context, id uuid.UUID) error {
	a, err := s.cfg.DB.Agent.Get(ctx, id)
	switch {
	case ent.IsNotFound(err):
		return status.Error(codes.PermissionDenied, "this agent's gateway was deleted from the control plane; the gateway keeps its last policy until stopped")
	case err != nil:
		return status.Error(codes.Unavailable, "looking up agent")
	case a.Revoked:
		return status.Error(codes.PermissionDenied, "agent has been revoked")
	}
	return nil
}

func hasClientAuth(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth {
			return true
		}
	}
	return false
}

func nonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Sync runs one agent's policy stream.
func (s *Server) Sync(stream agentv1.AgentService_SyncServer) error {
	ctx := viewer.System(stream.Context())
	a, _, err := s.authenticate(ctx)
	if err != nil {
		return err
	}
	log := s.log.With("agent", a.ID, "gateway", a.GatewayID)

	msgs := make(chan *agentv1.SyncRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	var hello *agentv1.Hello
	select {
	case m := <-msgs:
		hello = m.GetHello()
	case err := <-recvErr:
		return err
	case <-time.After(s.cfg.HelloTimeout):
		return status.Error(codes.DeadlineExceeded, "no Hello received")
	}
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message must be Hello")
	}
	if hello.GetAgentId() != a.ID.String() {
		return status.Error(codes.PermissionDenied, "Hello agent_id does not match the client certificate")
	}
	if hello.GetCapabilityVersion() < 1 {
		return status.Error(codes.FailedPrecondition, "capability version 1 or later required")
	}
	if err := a.Update().SetConnected(true).SetLastSeen(time.Now()).SetAppliedVersion(hello.GetLastAppliedVersion()).
		SetHostname(bound.String(hello.GetHostname(), 255)).SetVersion(bound.String(hello.GetAgentVersion(), 64)).Exec(ctx); err != nil {
		return status.Error(codes.Internal, "recording agent")
	}
	s.seen(ctx, log, a.ID)
	log.Info("agent connected", "applied_version", hello.GetLastAppliedVersion())
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.cfg.DB.Agent.UpdateOneID(a.ID).SetConnected(false).SetLastSeen(time.Now()).Exec(dctx); err != nil && !ent.IsNotFound(err) {
			log.Warn("recording disconnect", "err", err)
		}
		if s.cfg.Presence != nil {
			if err := s.cfg.Presence.Gone(dctx, a.ID); err != nil {
				log.Warn("recording disconnect in Redis; the mark expires on its own", "err", err)
			}
		}
		log.Info("agent disconnected")
	}()

	changed, unsubscribe := s.cfg.Broker.Subscribe(a.GatewayID)
	defer unsubscribe()
	keepalive := time.NewTicker(s.cfg.KeepaliveInterval)
	defer keepalive.Stop()

	var sentVersion uint64
	pending := map[string]uint64{} // nonce → version awaiting ACK/NACK
	push := func() error {
		sb, version, err := s.cfg.Policy.Latest(ctx, a.GatewayID)
		if err != nil {
			log.Error("loading policy", "err", err)
			return status.Error(codes.Internal, "loading policy")
		}
		if version == sentVersion {
			return nil
		}
		n := nonce()
		if len(pending) > 64 {
			clear(pending)
		}
		pending[n] = version
		sentVersion = version
		log.Debug("pushing policy", "version", version)
		return stream.Send(&agentv1.SyncResponse{Message: &agentv1.SyncResponse_Bundle{Bundle: &agentv1.BundleUpdate{Bundle: sb, Nonce: n}}})
	}
	if err := push(); err != nil {
		return err
	}
	if err := stream.Send(&agentv1.SyncResponse{Message: &agentv1.SyncResponse_Trust{Trust: &agentv1.TrustUpdate{CaCertificatesDer: s.cfg.CA.Trusted()}}}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-changed:
			if err := s.stillEnrolled(ctx, a.ID); err != nil {
				log.Info("cutting the stream", "reason", err)
				return err
			}
			if err := push(); err != nil {
				return err
			}
		case <-keepalive.C:
			s.seen(ctx, log, a.ID)
			if err := stream.Send(&agentv1.SyncResponse{Message: &agentv1.SyncResponse_Keepalive{Keepalive: &agentv1.Keepalive{SentAt: timestamppb.Now()}}}); err != nil {
				return err
			}
		case m := <-msgs:
			if err := s.handle(ctx, log, a, m, pending); err != nil {
				return err
			}
		}
	}
}

func (s *Server) handle(ctx context.Context, log *slog.Logger, a *ent.Agent, m *agentv1.SyncRequest, pending map[string]uint64) error {
	switch msg := m.GetMessage().(type) {
	case *agentv1.SyncRequest_Ack:
		v, ok := pending[msg.Ack.GetNonce()]
		if !ok {
			return status.Error(codes.InvalidArgument, "ACK for an unknown nonce")
		}
		delete(pending, msg.Ack.GetNonce())
		log.Info("policy acknowledged", "version", v)
		now := time.Now()
		return s.cfg.DB.Agent.UpdateOneID(a.ID).SetAppliedVersion(v).SetAppliedAt(now).SetLastNack("").SetLastSeen(now).Exec(ctx)
	case *agentv1.SyncRequest_Nack:
		v, ok := pending[msg.Nack.GetNonce()]
		if !ok {
			return status.Error(codes.InvalidArgument, "NACK for an unknown nonce")
		}
		delete(pending, msg.Nack.GetNonce())
		log.Warn("policy refused by agent", "version", v, "error", msg.Nack.GetError())
		return s.cfg.DB.Agent.UpdateOneID(a.ID).SetAppliedVersion(msg.Nack.GetAppliedVersion()).
			SetLastNack(bound.String(fmt.Sprintf("version %d: %s", v, msg.Nack.GetError()), 4096)).SetLastSeen(time.Now()).Exec(ctx)
	case *agentv1.SyncRequest_Inventory:
		if err := s.cfg.Inventory.ApplyReport(ctx, a, msg.Inventory); err != nil {
			log.Warn("inventory report refused", "err", err)
		}
		return nil
	case *agentv1.SyncRequest_Keepalive:
		if s.cfg.Presence != nil {
			return nil // the stream's own keepalive refreshes presence
		}
		return s.cfg.DB.Agent.UpdateOneID(a.ID).SetLastSeen(time.Now()).Exec(ctx)
	case *agentv1.SyncRequest_Hello:
		return status.Error(codes.InvalidArgument, "Hello may only be sent once")
	default:
		return status.Error(codes.InvalidArgument, "empty or unknown Sync message")
	}
}

// seen refreshes the agent's presence mark, when presence is kept in Redis.
func (s *Server) seen(ctx context.Context, log *slog.Logger, id uuid.UUID) {
	if s.cfg.Presence == nil {
		return
	}
	if err := s.cfg.Presence.Seen(ctx, id); err != nil {
		log.Warn("recording presence in Redis", "err", err)
	}
}

// ReportTelemetry stores batches of call events.
func (s *Server) ReportTelemetry(stream agentv1.AgentService_ReportTelemetryServer) error {
	ctx := viewer.System(stream.Context())
	a, _, err := s.authenticate(ctx)
	if err != nil {
		return err
	}
	var accepted uint64
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&agentv1.ReportTelemetryResponse{Accepted: accepted})
		}
		if err != nil {
			return err
		}
		n, err := s.cfg.Telemetry.Ingest(ctx, a, req.GetEvents(), req.GetDropped())
		accepted += uint64(n)
		if err != nil {
			return status.Error(codes.ResourceExhausted, err.Error())
		}
	}
}
