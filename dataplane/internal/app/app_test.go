package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// An idle keep-alive connection is closed after the idle timeout, and one
// that never finishes its headers after the read timeout.
func TestServerTimesOutIdleAndSlowConnections(t *testing.T) {
	srv := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }), 100*time.Millisecond, 100*time.Millisecond)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	closed := func(conn net.Conn, br *bufio.Reader) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // only so that a broken server fails rather than hangs
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("the connection was not closed: %v", err)
		}
	}

	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprint(idle, "GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	closed(idle, br)

	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprint(slow, "GET / HTTP/1.1\r\nHost: gw\r\n") // never ends its headers
	closed(slow, bufio.NewReader(slow))
}
