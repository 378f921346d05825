// Package spool is relayd's durable message store: an append-only log of segment files in
// ROOT/spool that holds each accepted message (envelope and body), the later changes of its
// delivery state, and its removal.
//
// It is a log rather than a file per message because on this kind of filesystem creating and
// deleting a file per message dominates the cost of a durable relay, while appending to a file
// that already exists and fsyncing it is several times cheaper. A single committer goroutine
// writes the records that concurrent sessions hand it in one batch, fsyncs once, and only then
// releases every writer waiting in that batch (group commit): a message is acknowledged only once
// it is on disk. State changes and removals are written at once but synced lazily, with the next
// message or within lazySync: losing one in a power cut only means a message is tried again, and
// syncing them eagerly would double the fsyncs of a relay that delivers as fast as it accepts.
//
// Each record is framed with a magic number, its type, its length and a CRC-32C of its payload, so
// a record torn by a crash is recognised and ignored at the next start; reading a segment stops
// at its first bad record (nothing acknowledged can follow it, because every acknowledgement
// waited for an fsync that covered all earlier bytes). After a restart the spool never appends to
// an old segment: it starts a new one.
//
// A segment is deleted once no live message has a record in it and every older segment is gone,
// so that a removal record never outlives the message it removes. Its file is closed at once:
// an unlinked file that stays open keeps its space. For the space of delivered mail to come back
// within seconds whatever the segment size, the current segment is also left by age (once it
// holds minRotate bytes and is older than Options.SegmentAge), and, when everything in it was
// delivered, as soon as it is that old even if nothing more arrives.
//
// # Handing the spool to a new relayd
//
// A live upgrade runs two relayd processes on one spool for a moment: the old one finishes its
// open transactions and deliveries while the new one already takes mail. Two processes never
// append to the same file. The new one opens the spool as its successor (Options.Successor): it
// takes the lock "lock.next" instead of "lock", reads nothing, and writes only segments of its
// own, numbered from the next generation (the high 32 bits of a segment number) on, so that every
// one of its segments sorts after every segment the old process has written or will write. Until
// the old process lets go of "lock", the new one knows only the messages it received itself, so
// that no message is delivered by both. Adopt waits for "lock" (the old process releases it
// when it closes the spool after its workers stopped, or when it dies), then reads the old
// process's segments, whole, as a start reads them, and takes their live messages over. Reading
// them only then, rather than at open and again for the difference, costs one read of the spool
// and leaves nothing to reconcile: whatever the old process wrote, messages and removals, is on
// disk by then. A restart after a crash reads every generation in order, which is the order in
// which the records were written for any one message, because a message's records are written by
// one process only until its segments are adopted, and after that only by a later generation.
package spool

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unique"

	"relayfix/internal/safefile"
)

// Record types.
const (
	recMessage byte = 1 // envelope and body of a new message
	recState   byte = 2 // delivery state of a message
	recRemove  byte = 3 // the message left the queue
)

const (
	magic     = 0x52465831 // "RFX1"
	headerLen = 4 + 1 + 4 + 4
	// maxRecord bounds a record's length so that a corrupt length field cannot make the reader
	// allocate without limit.
	maxRecord = 256 << 20
	// segmentSize is the size after which the committer starts a new segment.
	defaultSegmentSize = 64 << 20
	// defaultSegmentAge is the age after which the committer starts a new segment, once the
	// current one holds minRotate bytes or nothing live.
	defaultSegmentAge = time.Second
	// minRotate keeps a relay under steady load from starting a segment more often than once
	// per this many bytes.
	minRotate = 1 << 20
	// maxBatch bounds how many records one commit writes.
	maxBatch = 512
	// lazySync bounds how long records nobody waits for (state changes, removals) stay unsynced.
	lazySync = 200 * time.Millisecond
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// EnvSkipSegmentDirSync, set to 1, makes the spool skip the fsync of its directory after it
// creates a segment. It exists only so that the power-cut tests can show that they find the loss
// this causes; nothing else may set it.
const EnvSkipSegmentDirSync = "RELAYFIX_TEST_SKIP_SEGMENT_DIRSYNC"

// ErrClosed is returned by operations on a closed spool.
var ErrClosed = errors.New("spool closed")

// ErrLocked is returned by Open when another process has the spool open.
var ErrLocked = errors.New("spool is in use by another relayd")

// generationShift puts a segment number's generation in its high bits.
const generationShift = 32

// Envelope is what the spool keeps of a message besides its body.
type Envelope struct {
	ID         string    `json:"id"`
	Sender     string    `json:"from"`
	Recipients []string  `json:"to"`
	Received   time.Time `json:"received"`
	Size       int64     `json:"size"`
	MessageID  string    `json:"message_id,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	ClientIP   string    `json:"client_ip,omitempty"`
	ClientName string    `json:"client_name,omitempty"`
	Helo       string    `json:"helo,omitempty"`
	Server     string    `json:"server,omitempty"`
	// Bounce marks a delivery status notification generated by this relay: it is never bounced
	// itself.
	Bounce bool `json:"bounce,omitempty"`
	State
}

// State is the part of an envelope that changes while the message waits for delivery.
type State struct {
	Attempts  int       `json:"attempts,omitempty"`
	NextTry   time.Time `json:"next_try,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Done lists the indexes in Recipients that need no further attempt (delivered or failed).
	Done []int `json:"done,omitempty"`
}

// stateRecord is the payload of a recState record.
type stateRecord struct {
	ID string `json:"id"`
	State
}

// Body locates a message body inside a segment.
type Body struct {
	Segment uint64
	Offset  int64
	Length  int64
}

// Message is a message found in the spool at open.
type Message struct {
	Envelope Envelope
	Body     Body
}

type request struct {
	typ  byte
	id   string
	data []byte // the whole framed record
	// bodyOff is the offset of the body inside data, for recMessage.
	bodyOff int64
	done    chan error // nil: nobody waits
	body    Body       // filled in by the committer for recMessage
}

type segment struct {
	seq  uint64
	f    *os.File
	fd   int // of f, for fdatasync without going through the poller
	size int64
	live int // messages with a record in this segment that are not removed
	// born is when the committer started writing the segment (zero for a segment read back).
	born time.Time
}

// Spool is an open spool directory.
type Spool struct {
	lock        *os.File // holds the spool's flock while open; nil for a successor until Adopt
	heir        *os.File // a successor's flock on lock.next
	base        uint64   // a successor's first segment number: older ones are the old process's
	dir         string
	log         *slog.Logger
	segmentSize int64
	segmentAge  time.Duration

	reqs    chan *request
	stopped chan struct{}
	quit    chan struct{}

	mu       sync.Mutex
	segs     map[uint64]*segment
	order    []uint64            // segment numbers on disk, oldest first
	refs     map[string][]uint64 // live message -> segments holding its records
	cur      *segment            // owned by the committer; read under mu
	broken   bool                // the current segment took a failed write; owned by the committer
	stopOnce sync.Once
}

// Options tune a spool; the zero value is fine.
type Options struct {
	SegmentSize int64 // start a new segment after this many bytes (default 64 MiB)
	// SegmentAge starts a new segment after this long (default 1s), so that a segment whose
	// messages were all delivered is deleted soon whatever its size.
	SegmentAge time.Duration
	Logger     *slog.Logger
	// Successor opens the spool beside the relayd that is handing it over: see the package
	// comment. Open then returns no messages; Adopt returns them once the old process let go.
	Successor bool
}

// Open opens (creating if needed) the spool in dir, reads back every live message, starts a
// new segment and the committer. Close stops it.
func Open(dir string, opts Options) (*Spool, []Message, error) {
	// Messages are private to the relay's owner; a spool an older build left open is closed.
	if err := safefile.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	// One relay per spool: a second one would write segments the first does not know about.
	// A successor takes lock.next, so that at most one process waits for the spool.
	name := "lock"
	if opts.Successor {
		name = "lock.next"
	}
	lock, err := tryLock(filepath.Join(dir, name))
	if err != nil {
		return nil, nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	s := &Spool{
		dir:         dir,
		log:         opts.Logger,
		segmentSize: opts.SegmentSize,
		segmentAge:  opts.SegmentAge,
		reqs:        make(chan *request, 1024),
		stopped:     make(chan struct{}),
		quit:        make(chan struct{}),
		segs:        make(map[uint64]*segment),
		refs:        make(map[string][]uint64),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.segmentSize <= 0 {
		s.segmentSize = defaultSegmentSize
	}
	if s.segmentAge <= 0 {
		s.segmentAge = defaultSegmentAge
	}
	if opts.Successor {
		seqs, err := s.list()
		if err != nil {
			lock.Close()
			return nil, nil, err
		}
		var last uint64
		if len(seqs) > 0 {
			last = seqs[len(seqs)-1]
		}
		s.heir = lock
		s.base = (last>>generationShift + 1) << generationShift
		if err := s.rotate(s.base); err != nil {
			lock.Close()
			return nil, nil, err
		}
		go s.commit()
		return s, nil, nil
	}
	s.lock = lock
	seqs, err := s.list()
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	msgs, last, err := s.recover(seqs)
	if err != nil {
		s.closeFiles()
		lock.Close()
		return nil, nil, err
	}
	if err := s.rotate(last + 1); err != nil {
		s.closeFiles()
		lock.Close()
		return nil, nil, err
	}
	s.gc()
	go s.commit()
	return s, msgs, nil
}

func segName(seq uint64) string { return fmt.Sprintf("seg-%016x.log", seq) }

// tryLock takes an exclusive flock on path, or fails at once with ErrLocked.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (%v)", ErrLocked, err)
	}
	return f, nil
}

// Generation is the generation of the segments this spool writes: 0 for a relayd started on
// its own after a spool that never saw an upgrade, one more for each successor. Two processes
// that share the spool never have the same generation.
func (s *Spool) Generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.seq >> generationShift
}

// Adopt is a successor's half of the handover: it waits until the process that had the spool
// let go of it (closed it, or died), then reads the segments that process wrote and returns
// their live messages, which are this spool's from then on. It returns nothing for a spool that
// is not a successor, or one that adopted already.
func (s *Spool) Adopt(ctx context.Context) ([]Message, error) {
	s.mu.Lock()
	adopting := s.heir != nil && s.lock == nil
	s.mu.Unlock()
	if !adopting {
		return nil, nil
	}
	path := filepath.Join(s.dir, "lock")
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var lock *os.File
	for {
		var err error
		lock, err = tryLock(path)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("adopt spool %s: %w", s.dir, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("adopt spool %s: %w", s.dir, ctx.Err())
		case <-s.quit:
			return nil, ErrClosed
		case <-t.C:
		}
	}
	seqs, err := s.list()
	if err != nil {
		lock.Close()
		return nil, err
	}
	older := seqs[:0]
	for _, seq := range seqs {
		if seq < s.base {
			older = append(older, seq)
		}
	}
	prev := &Spool{dir: s.dir, log: s.log, segs: make(map[uint64]*segment), refs: make(map[string][]uint64)}
	msgs, _, err := prev.recover(older)
	if err != nil {
		prev.closeFiles()
		lock.Close()
		return nil, fmt.Errorf("adopt spool %s: %w", s.dir, err)
	}
	s.mu.Lock()
	maps.Copy(s.segs, prev.segs)
	s.order = append(prev.order, s.order...)
	maps.Copy(s.refs, prev.refs)
	s.lock = lock
	// The spool is this process's now; the next upgrade's successor takes lock.next.
	s.heir.Close()
	s.heir = nil
	s.mu.Unlock()
	s.gc()
	return msgs, nil
}

// list returns the numbers of the segment files in the spool, in order.
func (s *Spool) list() ([]uint64, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read spool %s: %w", s.dir, err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".log"), 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, n)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// recover reads the segments seqs in order and rebuilds the live messages.
func (s *Spool) recover(seqs []uint64) ([]Message, uint64, error) {
	live := make(map[string]*Message)
	var order []string // ids in arrival order
	var last uint64
	for _, seq := range seqs {
		last = seq
		path := filepath.Join(s.dir, segName(seq))
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, fmt.Errorf("open segment %s: %w", path, err)
		}
		seg := &segment{seq: seq, f: f}
		s.segs[seq] = seg
		s.order = append(s.order, seq)
		if err := s.scan(seg, live, &order); err != nil {
			return nil, 0, err
		}
	}
	msgs := make([]Message, 0, len(live))
	for _, id := range order {
		m, ok := live[id]
		if !ok {
			continue
		}
		delete(live, id) // an id appears once in order, but guard against repeats
		msgs = append(msgs, *m)
		*m = Message{} // let the copy be the only one
		for _, seq := range s.refs[id] {
			s.segs[seq].live++
		}
	}
	return msgs, last, nil
}

// scan reads seg's records up to its end or its first bad record.
func (s *Spool) scan(seg *segment, live map[string]*Message, order *[]string) error {
	st, err := seg.f.Stat()
	if err != nil {
		return fmt.Errorf("stat segment %s: %w", seg.f.Name(), err)
	}
	end := st.Size()
	r := io.NewSectionReader(seg.f, 0, end)
	var hdr [headerLen]byte
	var off int64
	var buf []byte
	for off+headerLen <= end {
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			return fmt.Errorf("read segment %s at %d: %w", seg.f.Name(), off, err)
		}
		typ := hdr[4]
		n := int64(binary.BigEndian.Uint32(hdr[5:9]))
		sum := binary.BigEndian.Uint32(hdr[9:13])
		if binary.BigEndian.Uint32(hdr[0:4]) != magic || n > maxRecord || off+headerLen+n > end {
			break
		}
		// One buffer serves every record: the envelope is decoded out of it, the body is
		// only checked, so reading back a large spool does not allocate a body per message.
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		payload := buf[:n]
		if n > 0 {
			if _, err := r.ReadAt(payload, off+headerLen); err != nil {
				return fmt.Errorf("read segment %s at %d: %w", seg.f.Name(), off, err)
			}
		}
		if crc32.Checksum(payload, crcTable) != sum {
			break
		}
		if err := s.apply(seg, typ, payload, off+headerLen, live, order); err != nil {
			s.log.Warn("spool: skipping unreadable record", "segment", seg.f.Name(), "offset", off, "err", err)
		}
		off += headerLen + n
	}
	if off != end {
		s.log.Warn("spool: segment ends in a torn record", "segment", seg.f.Name(), "offset", off, "size", end)
	}
	seg.size = off
	return nil
}

func (s *Spool) apply(seg *segment, typ byte, payload []byte, payloadOff int64, live map[string]*Message, order *[]string) error {
	switch typ {
	case recMessage:
		if len(payload) < 4 {
			return errors.New("short message record")
		}
		n := int(binary.BigEndian.Uint32(payload[:4]))
		if 4+n > len(payload) {
			return errors.New("envelope overruns record")
		}
		var env Envelope
		if err := json.Unmarshal(payload[4:4+n], &env); err != nil {
			return fmt.Errorf("envelope: %w", err)
		}
		if env.ID == "" {
			return errors.New("message record without id")
		}
		env.Intern()
		bodyOff := payloadOff + 4 + int64(n)
		body := Body{Segment: seg.seq, Offset: bodyOff, Length: int64(len(payload) - 4 - n)}
		if m := live[env.ID]; m != nil {
			// A live message written again: moved out of an old segment, with its state.
			m.Envelope, m.Body = env, body
		} else {
			live[env.ID] = &Message{Envelope: env, Body: body}
			*order = append(*order, env.ID)
		}
		s.refs[env.ID] = []uint64{seg.seq}
	case recState:
		var st stateRecord
		if err := json.Unmarshal(payload, &st); err != nil {
			return fmt.Errorf("state: %w", err)
		}
		m := live[st.ID]
		if m == nil {
			return nil // state of a message removed earlier
		}
		m.Envelope.State = st.State
		if r := s.refs[st.ID]; r[len(r)-1] != seg.seq {
			s.refs[st.ID] = append(r, seg.seq)
		}
	case recRemove:
		id := string(payload)
		delete(live, id)
		delete(s.refs, id)
	default:
		return fmt.Errorf("unknown record type %d", typ)
	}
	return nil
}

// Intern makes the envelope share the strings that repeat from message to message (client,
// server, sender, recipients), so that a queue of many similar messages, read back or
// received, does not hold a copy of each per message.
func (env *Envelope) Intern() {
	for _, p := range []*string{&env.Sender, &env.ClientIP, &env.ClientName, &env.Helo, &env.Server, &env.LastError} {
		*p = unique.Make(*p).Value()
	}
	for i, r := range env.Recipients {
		env.Recipients[i] = unique.Make(r).Value()
	}
}

// rotate starts segment seq as the current one. Only the committer (or Open, before it) calls it.
func (s *Spool) rotate(seq uint64) error {
	path := filepath.Join(s.dir, segName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	// The new name must be durable before any record in it is acknowledged. The power-cut
	// tests' negative control skips this sync (test-only: EnvSkipSegmentDirSync) to show they
	// catch the loss.
	if os.Getenv(EnvSkipSegmentDirSync) != "1" {
		err = safefile.SyncDir(s.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	seg := &segment{seq: seq, f: f, fd: int(f.Fd()), born: time.Now()}
	s.mu.Lock()
	s.segs[seq] = seg
	s.order = append(s.order, seq)
	s.cur = seg
	s.mu.Unlock()
	return nil
}

func frame(typ byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, headerLen, headerLen+n)
	for _, p := range parts {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint32(b[0:4], magic)
	b[4] = typ
	binary.BigEndian.PutUint32(b[5:9], uint32(n))
	binary.BigEndian.PutUint32(b[9:13], crc32.Checksum(b[headerLen:], crcTable))
	return b
}

// Put stores a new message durably and returns where its body is. It returns once the
// message is on disk, or with an error, in which case the message must not be acknowledged.
// The body is written as given; callers prepend their trace headers.
func (s *Spool) Put(ctx context.Context, env *Envelope, header, body []byte) (Body, error) {
	ej, err := json.Marshal(env)
	if err != nil {
		return Body{}, fmt.Errorf("spool %s: %w", env.ID, err)
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(ej)))
	if int64(len(ej)+len(header)+len(body)+4) > maxRecord {
		return Body{}, fmt.Errorf("spool %s: message too large", env.ID)
	}
	req := &request{
		typ:     recMessage,
		id:      env.ID,
		data:    frame(recMessage, n[:], ej, header, body),
		bodyOff: headerLen + 4 + int64(len(ej)),
		done:    make(chan error, 1),
	}
	if err := s.send(ctx, req); err != nil {
		return Body{}, err
	}
	select {
	case err := <-req.done:
		if err != nil {
			return Body{}, fmt.Errorf("spool %s: %w", env.ID, err)
		}
		return req.body, nil
	case <-s.stopped:
		select {
		case err := <-req.done:
			if err == nil {
				return req.body, nil
			}
		default:
		}
		return Body{}, ErrClosed
	case <-ctx.Done():
		// The record may still be committed; it is then delivered although the client saw no
		// acknowledgement, which SMTP allows (the client sends it again: a duplicate, never a loss).
		return Body{}, ctx.Err()
	}
}

// Update records a message's new delivery state. It does not wait for the disk: losing an
// update in a crash only means a retry happens sooner or a recipient is tried again.
func (s *Spool) Update(id string, st State) error {
	b, err := json.Marshal(stateRecord{ID: id, State: st})
	if err != nil {
		return fmt.Errorf("spool update %s: %w", id, err)
	}
	return s.send(context.Background(), &request{typ: recState, id: id, data: frame(recState, b)})
}

// Remove records that a message left the queue. Like Update it does not wait for the disk:
// a removal lost in a crash means the message is delivered again, never lost.
func (s *Spool) Remove(id string) error {
	return s.send(context.Background(), &request{typ: recRemove, id: id, data: frame(recRemove, []byte(id))})
}

func (s *Spool) send(ctx context.Context, req *request) error {
	select {
	case <-s.quit:
		return ErrClosed
	default:
	}
	select {
	case s.reqs <- req:
		return nil
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Open returns a reader over a message body.
func (s *Spool) Open(b Body) (*io.SectionReader, error) {
	s.mu.Lock()
	seg := s.segs[b.Segment]
	s.mu.Unlock()
	if seg == nil {
		return nil, fmt.Errorf("spool: segment %d is gone", b.Segment)
	}
	return io.NewSectionReader(seg.f, b.Offset, b.Length), nil
}

// commit is the committer loop: it batches requests, writes them with one write, fsyncs once
// and then releases the writers.
func (s *Spool) commit() {
	defer close(s.stopped)
	var batch []*request
	var buf []byte
	// dirty is set when records were written but not yet synced: updates and removals nobody
	// waits for are synced with the next message, or after lazySync at the latest.
	dirty := false
	lazy := time.NewTimer(time.Hour)
	lazy.Stop()
	age := time.NewTicker(s.segmentAge)
	defer age.Stop()
	defer func() {
		if dirty {
			s.sync()
		}
	}()
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-lazy.C:
			if dirty {
				s.sync()
				dirty = false
			}
			continue
		case <-age.C:
			// Nothing may arrive for a while: a segment whose messages all left is left by
			// age here, so that it can be deleted.
			if s.idleRotate() {
				dirty = false
			}
			continue
		case <-s.quit:
			// Write what was handed over before the close.
			select {
			case first = <-s.reqs:
			default:
				return
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		wait := false
		for _, r := range batch {
			wait = wait || r.done != nil
		}
		err := s.writeBatch(batch, &buf, wait)
		if wait || err != nil {
			dirty = false
			lazy.Stop()
		} else if !dirty {
			dirty = true
			lazy.Reset(lazySync)
		}
		for _, r := range batch {
			if r.done != nil {
				r.done <- err
			}
		}
		clear(batch)
	}
}

// sync makes everything written to the current segment durable.
func (s *Spool) sync() {
	if err := syscall.Fdatasync(s.cur.fd); err != nil {
		s.log.Error("spool: sync failed", "segment", s.cur.f.Name(), "err", err)
	}
}

// idleRotate starts a new segment when the current one is old enough and holds nothing live,
// and reports whether it did (the old segment was synced first).
func (s *Spool) idleRotate() bool {
	cur := s.cur
	s.mu.Lock()
	idle := cur.live == 0 && cur.size > 0 && time.Since(cur.born) >= s.segmentAge
	s.mu.Unlock()
	if !idle {
		return false
	}
	syscall.Fdatasync(cur.fd)
	if err := s.rotate(cur.seq + 1); err != nil {
		s.log.Error("spool: cannot start a new segment", "err", err)
		return false
	}
	s.broken = false
	s.gc()
	return true
}

func (s *Spool) writeBatch(batch []*request, buf *[]byte, sync bool) error {
	cur := s.cur
	old := cur.size >= minRotate && time.Since(cur.born) >= s.segmentAge
	if cur.size >= s.segmentSize || s.broken || old {
		// Records in the old segment that nobody waited for become durable before it is left.
		syscall.Fdatasync(cur.fd)
		if err := s.rotate(cur.seq + 1); err != nil {
			s.log.Error("spool: cannot start a new segment", "err", err)
			if s.broken {
				return fmt.Errorf("write spool: %w", err)
			}
		} else {
			cur = s.cur
			s.broken = false
		}
	}
	b := (*buf)[:0]
	for _, r := range batch {
		if r.typ == recMessage {
			r.body = Body{Segment: cur.seq, Offset: cur.size + int64(len(b)) + r.bodyOff}
			r.body.Length = int64(len(r.data)) - r.bodyOff
		}
		b = append(b, r.data...)
	}
	*buf = b
	if _, err := cur.f.Write(b); err != nil {
		// A partial write (disk full) is cut off again, so that nothing written later sits
		// behind a torn record, where a restart would not read it. If it cannot be cut off,
		// the segment is abandoned.
		s.log.Error("spool: write failed", "segment", cur.f.Name(), "err", err)
		if terr := cur.f.Truncate(cur.size); terr != nil {
			s.broken = true
		}
		return fmt.Errorf("write spool: %w", err)
	}
	if sync {
		if err := syscall.Fdatasync(cur.fd); err != nil {
			// After a failed fsync the kernel may have dropped the pages: nothing more is
			// trusted to this segment.
			s.log.Error("spool: sync failed", "segment", cur.f.Name(), "err", err)
			s.broken = true
			return fmt.Errorf("sync spool: %w", err)
		}
	}
	s.mu.Lock()
	cur.size += int64(len(b))
	for _, r := range batch {
		switch r.typ {
		case recMessage:
			// A message written again (moved out of an old segment) lets go of where it was.
			for _, seq := range s.refs[r.id] {
				s.segs[seq].live--
			}
			s.refs[r.id] = []uint64{cur.seq}
			cur.live++
		case recState:
			refs, ok := s.refs[r.id]
			if ok && refs[len(refs)-1] != cur.seq {
				s.refs[r.id] = append(refs, cur.seq)
				cur.live++
			}
		case recRemove:
			for _, seq := range s.refs[r.id] {
				s.segs[seq].live--
			}
			delete(s.refs, r.id)
		}
	}
	s.mu.Unlock()
	s.gc()
	return nil
}

// gc deletes the oldest segments while they hold nothing live.
func (s *Spool) gc() {
	var drop []*segment
	s.mu.Lock()
	for len(s.order) > 0 {
		seg := s.segs[s.order[0]]
		if seg == s.cur || seg.live > 0 {
			break
		}
		drop = append(drop, seg)
		delete(s.segs, seg.seq)
		s.order = s.order[1:]
	}
	s.mu.Unlock()
	for _, seg := range drop {
		// Closed at once, because an unlinked file keeps its space while it is open. Nothing
		// live has a record in it; the one reader that may remain is a delivery of a message
		// that compaction moved while the delivery started, whose read then fails and is
		// retried from the message's new place.
		if err := os.Remove(seg.f.Name()); err != nil {
			s.log.Warn("spool: cannot remove segment", "err", err)
		}
		seg.f.Close()
	}
}

// Pinned returns the live messages that keep the oldest segment on disk, when that segment is
// not the current one and holds at most max live messages: a few long-deferred messages would
// otherwise keep every later segment too. The queue writes them again (Put with the same id),
// which frees the segment.
func (s *Spool) Pinned(max int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) < 2 {
		return nil
	}
	oldest := s.segs[s.order[0]]
	if oldest == s.cur || oldest.live == 0 || oldest.live > max {
		return nil
	}
	var ids []string
	for id, segs := range s.refs {
		if segs[0] == oldest.seq {
			ids = append(ids, id)
		}
	}
	return ids
}

// Segments returns the number of segment files, for tests and status.
func (s *Spool) Segments() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// Close stops the committer after it wrote what it was handed, and closes the files.
func (s *Spool) Close() error {
	s.stopOnce.Do(func() {
		close(s.quit)
		<-s.stopped
		s.closeFiles()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.lock != nil {
			s.lock.Close()
		}
		if s.heir != nil {
			s.heir.Close()
		}
	})
	return nil
}

func (s *Spool) closeFiles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]uint64, 0, len(s.segs))
	for k := range s.segs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		s.segs[k].f.Close()
	}
}
