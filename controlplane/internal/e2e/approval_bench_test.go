package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gowebpki/jcs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/app"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/changerequest"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// simAgent is a simulated gateway agent: its own key, certificate and mTLS
// connection, a Sync stream, and the agent's side of the protocol (verify the
// signature, parse the bundle, ACK). It records when it first holds a bundle
// pinning the benchmark's target hash.
type simAgent struct {
	id     string
	conn   *grpc.ClientConn
	pub    ed25519.PublicKey
	target *atomic.Pointer[target]
}

type target struct {
	sha   string
	start time.Time
	seen  chan time.Duration
}

func enrollSim(ctx context.Context, tok, endpoint string, caPool *x509.CertPool, enrollConn *grpc.ClientConn, i int) (*simAgent, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, err
	}
	resp, err := agentv1.NewAgentServiceClient(enrollConn).Enroll(ctx, &agentv1.EnrollRequest{Token: tok, CsrDer: csr, Hostname: "sim-" + strconv.Itoa(i), AgentVersion: "bench"})
	if err != nil {
		return nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{resp.GetCertificateDer()}, PrivateKey: key}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: caPool, ServerName: "localhost",
	})))
	if err != nil {
		return nil, err
	}
	return &simAgent{id: resp.GetAgentId(), conn: conn, pub: resp.GetPolicyPublicKey()}, nil
}

// run holds the Sync stream until ctx ends; ready is closed after the first bundle.
func (a *simAgent) run(ctx context.Context, ready chan<- error) {
	stream, err := agentv1.NewAgentServiceClient(a.conn).Sync(ctx)
	if err == nil {
		err = stream.Send(&agentv1.SyncRequest{Message: &agentv1.SyncRequest_Hello{Hello: &agentv1.Hello{AgentId: a.id, CapabilityVersion: 1, Hostname: a.id}}})
	}
	first := true
	for err == nil {
		var m *agentv1.SyncResponse
		if m, err = stream.Recv(); err != nil {
			break
		}
		bu := m.GetBundle()
		if bu == nil {
			continue // keepalive
		}
		sb := bu.GetBundle()
		if !ed25519.Verify(a.pub, sb.GetPayload(), sb.GetSignature()) {
			err = fmt.Errorf("agent %s: bundle signature does not verify", a.id)
			break
		}
		var pb agentv1.PolicyBundle
		if err = proto.Unmarshal(sb.GetPayload(), &pb); err != nil {
			break
		}
		if tg := a.target.Load(); tg != nil {
			for _, p := range pb.GetToolPins() {
				if p.GetSha256() == tg.sha {
					tg.seen <- time.Since(tg.start)
				}
			}
		}
		if err = stream.Send(&agentv1.SyncRequest{Message: &agentv1.SyncRequest_Ack{Ack: &agentv1.Ack{Nonce: bu.GetNonce(), Version: pb.GetVersion()}}}); err != nil {
			break
		}
		if first {
			first = false
			ready <- nil
		}
	}
	if first {
		ready <- err
	}
}

// BenchmarkApprovalToEnforcement measures, for 1,000 simulated agents on one
// control plane, the time from an approver's decision (the Approve call:
// record the approval, move the pin, compile and sign a bundle) until each
// agent holds the verified bundle enforcing the new definition. Each
// iteration approves one fresh change request; p50/p99/max are over every
// agent of every iteration.
func BenchmarkApprovalToEnforcement(b *testing.B) {
	agents := 1000
	if n, err := strconv.Atoi(os.Getenv("PORTCULLIS_BENCH_AGENTS")); err == nil && n > 0 {
		agents = n
	}
	databases := []string{"sqlite"}
	if os.Getenv("PORTCULLIS_TEST_POSTGRES_URL") != "" {
		databases = append(databases, "postgres")
	}
	for _, name := range databases {
		url := ""
		if name == "postgres" {
			url = testutil.StartPostgres(b)
		}
		f := newFleet(b, url, agents) // once: b.Run calls its function more than once
		b.Run(fmt.Sprintf("%s/agents=%d", name, agents), f.bench)
		f.stop()
	}
}

// fleet is a control plane with a gateway of simulated agents and an approver.
type fleet struct {
	cp       *controlPlane
	tenantID uuid.UUID
	reporter *ent.Agent
	approver context.Context
	target   *atomic.Pointer[target]
	agents   int
	revision int
	stop     func()
}

func newFleet(b *testing.B, databaseURL string, agents int) *fleet {
	sys := viewer.System(context.Background())
	cp := runControlPlane(b, app.Config{DataDir: filepath.Join(b.TempDir(), "cp"), DatabaseURL: databaseURL, GRPCListen: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(sys) // the agents' streams
	f := &fleet{cp: cp, agents: agents, target: &atomic.Pointer[target]{}}
	var conns []*grpc.ClientConn
	f.stop = func() {
		cancel()
		for _, c := range conns {
			_ = c.Close()
		}
		cp.stop()
	}

	ten, err := cp.Tenants.CreateTenant(sys, "Bench", "bench", uuid.Nil)
	if err != nil {
		b.Fatal(err)
	}
	f.tenantID = ten.ID
	gw, err := cp.Tenants.CreateGateway(sys, ten.ID, "fleet")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cp.Tenants.CreateUpstream(sys, ten.ID, gw.ID, tenantSpec("files", "streamable_http", "http://files.internal/mcp", "")); err != nil {
		b.Fatal(err)
	}
	f.approver = approverIn(b, cp, ten.ID)

	caPool := x509.NewCertPool()
	caPool.AddCert(cp.CA.Cert)
	start := time.Now()
	sims := startFleet(b, ctx, agents, func() (string, error) { return cp.EnrollmentToken(sys, ten.ID, gw.ID, time.Hour) },
		cp.AgentEndpoint(), caPool, f.target)
	for _, s := range sims {
		conns = append(conns, s.conn)
	}
	b.Logf("%d agents enrolled and synced in %v", agents, time.Since(start).Round(time.Millisecond))
	// The inventory comes from one agent, as a gateway's discovery would.
	if f.reporter, err = cp.DB.Agent.Query().Where(agent.GatewayID(gw.ID)).First(sys); err != nil {
		b.Fatal(err)
	}
	return f
}

func (f *fleet) bench(b *testing.B) {
	var all []time.Duration
	for b.Loop() {
		b.StopTimer()
		f.revision++
		cr := openChange(b, f.cp, f.reporter, f.tenantID, f.revision)
		tgt := &target{sha: cr.ToSha256, start: time.Now(), seen: make(chan time.Duration, f.agents)}
		f.target.Store(tgt)
		b.StartTimer()
		d, err := f.cp.Changes.Approve(f.approver, f.tenantID, cr.ID, "bench")
		if err != nil || !d.Applied {
			b.Fatalf("approve: %+v %v", d, err)
		}
		timeout := time.After(60 * time.Second)
		for n := 0; n < f.agents; n++ {
			select {
			case d := <-tgt.seen:
				all = append(all, d)
			case <-timeout:
				b.Fatalf("revision %d: only %d of %d agents enforced the approval within 60s", f.revision, n, f.agents)
			}
		}
	}
	f.target.Store(nil)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(pct(1), "max_ms")
}

// startFleet enrolls n simulated agents at endpoint, eight at a time, each
// with a token from token (a multi-use token may repeat), and holds their
// Sync streams until ctx ends. It returns once every agent holds its first
// bundle; the caller closes their connections.
func startFleet(b *testing.B, ctx context.Context, n int, token func() (string, error), endpoint string, caPool *x509.CertPool, tgt *atomic.Pointer[target]) []*simAgent {
	b.Helper()
	enrollConn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: caPool, ServerName: "localhost"})))
	if err != nil {
		b.Fatal(err)
	}
	defer enrollConn.Close()
	sims := make([]*simAgent, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				tok, err := token()
				if err != nil {
					errs <- err
					return
				}
				s, err := enrollSim(ctx, tok, endpoint, caPool, enrollConn, i)
				if err != nil {
					errs <- err
					return
				}
				s.target = tgt
				sims[i] = s
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("enrolling: %v", err)
	}
	ready := make(chan error, n)
	for _, s := range sims {
		go s.run(ctx, ready)
	}
	for range n {
		if err := <-ready; err != nil {
			b.Fatalf("agent sync: %v", err)
		}
	}
	return sims
}

// approverIn signs in an approver of the tenant and returns their context.
func approverIn(b *testing.B, cp *controlPlane, tenantID uuid.UUID) context.Context {
	sys := viewer.System(context.Background())
	email := "ann-" + uuid.NewString()[:8] + "@bench.test"
	if _, err := cp.IDs.Invite(sys, tenantID, email, viewer.RoleApprover); err != nil {
		b.Fatal(err)
	}
	u, err := cp.IDs.Login(sys, identity.Claims{Issuer: "https://idp.bench", Subject: email, Email: email})
	if err != nil {
		b.Fatal(err)
	}
	v, err := cp.IDs.UserViewer(sys, u.ID, tenantID)
	if err != nil {
		b.Fatal(err)
	}
	return viewer.NewContext(context.Background(), v)
}

// openChange reports a new definition of read_file and returns the change request it opened.
func openChange(b *testing.B, cp *controlPlane, reporter *ent.Agent, tenantID uuid.UUID, i int) *ent.ChangeRequest {
	b.Helper()
	sys := viewer.System(context.Background())
	def, err := jcs.Transform([]byte(fmt.Sprintf(`{"name":"read_file","description":"Reads a file (revision %d).","inputSchema":{"type":"object"}}`, i)))
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(def)
	sha := hex.EncodeToString(sum[:])
	rep := &agentv1.InventoryReport{Upstreams: []*agentv1.UpstreamInventory{{Upstream: "files", Reachable: true,
		Tools: []*agentv1.DiscoveredTool{{Name: "read_file", Definition: def, Sha256: sha}}}}}
	if err := cp.Inventory.ApplyReport(sys, reporter, rep); err != nil {
		b.Fatal(err)
	}
	cr, err := cp.DB.ChangeRequest.Query().Where(changerequest.TenantID(tenantID), changerequest.StatusEQ(changerequest.StatusPending),
		changerequest.ToSha256(sha)).Only(sys)
	if err != nil {
		b.Fatalf("change request for revision %d: %v", i, err)
	}
	return cr
}
