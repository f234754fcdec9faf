package telemetry

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"

	"log/slog"
)

func ids(evs []*agentv1.CallEvent) string {
	s := ""
	for _, e := range evs {
		s += e.GetId()
	}
	return s
}

// restarted closes q, as a stopping gateway does, and opens the spool in
// dir again, closed when t ends.
func restarted(t *testing.T, q *Queue, dir string, maxEvents int) *Queue {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err := OpenQueue(dir, maxEvents, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func TestQueueBoundsAndCountsDrops(t *testing.T) {
	q := NewQueue(3)
	for i := range 5 {
		q.Add(&agentv1.CallEvent{Id: string(rune('a' + i))})
	}
	batch, dropped := q.Take(2)
	if ids(batch) != "ab" || dropped != 2 {
		t.Fatalf("Take = %v, dropped %d", batch, dropped)
	}
	// Events in flight still count against the bound: nothing taken is lost.
	q.Add(&agentv1.CallEvent{Id: "f"})
	q.Requeue(dropped)
	rest, dropped := q.Take(10)
	if ids(rest) != "abc" || dropped != 3 {
		t.Fatalf("after requeue: %v, dropped %d", rest, dropped)
	}
	q.Ack()
	if q.Len() != 0 {
		t.Fatalf("%d left after ack", q.Len())
	}
}

// TestQueueForgetsShippedEvents: shipped events are garbage once acked, and
// taken ones are held only as in flight, whatever arrays the queue reuses.
func TestQueueForgetsShippedEvents(t *testing.T) {
	q := NewQueue(100)
	var refs []weak.Pointer[agentv1.CallEvent]
	for i := range 3 {
		ev := &agentv1.CallEvent{Id: fmt.Sprint(i)}
		refs = append(refs, weak.Make(ev))
		q.Add(ev)
	}
	batch, _ := q.Take(2)
	if ids(batch) != "01" {
		t.Fatalf("took %q", ids(batch))
	}
	q.Ack()
	runtime.GC()
	for i, r := range refs {
		if alive := r.Value() != nil; alive != (i == 2) {
			t.Errorf("event %d: alive %v after the first two were shipped", i, alive)
		}
	}
	if got, _ := q.Take(10); ids(got) != "2" {
		t.Errorf("then took %q", ids(got))
	}
}

func TestSpoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	q, err := OpenQueue(dir, 1000, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		q.Add(&agentv1.CallEvent{Id: fmt.Sprint(i)})
	}
	batch, _ := q.Take(4)
	q.Ack() // 0-3 stored
	if ids(batch) != "0123" {
		t.Fatalf("batch %v", batch)
	}
	_, _ = q.Take(3) // 4-6 in flight when the gateway stops: not lost
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = OpenQueue(dir, 1000, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := q.Take(100)
	if ids(got) != "456789" {
		t.Fatalf("after restart: %q, want 456789 (in flight and queued, not the acknowledged)", ids(got))
	}
	q.Ack()
	q.Add(&agentv1.CallEvent{Id: "x"})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn record at the end (a crash mid-write) is ignored, the rest kept.
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if len(segs) != 1 {
		t.Fatalf("acknowledged segments were not deleted: %v", segs)
	}
	f, err := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0x05, 0x7f, 0x01}) // seq 5, length 127, one byte
	f.Close()
	q, err = OpenQueue(dir, 1000, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = q.Take(100)
	if ids(got) != "x" {
		t.Fatalf("after a torn write: %q, want x", ids(got))
	}
	_ = q.Close()
}

func TestSpoolDiskBudget(t *testing.T) {
	q, err := OpenQueue(t.TempDir(), 1000, 200, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := range 50 {
		q.Add(&agentv1.CallEvent{Id: fmt.Sprintf("event-%02d", i), Method: "tools/call"})
	}
	if q.Len() == 0 || q.Len() == 50 || q.Dropped() != uint64(50-q.Len()) {
		t.Fatalf("%d queued, %d dropped: the 200-byte budget must bound the spool and count the rest", q.Len(), q.Dropped())
	}
}

// A segment that fills up before the control plane acknowledges it is
// rotated (its fsync off the calls' path) and kept: after a restart every
// event is there, in order.
func TestSpoolRotatesFullSegments(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	q, err := OpenQueue(dir, 1000, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 64<<10)
	const n = 150 // about 9.6 MiB: three segments
	for i := range n {
		q.Add(&agentv1.CallEvent{Id: fmt.Sprint(i), Reason: pad})
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log")); len(segs) < 3 {
		t.Fatalf("segments %v: the full ones were not rotated", segs)
	}
	q, err = OpenQueue(dir, 1000, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got, dropped := q.Take(1000)
	if len(got) != n || dropped != 0 {
		t.Fatalf("after restart: %d events, %d dropped, want %d", len(got), dropped, n)
	}
	for i, e := range got {
		if e.GetId() != fmt.Sprint(i) || e.GetReason() != pad {
			t.Fatalf("event %d is %q", i, e.GetId())
		}
	}
}

// Acknowledgements while calls keep adding events: the spool starts a new
// segment and deletes spent ones outside the lock Add takes, ships every
// event once and in order, deletes what was acknowledged and keeps what was
// not.
func TestSpoolAcksWhileCallsAdd(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	q, err := OpenQueue(dir, 100000, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 4<<10) // 64 events fill segmentBytes/16
	const n = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			q.Add(&agentv1.CallEvent{Id: fmt.Sprint(i), Reason: pad})
		}
	}()
	acked := 0
	for adding := true; adding || acked < n; {
		select {
		case <-done:
			adding = false
		default:
		}
		batch, _ := q.Take(50)
		for _, e := range batch {
			if e.GetId() != fmt.Sprint(acked) {
				t.Fatalf("shipped %s, want %d", e.GetId(), acked)
			}
			acked++
		}
		q.Ack()
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	var onDisk int64
	for _, s := range segs {
		if st, err := os.Stat(s); err == nil {
			onDisk += st.Size()
		}
	}
	if onDisk > segmentBytes/16+int64(len(pad)) {
		t.Fatalf("everything acknowledged, yet %d bytes are left in %v", onDisk, segs)
	}
	for i := range 5 {
		q.Add(&agentv1.CallEvent{Id: fmt.Sprint("late", i)})
	}
	_, _ = q.Take(2) // in flight when the gateway stops: not lost
	q = restarted(t, q, dir, 100000)
	if got, _ := q.Take(n); ids(got) != "late0late1late2late3late4" {
		t.Fatalf("after restart: %q, want the five events not acknowledged", ids(got))
	}
}

// An event added while an acknowledgement starts a new segment (outside the
// lock Add takes) keeps the segment it was written to; when the current
// segment was full, Add starts the next under the name the acknowledgement
// chose, which is then neither emptied nor deleted.
func TestSpoolKeepsASegmentWrittenWhileAcking(t *testing.T) {
	pad := strings.Repeat("x", 4<<10)
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			dir := t.TempDir()
			q, err := OpenQueue(dir, 10000, 0, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			added := 0
			cur := func() segment {
				q.spool.mu.Lock()
				defer q.spool.mu.Unlock()
				return q.spool.segments[len(q.spool.segments)-1]
			}
			// Over segmentBytes/16, so that fully acknowledged it is started
			// afresh; full: within two events of segmentBytes.
			for cur().bytes < segmentBytes/16+1 || full && cur().bytes+2*int64(len(pad)+64) <= segmentBytes {
				q.Add(&agentv1.CallEvent{Id: fmt.Sprint(added), Reason: pad})
				added++
			}
			if n := len(q.spool.segments); n != 1 {
				t.Fatalf("%d segments, want 1", n)
			}
			if got, _ := q.Take(added); len(got) != added {
				t.Fatalf("took %d events of %d", len(got), added)
			}
			raced := false
			q.spool.rotating = func() {
				raced = true
				q.Add(&agentv1.CallEvent{Id: "meanwhile", Reason: pad + pad}) // fills a full segment
			}
			q.Ack()
			if !raced {
				t.Fatal("the acknowledgement did not start a new segment")
			}
			q = restarted(t, q, dir, 10000)
			if got, _ := q.Take(100); ids(got) != "meanwhile" {
				t.Fatalf("after restart: %q, want the event added during the acknowledgement", ids(got))
			}
		})
	}
}

// Add does not wait for the disk: while the flusher's write is stalled (as
// a write waiting for a busy filesystem journal is), calls keep adding
// events to memory. Once maxPending bytes wait, Add writes them itself,
// after the stalled write; after a restart every event is there, in order.
func TestSpoolAddDoesNotWaitForTheDisk(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	q, err := OpenQueue(dir, 100000, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	stalled, release, crossing := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var writes atomic.Int32
	q.spool.mu.Lock()
	q.spool.writing = func() {
		switch writes.Add(1) {
		case 1: // the flusher's
			close(stalled)
			<-release
		case 2: // the Add past maxPending's
			close(crossing)
		}
	}
	q.spool.mu.Unlock()
	pad := strings.Repeat("x", 1<<10)
	add := func(from, to int) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := from; i < to; i++ {
				q.Add(&agentv1.CallEvent{Id: fmt.Sprintf("%05d", i), Reason: pad})
			}
		}()
		return done
	}
	<-add(0, 1)
	<-stalled // the flusher holds event 0's write
	// Half of maxPending: added while the write stays stalled.
	select {
	case <-add(1, maxPending/len(pad)/2):
	case <-time.After(time.Minute):
		t.Fatal("Add waited for the stalled write")
	}
	// Past maxPending: the Add that crosses it writes after the stalled write.
	const n = 3 * maxPending / (1 << 10)
	more := add(maxPending/len(pad)/2, n)
	<-crossing
	close(release)
	<-more
	if got := q.Len(); got != n || q.Dropped() != 0 {
		t.Fatalf("%d queued, %d dropped, want %d and none", got, q.Dropped(), n)
	}
	q = restarted(t, q, dir, 100000)
	got, _ := q.Take(n + 1)
	if len(got) != n {
		t.Fatalf("after restart: %d events, want %d", len(got), n)
	}
	for i, e := range got {
		if e.GetId() != fmt.Sprintf("%05d", i) {
			t.Fatalf("after restart, event %d is %s", i, e.GetId())
		}
	}
}
