package e2e

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/app"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// procMemory reads a process's resident set and its peak, in MiB.
func procMemory(pid int) (rss, peak float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return rss, peak
}

// BenchmarkFleetUnderLoad runs the control plane binary with 1,000
// simulated agents holding their Sync streams (mTLS, keepalives, signed
// bundles) plus a real gateway. Sub-benchmark approval-on-other-replica
// approves changes on a second, in-process replica and times each agent's
// receipt through Redis while the gateway carries calls; tools/call drives
// the gateway, whose call events flow back to the binary, and reports
// throughput, p99 and both processes' memory (RSS and peak).
func BenchmarkFleetUnderLoad(b *testing.B) {
	agents := 1000
	if n, err := strconv.Atoi(os.Getenv("PORTCULLIS_BENCH_AGENTS")); err == nil && n > 0 {
		agents = n
	}
	redisURL := os.Getenv("PORTCULLIS_TEST_REDIS_URL")
	if redisURL == "" || os.Getenv("PORTCULLIS_TEST_POSTGRES_URL") == "" {
		b.Fatal("PostgreSQL and Redis are needed: run `make bench` (it starts them)")
	}
	sys := viewer.System(context.Background())
	admin, proc, grpcAddr := startControlPlaneBinary(b, testutil.StartPostgres(b), redisURL, 0)
	ten, err := admin.Tenants.CreateTenant(sys, "Fleet", "fleet-"+uuid.NewString()[:8], uuid.Nil)
	if err != nil {
		b.Fatal(err)
	}
	fleetGW, err := admin.Tenants.CreateGateway(sys, ten.ID, "fleet")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := admin.Tenants.CreateUpstream(sys, ten.ID, fleetGW.ID, tenantSpec("files", "streamable_http", "http://files.internal/mcp", "")); err != nil {
		b.Fatal(err)
	}
	tok, err := admin.EnrollmentTokenUses(sys, ten.ID, fleetGW.ID, time.Hour, min(agents, 1000))
	if err != nil {
		b.Fatal(err)
	}
	caPool := x509.NewCertPool()
	caPool.AddCert(admin.CA.Cert)
	start := time.Now()
	tgt := &atomic.Pointer[target]{}
	ctx, cancel := context.WithCancel(sys)
	defer cancel()
	for _, s := range startFleet(b, ctx, agents, func() (string, error) { return tok, nil }, grpcAddr, caPool, tgt) {
		defer s.conn.Close()
	}
	b.Logf("%d simulated agents enrolled and synced in %v", agents, time.Since(start).Round(time.Millisecond))
	idleRSS, _ := procMemory(proc.Process.Pid)

	// A real gateway on the same control plane.
	g, gwURL := newDemoTenant(b, admin).serveEcho(b, admin, grpcAddr)
	all, err := admin.DB.Agent.Query().All(sys) // presence from Redis, through the interceptor
	connected := 0
	for _, a := range all {
		if a.Connected {
			connected++
		}
	}
	if err != nil || connected != agents+1 {
		b.Fatalf("%d agents connected, want %d (%v)", connected, agents+1, err)
	}
	// Approvals on the in-process replica reach the agents the binary holds
	// through Redis, while the gateway is under load.
	reporter, err := admin.DB.Agent.Query().Where(agent.GatewayID(fleetGW.ID)).First(sys)
	if err != nil {
		b.Fatal(err)
	}
	f := &fleet{cp: admin, tenantID: ten.ID, reporter: reporter, approver: approverIn(b, admin, ten.ID), target: tgt, agents: agents}
	loadCtx, stopLoad := context.WithCancel(sys)
	var loadDone sync.WaitGroup
	loadDone.Go(func() {
		s, err := mcpConnect(loadCtx, gwURL)
		if err != nil {
			return
		}
		defer s.Close()
		for loadCtx.Err() == nil {
			_, _ = s.CallTool(loadCtx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "x"}})
		}
	})
	b.Run(fmt.Sprintf("approval-on-other-replica/agents=%d", agents), f.bench)
	stopLoad()
	loadDone.Wait()
	b.Run(fmt.Sprintf("tools/call/agents=%d", agents), func(b *testing.B) {
		loadPaths(b, benchClients, nil, benchPath{name: "gateway", url: gwURL, tool: "demo__echo", version: sessionProtocol})
		rss, peak := procMemory(proc.Process.Pid)
		grss, gpeak := procMemory(g.cmd.Process.Pid)
		b.ReportMetric(rss, "cp-rss-MiB")
		b.ReportMetric(peak, "cp-peak-MiB")
		b.ReportMetric(grss, "gw-rss-MiB")
		b.ReportMetric(gpeak, "gw-peak-MiB")
		b.ReportMetric(idleRSS, "cp-idle-rss-MiB")
	})
}

// startControlPlaneBinary runs the built `portcullis serve` on the database
// and Redis given, beside an in-process replica of it for setup (a change
// made there reaches the agents the binary holds through Redis), and waits
// until the binary listens for agents. It returns the replica, the
// binary's process (killed when b ends) and its agent address. A niceness
// above 0 runs the binary at that lower priority (nice(1)).
func startControlPlaneBinary(b *testing.B, dbURL, redisURL string, niceness int) (*controlPlane, *exec.Cmd, string) {
	b.Helper()
	caDir := b.TempDir()
	caCert, caKey := filepath.Join(caDir, "ca.crt"), filepath.Join(caDir, "ca.key")
	admin := runControlPlane(b, app.Config{DataDir: b.TempDir(), DatabaseURL: dbURL, RedisURL: redisURL, CACert: caCert, CAKey: caKey, GRPCListen: "127.0.0.1:0"})
	b.Cleanup(admin.stop)
	grpcAddr := freeAddr(b)
	args := []string{controlPlaneBin(b), "serve", "--data-dir", b.TempDir(), "--database-url", dbURL, "--redis-url", redisURL,
		"--ca-cert", caCert, "--ca-key", caKey, "--grpc-listen", grpcAddr, "--http-listen", "127.0.0.1:0", "--log-level", "error"}
	if niceness > 0 {
		args = append([]string{"nice", "-n", strconv.Itoa(niceness)}, args...)
	}
	proc := exec.Command(args[0], args[1:]...)
	proc.Env = append(os.Environ(), kekEnv())
	proc.Stdout, proc.Stderr = io.Discard, io.Discard
	if err := proc.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = proc.Process.Kill(); _ = proc.Wait() })
	eventually(b, "the control plane binary listening", func() error {
		c, err := net.DialTimeout("tcp", grpcAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	return admin, proc, grpcAddr
}
