// Package agent keeps the gateway in step with the control plane: it enrolls,
// holds the Sync stream (reconnecting with jittered backoff), verifies and
// applies signed bundles, caches the last good one on disk, reports
// inventory and ships telemetry.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/backoff"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/bundle"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/metrics"
	"github.com/portcullis-mcp/portcullis/dataplane/internal/telemetry"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// CapabilityVersion is the Sync protocol version this agent speaks.
const CapabilityVersion = 1

// maxBundleMessage bounds a message from the control plane (a signed bundle).
const maxBundleMessage = 64 << 20

// Applier enforces bundles and knows the upstreams' inventory.
type Applier interface {
	// Apply switches enforcement to the bundle; an error refuses it.
	Apply(b *agentv1.PolicyBundle) error
	// Inventory describes the upstreams as last discovered.
	Inventory() *agentv1.InventoryReport
	// InventoryChanged is signalled when Inventory changed.
	InventoryChanged() <-chan struct{}
}

// Config configures an Agent.
type Config struct {
	DataDir      string
	ControlPlane string // host:port of the agent gRPC listener
	EnrollToken  string
	Hostname     string
	Version      string
	Applier      Applier
	Telemetry    *telemetry.Queue
	Logger       *slog.Logger
	// Backoff bounds for reconnecting (defaults 500ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// KeepaliveInterval on the Sync stream (default 15s).
	KeepaliveInterval time.Duration
}

// Agent is the control-plane client of a gateway.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	id      *Identity
	conn    atomic.Pointer[grpc.ClientConn] // replaced after a renewal
	applied atomic.Uint64
	synced  atomic.Bool
	mu      sync.Mutex // serialises Apply and the cache file
}

// New validates cfg.
func New(cfg Config) (*Agent, error) {
	if cfg.DataDir == "" || cfg.ControlPlane == "" || cfg.Applier == nil {
		return nil, errors.New("agent.New: DataDir, ControlPlane and Applier are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Telemetry == nil {
		cfg.Telemetry = telemetry.NewQueue(0)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = 15 * time.Second
	}
	return &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent")}, nil
}

func (a *Agent) bundlePath() string { return filepath.Join(a.cfg.DataDir, "bundle.pb") }

// AppliedVersion is the version of the bundle being enforced (0: none).
func (a *Agent) AppliedVersion() uint64 { return a.applied.Load() }

// Connected reports whether the Sync stream is up and has delivered a bundle.
func (a *Agent) Connected() bool { return a.synced.Load() }

// Start loads the identity (enrolling when there is none) and applies the
// cached bundle, so the gateway enforces policy before the control plane answers.
func (a *Agent) Start(ctx context.Context) error {
	id, err := loadIdentity(a.cfg.DataDir)
	if err != nil {
		return err
	}
	if id == nil {
		if a.cfg.EnrollToken == "" {
			return errors.New("this gateway is not enrolled: pass --enroll-token (create one for the gateway in the console)")
		}
		for attempt := 0; ; attempt++ {
			id, err = enroll(ctx, a.cfg.DataDir, a.cfg.ControlPlane, a.cfg.EnrollToken, a.cfg.Hostname, a.cfg.Version)
			if err == nil {
				break
			}
			if permanent(err) {
				return fmt.Errorf("enrolling: %w", err)
			}
			a.log.Warn("enrollment failed; retrying", "err", err)
			if !a.sleep(ctx, attempt) {
				return fmt.Errorf("enrolling: %w", err)
			}
		}
		a.log.Info("enrolled", "agent", id.AgentID, "gateway", id.GatewayID)
	}
	a.id = id
	conn, err := a.dial()
	if err != nil {
		return err
	}
	a.conn.Store(conn)
	sb, err := bundle.Load(a.bundlePath())
	if err != nil {
		a.log.Error("cached bundle unreadable; waiting for the control plane", "err", err)
		return nil
	}
	if sb != nil {
		if err := a.apply(sb); err != nil {
			a.log.Error("cached bundle refused; waiting for the control plane", "err", err)
		} else {
			a.log.Info("enforcing cached bundle", "version", a.AppliedVersion())
		}
	}
	return nil
}

// dial opens a connection to the control plane with the agent's certificate.
func (a *Agent) dial() (*grpc.ClientConn, error) {
	host, _, _ := net.SplitHostPort(a.cfg.ControlPlane)
	return grpc.NewClient(a.cfg.ControlPlane,
		grpc.WithTransportCredentials(a.id.transportCredentials(host)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		// A bundle carries every approved definition (up to 256 KiB each):
		// past gRPC's default 4 MiB the gateway would never get its policy.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxBundleMessage)),
	)
}

// CertificateExpiry is when the agent's client certificate expires (zero
// before enrollment).
func (a *Agent) CertificateExpiry() time.Time {
	if a.id == nil {
		return time.Time{}
	}
	return a.id.NotAfter()
}

// renewLoop renews the client certificate two thirds into its lifetime,
// retrying with backoff, and moves to a connection that presents it.
func (a *Agent) renewLoop(ctx context.Context) {
	for attempt := 0; ; {
		wait := time.Until(a.id.renewAt())
		if attempt > 0 {
			wait = backoff.Delay(attempt, a.cfg.MinBackoff, a.cfg.MaxBackoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := a.id.renew(rctx, agentv1.NewAgentServiceClient(a.conn.Load()), a.cfg.DataDir)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			attempt++
			metrics.CertRenewalFailures.Inc()
			left := time.Until(a.id.NotAfter())
			level := slog.LevelWarn
			if attempt >= 5 || left < 24*time.Hour {
				level = slog.LevelError // the gateway loses its control plane when the certificate expires
			}
			a.log.Log(ctx, level, "renewing the agent certificate failed; retrying", "err", err, "expires_in", left.Round(time.Second), "attempt", attempt)
			continue
		}
		attempt = 0
		a.log.Info("agent certificate renewed", "expires", a.id.NotAfter())
		// New streams go over a connection that presents the new certificate.
		conn, err := a.dial()
		if err != nil {
			a.log.Error("reconnecting with the renewed certificate", "err", err)
			continue
		}
		if old := a.conn.Swap(conn); old != nil {
			_ = old.Close()
		}
	}
}

// permanent tells enrollment errors that retrying cannot fix: a malformed,
// used or expired token, or a server whose CA is not the token's.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.InvalidArgument, codes.PermissionDenied:
		return true
	}
	return strings.Contains(err.Error(), errCAMismatch.Error()) || errors.Is(err, errBadToken)
}

// apply verifies, enforces and caches a bundle.
func (a *Agent) apply(sb *agentv1.SignedBundle) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, err := bundle.Verify(sb, a.id.PolicyPublicKey, a.id.GatewayID, a.applied.Load())
	byNext := false
	if errors.Is(err, bundle.ErrSignature) && len(a.id.NextPolicyPublicKey) > 0 {
		b, err = bundle.Verify(sb, a.id.NextPolicyPublicKey, a.id.GatewayID, a.applied.Load())
		byNext = err == nil
	}
	if errors.Is(err, bundle.ErrSignature) {
		trusted := keyID(a.id.PolicyPublicKey)
		if len(a.id.NextPolicyPublicKey) > 0 {
			trusted += " and " + keyID(a.id.NextPolicyPublicKey)
		}
		return fmt.Errorf("%w: signed by key %s, this gateway trusts %s (a gateway that missed a key rotation must be enrolled again)", err, sb.GetKeyId(), trusted)
	}
	if err != nil {
		return err
	}
	if b.GetVersion() != a.applied.Load() {
		if err := a.cfg.Applier.Apply(b); err != nil {
			return fmt.Errorf("applying bundle %d: %w", b.GetVersion(), err)
		}
		a.applied.Store(b.GetVersion())
		if err := bundle.Save(a.bundlePath(), sb); err != nil {
			a.log.Error("caching bundle", "err", err) // enforced, but not kept across restarts
		}
	}
	a.trackKeys(b, byNext)
	return nil
}

// trackKeys follows a key rotation: a bundle signed by the announced key
// retires the current one; a bundle signed by the current key announces
// (or, when it names none, withdraws) the next one.
func (a *Agent) trackKeys(b *agentv1.PolicyBundle, byNext bool) {
	cur, next := a.id.PolicyPublicKey, a.id.NextPolicyPublicKey
	switch {
	case byNext:
		cur, next = next, nil
		a.log.Info("policy key rotated: bundles signed by the old key are refused from now on", "key", keyID(cur))
	case !bytes.Equal(b.GetNextPolicyPublicKey(), next):
		next = b.GetNextPolicyPublicKey()
		if len(next) > 0 {
			a.log.Info("policy key rotation announced", "next_key", keyID(next))
		}
	default:
		return
	}
	if len(next) == 0 {
		next = nil
	}
	a.id.PolicyPublicKey, a.id.NextPolicyPublicKey = cur, next
	if err := a.id.save(a.cfg.DataDir); err != nil {
		a.log.Error("saving the policy keys", "err", err) // in force until a restart, which re-learns them from the next bundle
	}
}

// sleep waits a jittered exponential backoff; false when ctx ended.
func (a *Agent) sleep(ctx context.Context, attempt int) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(backoff.Delay(attempt, a.cfg.MinBackoff, a.cfg.MaxBackoff)):
		return true
	}
}

// Run keeps the Sync stream and the telemetry shipper going until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	defer func() { _ = a.conn.Load().Close() }()
	go a.shipTelemetry(ctx)
	go a.renewLoop(ctx)
	for attempt := 0; ctx.Err() == nil; {
		start := time.Now()
		err := a.syncOnce(ctx)
		a.synced.Store(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			attempt = 0 // a long-lived stream resets the backoff
		}
		if c := status.Code(err); c == codes.PermissionDenied || c == codes.Unauthenticated {
			a.log.Error("the control plane refuses this gateway agent; enforcing the last policy and retrying", "reason", status.Convert(err).Message(), "attempt", attempt)
		} else {
			a.log.Warn("sync stream ended; reconnecting", "err", err, "attempt", attempt)
		}
		a.sleep(ctx, attempt)
		attempt++
	}
}

func (a *Agent) syncOnce(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := agentv1.NewAgentServiceClient(a.conn.Load()).Sync(ctx)
	if err != nil {
		return err
	}
	var sendMu sync.Mutex
	send := func(m *agentv1.SyncRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	if err := send(&agentv1.SyncRequest{Message: &agentv1.SyncRequest_Hello{Hello: &agentv1.Hello{
		AgentId: a.id.AgentID, CapabilityVersion: CapabilityVersion, LastAppliedVersion: a.AppliedVersion(),
		AgentVersion: a.cfg.Version, Hostname: a.cfg.Hostname,
	}}}); err != nil {
		return err
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- a.sendLoop(ctx, send) }()
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		select {
		case err := <-sendErr:
			return err
		default:
		}
		if tu := m.GetTrust(); tu != nil {
			if err := a.id.trust(a.cfg.DataDir, tu.GetCaCertificatesDer()); err != nil {
				a.log.Error("the control plane's CA list was not taken", "err", err)
			}
			continue
		}
		bu := m.GetBundle()
		if bu == nil {
			continue // keepalive
		}
		if err := a.apply(bu.GetBundle()); err != nil {
			a.log.Error("bundle refused", "err", err)
			if err := send(&agentv1.SyncRequest{Message: &agentv1.SyncRequest_Nack{Nack: &agentv1.Nack{
				Nonce: bu.GetNonce(), AppliedVersion: a.AppliedVersion(), Error: err.Error(),
			}}}); err != nil {
				return err
			}
			continue
		}
		a.synced.Store(true)
		a.log.Info("bundle applied", "version", a.AppliedVersion())
		if err := send(&agentv1.SyncRequest{Message: &agentv1.SyncRequest_Ack{Ack: &agentv1.Ack{
			Nonce: bu.GetNonce(), Version: a.AppliedVersion(),
		}}}); err != nil {
			return err
		}
	}
}

// sendLoop reports inventory on change and sends keepalives.
func (a *Agent) sendLoop(ctx context.Context, send func(*agentv1.SyncRequest) error) error {
	report := func() error {
		return send(&agentv1.SyncRequest{Message: &agentv1.SyncRequest_Inventory{Inventory: a.cfg.Applier.Inventory()}})
	}
	if err := report(); err != nil {
		return err
	}
	t := time.NewTicker(a.cfg.KeepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.cfg.Applier.InventoryChanged():
			if err := report(); err != nil {
				return err
			}
		case <-t.C:
			if err := send(&agentv1.SyncRequest{Message: &agentv1.SyncRequest_Keepalive{Keepalive: &agentv1.Keepalive{SentAt: timestamppb.Now()}}}); err != nil {
				return err
			}
		}
	}
}

// telemetryWindow is how long the first event of a batch waits for others:
// one batch (a stream, a control-plane write and a spool checkpoint) per
// window instead of one per call, which costs the calls themselves nothing.
const telemetryWindow = 250 * time.Millisecond

// shipTelemetry sends queued call events in batches; failed batches go back to the queue.
func (a *Agent) shipTelemetry(ctx context.Context) {
	const batchSize = 1000
	attempt := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.cfg.Telemetry.Ready():
		case <-time.After(2 * time.Second):
		}
		if a.cfg.Telemetry.Len() < batchSize {
			select {
			case <-ctx.Done():
				return
			case <-time.After(telemetryWindow):
			}
		}
		// Ship what the window gathered, then only full batches: what
		// arrived while shipping waits for the next window rather than
		// trickling out in batches of a few events (a control-plane
		// transaction each).
		for a.cfg.Telemetry.Len() > 0 && ctx.Err() == nil {
			batch, dropped := a.cfg.Telemetry.Take(batchSize)
			if err := a.shipBatch(ctx, agentv1.NewAgentServiceClient(a.conn.Load()), batch, dropped); err != nil {
				a.cfg.Telemetry.Requeue(dropped)
				a.log.Debug("shipping telemetry failed", "err", err)
				a.sleep(ctx, attempt)
				attempt++
				break
			}
			a.cfg.Telemetry.Ack() // stored by the control plane: drop from the spool
			attempt = 0
			if a.cfg.Telemetry.Len() < batchSize {
				break
			}
		}
	}
}

func (a *Agent) shipBatch(ctx context.Context, client agentv1.AgentServiceClient, batch []*agentv1.CallEvent, dropped uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := client.ReportTelemetry(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&agentv1.ReportTelemetryRequest{Events: batch, Dropped: dropped}); err != nil {
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}
