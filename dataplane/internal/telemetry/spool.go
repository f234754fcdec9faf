package telemetry

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// The spool is a journal of segment files ("seg-<first seq>.log", records of
// uvarint seq, uvarint length, CallEvent) and a checkpoint file holding the
// last sequence number the control plane stored. A segment is deleted once
// every record in it is acknowledged. Records are buffered in memory and
// written every flushInterval by the flusher, without the lock Add (every
// call) takes: a write can wait for the filesystem's journal, and calls must
// not wait for the disk. Only when maxPending bytes wait (the disk has been
// stalled that long) does Add write them itself. Written records reach the
// page cache (a crash of the process loses at most a flushInterval's),
// are fsynced every syncInterval (a crash of the host loses at most that
// much) and on Close.
const (
	segmentBytes  = 4 << 20
	flushInterval = 100 * time.Millisecond
	syncInterval  = time.Second
	maxPending    = 1 << 20
	maxRecord     = 1 << 20
	checkpoint    = "acked"
)

type segment struct {
	first, last uint64
	path        string
	bytes       int64
}

type spool struct {
	dir      string
	maxBytes int64
	log      *slog.Logger

	ackMu    sync.Mutex // serialises ack
	mu       sync.Mutex // guards the file state below; Queue.mu is held around append
	segments []segment  // oldest first; the last one is being written
	f        *os.File
	pending  []byte // records of f not yet written to it
	unsynced bool   // written since the last fsync
	// wmu is held while f is written or closed, taken after mu: the
	// flusher takes it before letting mu go and writes without mu, so what
	// it writes lands before anything written after it.
	wmu     sync.Mutex
	total   int64
	acked   uint64
	stop    chan struct{}
	done    chan struct{}
	syncing sync.WaitGroup // fsyncs of full segments (rotate)

	rotating func() // tests: run by ack between making a new segment and starting it
	writing  func() // tests: run before a write, by the flusher holding wmu (not mu), by writeLocked before taking it
}

// OpenQueue returns a Queue spooled to dir, bounded to max events and
// maxBytes on disk; events left by a previous run are queued again.
func OpenQueue(dir string, maxEvents int, maxBytes int64, log *slog.Logger) (*Queue, error) {
	if maxBytes <= 0 {
		maxBytes = 256 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	q := NewQueue(maxEvents)
	s := &spool{dir: dir, maxBytes: maxBytes, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if b, err := os.ReadFile(filepath.Join(dir, checkpoint)); err == nil {
		s.acked, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	names, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool { return segFirst(names[i]) < segFirst(names[j]) })
	q.seq = s.acked
	for _, name := range names {
		seg, events, err := readSegment(name)
		if err != nil {
			log.Warn("telemetry spool: segment partly unreadable; keeping what was read", "file", name, "err", err)
		}
		kept := 0
		for _, e := range events {
			if e.seq > s.acked && len(q.events) < q.max {
				q.events = append(q.events, e)
				kept++
			}
			q.seq = max(q.seq, e.seq)
		}
		if kept == 0 {
			_ = os.Remove(name)
			continue
		}
		s.segments = append(s.segments, seg)
		s.total += seg.bytes
	}
	if len(q.events) > 0 {
		log.Info("telemetry spool: events from a previous run queued again", "events", len(q.events))
	}
	if err := s.rotate(q.seq + 1); err != nil {
		return nil, err
	}
	q.spool = s
	go s.flusher()
	return q, nil
}

func segFirst(name string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), "seg-"), ".log"), 10, 64)
	return n
}

// readSegment reads the records of a segment, stopping at a torn tail.
func readSegment(name string) (segment, []entry, error) {
	seg := segment{path: name, first: segFirst(name)}
	f, err := os.Open(name)
	if err != nil {
		return seg, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err == nil {
		seg.bytes = st.Size()
	}
	r := bufio.NewReader(f)
	var out []entry
	for {
		seq, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return seg, out, nil
		}
		if err != nil {
			return seg, out, err
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > maxRecord {
			return seg, out, fmt.Errorf("torn record after seq %d", seg.last)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return seg, out, fmt.Errorf("torn record after seq %d", seg.last)
		}
		ev := &agentv1.CallEvent{}
		if err := proto.Unmarshal(buf, ev); err != nil {
			return seg, out, fmt.Errorf("bad record %d: %w", seq, err)
		}
		out = append(out, entry{seq, ev})
		seg.last = seq
	}
}

// rotate closes the current segment, which is kept and so synced to disk,
// and starts one whose first record is first. The current segment stays
// the one written when the new one cannot be made.
func (s *spool) rotate(first uint64) error {
	if s.f != nil {
		if err := s.writeLocked(); err != nil {
			return err
		}
	}
	path := s.segmentPath(first)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if old := s.f; old != nil {
		// Written under the lock, fsynced and closed outside it: Add (every
		// call) must not wait for the disk; Close waits for it.
		s.unsynced = false
		s.syncing.Add(1)
		go func() {
			defer s.syncing.Done()
			if err := old.Sync(); err != nil {
				s.log.Error("telemetry spool: syncing a full segment", "err", err)
			}
			_ = old.Close()
		}()
	}
	s.start(f, first, path)
	return nil
}

// start makes f, at path, the segment written next, its first record first.
// Records pending for the previous file are dropped: written or acknowledged.
func (s *spool) start(f *os.File, first uint64, path string) {
	s.f, s.pending = f, s.pending[:0]
	s.segments = append(s.segments, segment{first: first, last: first - 1, path: path})
}

func (s *spool) segmentPath(first uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("seg-%020d.log", first))
}

// record is an event as the spool writes it.
func record(e *agentv1.CallEvent) ([]byte, bool) {
	b, err := proto.Marshal(e)
	return b, err == nil && len(b) <= maxRecord
}

// append writes one record; false means the disk budget is spent or the write failed.
func (s *spool) append(seq uint64, b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := int64(len(b) + 2*binary.MaxVarintLen64)
	if s.total+size > s.maxBytes {
		return false
	}
	cur := &s.segments[len(s.segments)-1]
	if cur.bytes+size > segmentBytes && cur.last >= cur.first {
		if err := s.rotate(seq); err != nil {
			s.log.Error("telemetry spool: rotating", "err", err)
			return false
		}
		cur = &s.segments[len(s.segments)-1]
	}
	if len(s.pending) >= maxPending {
		// The flusher has not written for that long: write here rather
		// than hold ever more in memory.
		if err := s.writeLocked(); err != nil {
			s.log.Error("telemetry spool: writing", "err", err)
			return false
		}
	}
	n := len(s.pending)
	s.pending = binary.AppendUvarint(s.pending, seq)
	s.pending = binary.AppendUvarint(s.pending, uint64(len(b)))
	s.pending = append(s.pending, b...)
	written := int64(len(s.pending) - n)
	cur.bytes += written
	cur.last = seq
	s.total += written
	return true
}

// writeLocked writes the pending records to the current segment, after
// any write of the flusher's to it; s.mu is held.
func (s *spool) writeLocked() error {
	if s.writing != nil && len(s.pending) > 0 {
		s.writing()
	}
	s.wmu.Lock()
	var n int
	var err error
	if len(s.pending) > 0 {
		n, err = s.f.Write(s.pending)
	}
	s.wmu.Unlock()
	// What was written stays written, so that what follows it continues
	// the file where it ends.
	s.pending = s.pending[:copy(s.pending, s.pending[n:])]
	s.unsynced = s.unsynced || n > 0
	return err
}

// ack records that everything up to seq is stored and deletes spent segments.
// The checkpoint is written, and files are made and removed, without holding
// the lock that Add (every call) needs: creating or unlinking a file can wait
// for the filesystem's journal, and calls must not wait for the disk.
func (s *spool) ack(seq uint64) {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	stale := seq <= s.acked
	s.mu.Unlock()
	if stale {
		return
	}
	// Not fsynced: a checkpoint lost in a crash only ships stored events
	// again, which the control plane ignores by event ID.
	tmp := filepath.Join(s.dir, checkpoint+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600); err == nil {
		_ = os.Rename(tmp, filepath.Join(s.dir, checkpoint))
	}
	s.mu.Lock()
	s.acked = seq
	var spent []string
	for len(s.segments) > 1 && s.segments[0].last <= seq {
		spent = append(spent, s.segments[0].path)
		s.total -= s.segments[0].bytes
		s.segments = s.segments[1:]
	}
	cur := s.segments[0]
	restart := len(s.segments) == 1 && cur.last >= cur.first && cur.last <= seq && cur.bytes >= segmentBytes/16
	s.mu.Unlock()
	for _, path := range spent {
		_ = os.Remove(path)
	}
	if !restart {
		return
	}
	// The current segment is fully acknowledged and of some size: start
	// afresh so it can go too (unsynced: it is deleted). Made only if no
	// file has the name: Add may have started a segment of that name (the
	// current one was full) since the lock was let go.
	path := s.segmentPath(seq + 1)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return
	}
	if err != nil {
		s.log.Error("telemetry spool: rotating", "err", err)
		return
	}
	if s.rotating != nil {
		s.rotating()
	}
	s.mu.Lock()
	if len(s.segments) != 1 || s.segments[0] != cur {
		// Written to meanwhile: it holds events not yet acknowledged. The
		// file made above is dropped unless Add started it as a segment.
		inUse := slices.ContainsFunc(s.segments, func(g segment) bool { return g.path == path })
		s.mu.Unlock()
		_ = f.Close()
		if !inUse {
			_ = os.Remove(path)
		}
		return
	}
	old := s.f
	s.segments = s.segments[:0]
	s.total -= cur.bytes
	s.unsynced = false
	s.start(f, seq+1, path)
	s.mu.Unlock()
	s.wmu.Lock() // after a write of the flusher's to it
	_ = old.Close()
	s.wmu.Unlock()
	_ = os.Remove(cur.path)
}

func (s *spool) syncLocked() error {
	if err := s.writeLocked(); err != nil || !s.unsynced {
		return err
	}
	s.unsynced = false
	return s.f.Sync()
}

func (s *spool) flusher() {
	defer close(s.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	var lastSync time.Time
	var spare []byte // the buffer written last, Add's next
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			// Taken under the lock, written and fsynced outside it: Add
			// (every call) must not wait for the disk. A segment rotated
			// meanwhile was written and synced (or dropped) by rotate.
			s.mu.Lock()
			f, chunk := s.f, s.pending
			s.pending = spare[:0]
			written := s.unsynced || len(chunk) > 0 // since the last fsync
			sync := written && now.Sub(lastSync) >= syncInterval
			s.unsynced = written && !sync
			if sync {
				lastSync = now
			}
			hook := s.writing
			s.wmu.Lock()
			s.mu.Unlock()
			var err error
			if len(chunk) > 0 && hook != nil {
				hook()
			}
			if len(chunk) > 0 {
				// A failed write loses the spooled copy of these records
				// (the events still ship from memory) and tears the
				// segment: a restart reads it up to the tear.
				_, err = f.Write(chunk)
			}
			s.wmu.Unlock()
			spare = chunk
			if err == nil && sync {
				if err = f.Sync(); errors.Is(err, os.ErrClosed) {
					err = nil
				}
			}
			if err != nil {
				s.log.Error("telemetry spool: flushing", "err", err)
			}
		}
	}
}

// Close flushes the spool; events not yet acknowledged are shipped on the next start.
func (q *Queue) Close() error {
	if q.spool == nil {
		return nil
	}
	s := q.spool
	close(s.stop)
	<-s.done
	s.syncing.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.syncLocked()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
