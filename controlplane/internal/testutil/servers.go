package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// Server is a PostgreSQL or Redis server of the test's own, on loopback, that
// the test may stop and start again on the same port (fault tests). The
// shared servers from .ci/services are never restarted: other packages'
// tests run on them at the same time.
type Server struct {
	URL   string
	t     testing.TB
	start func() error
	stop  func() error
}

// Stop stops the server (fast shutdown: connections are cut).
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Fatalf("stopping the server: %v", err)
	}
}

// Start starts it again on the same port and data.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("starting the server: %v", err)
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until something listens on addr.
func waitTCP(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

// PrivatePostgres initialises and starts a PostgreSQL cluster of the test's
// own (from the Debian packages .ci/services installs).
func PrivatePostgres(t testing.TB) *Server {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Fatal("PostgreSQL is not installed: run the tests with `make test` (it installs it from Debian)")
	}
	sort.Strings(bins)
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "portcullis-pg-")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL refuses to run as root: run it as the postgres user then.
	var prefix []string
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		prefix = []string{"runuser", "-u", "postgres", "--"}
	}
	cmd := func(name string, args ...string) error {
		all := append(append(prefix, filepath.Join(bin, name)), args...)
		out, err := exec.Command(all[0], all[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := cmd("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := &Server{t: t, URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	s.start = func() error {
		return cmd("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-o",
			fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off", port, dir), "start")
	}
	s.stop = func() error { return cmd("pg_ctl", "-D", data, "-m", "fast", "-w", "stop") }
	s.Start()
	t.Cleanup(func() {
		_ = cmd("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		_ = os.RemoveAll(dir)
	})
	return s
}

// PrivateRedis starts a redis-server of the test's own.
func PrivateRedis(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: run the tests with `make test` (it installs it from Debian)")
	}
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := &Server{t: t, URL: "redis://" + addr + "/0"}
	var proc *exec.Cmd
	done := make(chan struct{})
	s.start = func() error {
		proc = exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--dir", os.TempDir())
		if err := proc.Start(); err != nil {
			return err
		}
		done = make(chan struct{})
		go func(p *exec.Cmd, d chan struct{}) { _ = p.Wait(); close(d) }(proc, done)
		return waitTCP(addr)
	}
	s.stop = func() error {
		if proc == nil {
			return nil
		}
		_ = proc.Process.Kill() // as a crash: nothing is saved
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("redis-server did not exit")
		}
		proc = nil
		return nil
	}
	s.Start()
	t.Cleanup(func() { _ = s.stop() })
	return s
}
