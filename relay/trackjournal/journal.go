// Package trackjournal is the tracking host's durable event journal: the events of every
// message's life, kept on disk between the relay that records them and the tracking plugin that
// writes them to the tracking log.
//
// It is a package of its own, apart from the host that feeds the plugin from it, because it is the
// part that must survive crashes: the relay appends and never waits for the plugin, the plugin
// acknowledges what it has written, and whatever lies between is on disk, in seq order, to be
// replayed to the next plugin process. It is a log of its own rather than the spool's because its
// records are trackrpc's event lines, which protocol 2 hands to the plugin as they are, and
// because it is trimmed by acknowledgement, not by message removal.
//
// One process owns the journal at a time, under a flock on "lock" in its directory. During a live
// upgrade the new relayd opens it with OpenWait, once the old one has stopped its plugin and
// closed the journal (or died): the events the old plugin did not acknowledge are then replayed
// to the new plugin, after which the new relay's own events follow in seq order.
package trackjournal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"relayfix/internal/safefile"
	"relayfix/relay/track"
	"relayfix/relay/trackrpc"
)

// segmentLimit is the size at which the journal starts a new segment file. Segments are large so
// that creating files stays off the relay's path (a create costs far more than an append here).
const segmentLimit = 8 << 20

// Journal is the durable event journal: append-only segment files named by the first seq
// they hold, one event per line (trackrpc's event lines, which protocol 2 sends as they are).
// Append keeps the event in memory; Sync, which the host calls every 50 ms (Append itself writes
// once 1 MiB is waiting), writes what was appended since the last Sync in one write and fsyncs it.
// Readers see an event only once it is synced. Segments whose events the plugin has all
// acknowledged are deleted by Trim. The newest segment is never deleted, so the next seq is always
// known. Synced tells how far the events are on disk, for writers that must not get ahead of them.
type Journal struct {
	dir  string
	lock *os.File // the flock that makes this process the journal's only writer

	mu      sync.Mutex
	f       *os.File  // active segment
	segs    []segment // in seq order; the last is active
	size    int64     // of the active segment
	synced  int64     // bytes of the active segment known to be on disk: what readers may read
	next    uint64    // seq the next Append gets
	flushed uint64    // the last seq written to a segment file (the rest waits in pend)
	durable uint64    // the last seq known to be on disk
	dirty   bool
	acked   uint64
	written uint64 // the acked value on disk, as Open read it or Close last wrote it
	log     *slog.Logger
	changed chan struct{} // closed and replaced whenever readers may find more
	pend    []byte        // appended events not yet written to the file
}

// pendLimit bounds the events Append holds in memory between two flushes.
const pendLimit = 1 << 20

type segment struct {
	first uint64
	path  string
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d.jnl", first) }

// ErrLocked is returned by Open when another process has the journal open.
var ErrLocked = errors.New("tracking journal is in use by another relayd")

// Open opens (creating if needed) the journal in dir. The torn tail of a crashed append is
// cut off; everything before it is kept. log (nil: none) receives warnings that need no
// caller's action.
func Open(dir string, log *slog.Logger) (*Journal, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := safefile.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open tracking journal: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // events name senders and recipients
		return nil, fmt.Errorf("open tracking journal: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open tracking journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open tracking journal %s: %w (%v)", dir, ErrLocked, err)
	}
	j, err := open(dir, log)
	if err != nil {
		lock.Close()
		return nil, err
	}
	j.lock = lock
	return j, nil
}

// OpenWait opens the journal in dir once the process that has it open lets go of it, or ctx
// ends.
func OpenWait(ctx context.Context, dir string, log *slog.Logger) (*Journal, error) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		j, err := Open(dir, log)
		if !errors.Is(err, ErrLocked) {
			return j, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open tracking journal: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func open(dir string, log *slog.Logger) (*Journal, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.jnl"))
	if err != nil {
		return nil, fmt.Errorf("open tracking journal: %w", err)
	}
	sort.Strings(names)
	j := &Journal{dir: dir, next: 1, changed: make(chan struct{}), log: log}
	for _, p := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(p), ".jnl"), 10, 64)
		if err != nil {
			continue
		}
		j.segs = append(j.segs, segment{first: first, path: p})
	}
	if n := len(j.segs); n > 0 {
		last := j.segs[n-1]
		good, lastSeq, err := scanSegment(last.path)
		if err != nil {
			return nil, err
		}
		if err := os.Truncate(last.path, good); err != nil {
			return nil, fmt.Errorf("open tracking journal: %w", err)
		}
		j.next = max(last.first, lastSeq+1)
		j.flushed, j.durable = j.next-1, j.next-1 // synced just below
		j.size, j.synced = good, good
		if j.f, err = os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return nil, fmt.Errorf("open tracking journal: %w", err)
		}
		// What the last run wrote may still be only in the page cache; readers hand it on.
		if err := j.f.Sync(); err != nil {
			j.f.Close()
			return nil, fmt.Errorf("sync tracking journal: %w", err)
		}
		j.acked = j.segs[0].first - 1
		if b, err := os.ReadFile(filepath.Join(dir, "acked")); err == nil {
			if a, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && a > j.acked && a < j.next {
				j.acked = a
			}
		}
	} else if err := j.rotate(); err != nil {
		return nil, err
	}
	j.written = j.acked
	return j, nil
}

// scanSegment returns the length of the well-formed prefix of a segment and its last seq.
func scanSegment(path string) (good int64, last uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read tracking journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return good, last, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("read tracking journal %s: %w", path, err)
		}
		ev, err := trackrpc.ParseEvent(bytes.TrimSuffix(line, []byte{'\n'}))
		if err != nil {
			return good, last, nil
		}
		good += int64(len(line))
		last = ev.Seq
	}
}

// rotate starts a new segment at j.next. Called with mu held (or before j is shared).
func (j *Journal) rotate() error {
	if j.f != nil {
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("sync tracking journal: %w", err)
		}
		j.f.Close()
		j.advance(j.flushed)
	}
	p := filepath.Join(j.dir, segmentName(j.next))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("tracking journal segment: %w", err)
	}
	if err := safefile.SyncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	j.f, j.size, j.synced, j.dirty = f, 0, 0, false
	j.segs = append(j.segs, segment{first: j.next, path: p})
	return nil
}

// Append assigns ev the next seq and queues it for the file; Sync writes and fsyncs it. Events
// wait in memory between two Syncs, never more than pendLimit bytes of them.
func (j *Journal) Append(ev track.Event) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return 0, fmt.Errorf("tracking journal is closed")
	}
	ev.Seq = j.next
	if j.size+int64(len(j.pend)) >= segmentLimit {
		if err := j.writeLocked(); err != nil {
			return 0, err
		}
		if err := j.rotate(); err != nil {
			return 0, err
		}
	}
	j.pend = trackrpc.AppendEvent(j.pend, ev)
	j.next++
	if len(j.pend) >= pendLimit {
		if err := j.writeLocked(); err != nil {
			return 0, err
		}
	}
	return ev.Seq, nil
}

// writeLocked writes the pending events to the active segment; readers see them once Sync has
// synced them.
func (j *Journal) writeLocked() error {
	if len(j.pend) == 0 {
		return nil
	}
	n, err := j.f.Write(j.pend)
	j.size += int64(n)
	if err != nil {
		return fmt.Errorf("append tracking journal: %w", err)
	}
	j.pend = j.pend[:0]
	j.dirty = true
	j.flushed = j.next - 1
	return nil
}

// advance records that every event up to seq is on disk and wakes whoever waits for it. Called
// with mu held.
func (j *Journal) advance(seq uint64) {
	if seq > j.durable {
		j.durable = seq
		close(j.changed)
		j.changed = make(chan struct{})
	}
}

// Synced returns the last seq known to be on disk, and a channel that is closed when that (or
// what readers may read) changes.
func (j *Journal) Synced() (uint64, <-chan struct{}) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durable, j.changed
}

// Sync writes the pending events and fsyncs them; only then may readers see them, so that the
// plugin never writes a record whose event a crash of the machine could take out of the journal
// (its seq would then be given to another event).
func (j *Journal) Sync() error {
	j.mu.Lock()
	if j.f == nil {
		j.mu.Unlock()
		return nil
	}
	err := j.writeLocked()
	f, dirty, size, upto := j.f, j.dirty, j.size, j.flushed
	j.dirty = false
	j.mu.Unlock()
	if err != nil {
		return err
	}
	if !dirty {
		return nil
	}
	if err := f.Sync(); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return nil
		}
		return fmt.Errorf("sync tracking journal: %w", err)
	}
	j.mu.Lock()
	changed := upto > j.durable // f held every event up to upto, rotated since or not
	j.durable = max(j.durable, upto)
	if j.f == f && size > j.synced { // not rotated meanwhile (rotate syncs the old segment itself)
		j.synced = size
		changed = true
	}
	if changed {
		close(j.changed)
		j.changed = make(chan struct{})
	}
	j.mu.Unlock()
	return nil
}

// readable returns how many bytes of the segment starting at first readers may read: all of a
// finished segment (rotate synced it), the synced part of the active one.
func (j *Journal) readable(first uint64) (int64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if n := len(j.segs); n > 0 && j.segs[n-1].first == first && j.f != nil {
		return j.synced, true
	}
	return 0, false
}

// Last returns the highest seq appended (0 if none).
func (j *Journal) Last() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next - 1
}

// Acked returns the highest seq the plugin acknowledged.
func (j *Journal) Acked() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.acked
}

// Trim records that every event up to acked is written by the plugin and deletes the segments
// that hold nothing newer.
func (j *Journal) Trim(acked uint64) error {
	j.mu.Lock()
	if acked <= j.acked {
		j.mu.Unlock()
		return nil
	}
	j.acked = min(acked, j.next-1)
	var drop []string
	for len(j.segs) > 1 && j.segs[1].first <= j.acked+1 {
		drop = append(drop, j.segs[0].path)
		j.segs = j.segs[1:]
	}
	j.mu.Unlock()
	for _, p := range drop {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("trim tracking journal: %w", err)
		}
	}
	return nil
}

// Close syncs the journal and remembers how far the plugin got, so a restart replays less. The
// acked file is written only when the plugin got further since Open or the last Close: a relay
// that tracked nothing writes nothing (on a full disk it would fail for no reason). A failed write
// of it is only a warning: the older value it leaves means more replay, never a lost event.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.writeLocked()
	if serr := j.f.Sync(); err == nil {
		err = serr
	}
	j.f.Close()
	j.f = nil
	if j.acked != j.written {
		if werr := safefile.WriteFile(filepath.Join(j.dir, "acked"), []byte(strconv.FormatUint(j.acked, 10)+"\n"), 0o600); werr != nil {
			j.log.Warn("tracking journal: cannot record the acknowledged position; the next start replays more events", "error", werr)
		} else {
			j.written = j.acked
		}
	}
	if j.lock != nil {
		j.lock.Close() // last: the next owner must find "acked" written
	}
	return err
}

// Reader reads the journal in seq order from a given seq on, following it as it grows.
type Reader struct {
	j    *Journal
	cur  uint64
	f    *os.File
	r    *bufio.Reader
	part []byte // a line read before its end was written
	from uint64
	buf  []byte // the lines of the last batch
	off  int64  // bytes read from f
}

// readSegment reads the current segment, no further than the journal has synced.
func (r *Reader) readSegment(p []byte) (int, error) {
	if limit, ok := r.j.readable(r.cur); ok {
		if r.off >= limit {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), limit-r.off)]
	}
	n, err := r.f.Read(p)
	r.off += int64(n)
	return n, err
}

// Batch is a run of whole journal lines in seq order, as NextLines read them. Data is valid
// until the next call to the Reader.
type Batch struct {
	Data        []byte
	First, Last uint64
	N           int
}

// NewReader returns a reader positioned at the first event with seq >= from.
func (j *Journal) NewReader(from uint64) *Reader {
	return &Reader{j: j, from: from}
}

// Close releases the reader's file.
func (r *Reader) Close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// open positions the reader on the segment holding r.from (or the oldest kept).
func (r *Reader) open() error {
	r.j.mu.Lock()
	segs := r.j.segs
	idx := 0
	for i, s := range segs {
		if s.first <= r.from {
			idx = i
		}
	}
	s := segs[idx]
	r.j.mu.Unlock()
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("read tracking journal: %w", err)
	}
	r.Close()
	r.f, r.cur, r.part, r.off = f, s.first, nil, 0
	r.r = bufio.NewReaderSize(readerFunc(r.readSegment), 256<<10)
	return nil
}

// nextSegment returns the first seq of the segment after the current one, if there is one.
func (r *Reader) nextSegment() (uint64, bool) {
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	for _, s := range r.j.segs {
		if s.first > r.cur {
			return s.first, true
		}
	}
	return 0, false
}

// Next returns up to limit events, waiting up to wait for the first one to be written.
func (r *Reader) Next(ctx context.Context, limit int, wait time.Duration) ([]track.Event, error) {
	b, err := r.NextLines(ctx, limit, math.MaxInt, wait)
	if b.N == 0 {
		return nil, err
	}
	evs, perr := trackrpc.ParseLines(b.Data)
	if perr != nil {
		return evs, fmt.Errorf("tracking journal: corrupt event after seq %d: %w", b.First, perr)
	}
	return evs, err
}

// NextLines returns the lines of up to limit events, stopping at the first line that takes the
// batch to maxBytes or more, and waits up to wait for the first one to be written. Only each
// line's seq is decoded: the lines go to the plugin as they are.
func (r *Reader) NextLines(ctx context.Context, limit, maxBytes int, wait time.Duration) (Batch, error) {
	r.buf = r.buf[:0]
	b := Batch{}
	if r.f == nil {
		if err := r.open(); err != nil {
			return b, err
		}
	}
	var timer <-chan time.Time
	var lt *time.Timer
	defer func() {
		if lt != nil {
			lt.Stop()
		}
	}()
	full := func() bool { return b.N >= limit || len(r.buf) >= maxBytes }
	for {
		r.j.mu.Lock()
		changed := r.j.changed
		r.j.mu.Unlock()
		eof, err := r.read(&b, limit, maxBytes)
		if err != nil || full() {
			b.Data = r.buf
			return b, err
		}
		if eof {
			// A finished segment is complete once a later one exists: read it to its end
			// once more, then move on.
			if first, ok := r.nextSegment(); ok {
				if _, err := r.read(&b, limit, maxBytes); err != nil || full() {
					b.Data = r.buf
					return b, err
				}
				if len(r.part) > 0 {
					b.Data = r.buf
					return b, fmt.Errorf("tracking journal segment %d ends in a torn line", r.cur)
				}
				r.from = max(r.from, first)
				if err := r.open(); err != nil {
					b.Data = r.buf
					return b, err
				}
				continue
			}
		}
		if b.N > 0 {
			b.Data = r.buf
			return b, nil
		}
		if timer == nil {
			lt = time.NewTimer(wait)
			timer = lt.C
		}
		select {
		case <-changed:
		case <-timer:
			return b, nil
		case <-ctx.Done():
			return b, ctx.Err()
		}
	}
}

// read appends whole lines to r.buf until the batch is full or what is written ends; eof reports
// the latter.
func (r *Reader) read(b *Batch, limit, maxBytes int) (eof bool, err error) {
	for b.N < limit && len(r.buf) < maxBytes {
		line, err := r.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			r.part = append(r.part, line...)
			continue
		}
		if err == io.EOF {
			r.part = append(r.part, line...)
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("read tracking journal: %w", err)
		}
		if len(r.part) > 0 {
			line = append(r.part, line...)
			r.part = nil
		}
		seq, err := trackrpc.LineSeq(line)
		if err != nil {
			return false, fmt.Errorf("tracking journal: corrupt event after seq %d: %w", r.from, err)
		}
		if seq < r.from {
			continue
		}
		r.from = seq + 1
		r.buf = append(r.buf, line...)
		if b.N == 0 {
			b.First = seq
		}
		b.Last = seq
		b.N++
	}
	return false, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
