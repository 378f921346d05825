package tracklog

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"relayfix/internal/safefile"
)

// FileName returns the name of the log file for the UTC day of t: YYYYMMDD.log.
func FileName(t time.Time) string { return t.UTC().Format("20060102") + ".log" }

// Writer appends records to the daily log files of one directory. It is not safe for concurrent
// use; several processes may append to the same file, since each batch is one append.
type Writer struct {
	dir      string
	software string
	now      func() time.Time
	f        *os.File
	name     string // file name of f
	buf      []byte
}

// NewWriter returns a writer for dir (created if missing). software names the writing build in
// each file's #Software header; now is the clock that decides the day (time.Now if nil).
func NewWriter(dir, software string, now func() time.Time) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{dir: dir, software: software, now: now}
}

// Write appends recs to today's file (by the writer's clock, UTC) in one write and fsyncs it. When
// Write returns nil, the records are durable.
func (w *Writer) Write(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	now := w.now().UTC()
	w.buf = w.buf[:0]
	if err := w.open(now); err != nil {
		return err
	}
	for _, r := range recs {
		w.buf = r.AppendLine(w.buf)
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return fmt.Errorf("write tracking log %s: %w", w.f.Name(), err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync tracking log %s: %w", w.f.Name(), err)
	}
	return nil
}

// open makes f the file for now's day, starting w.buf with the header if the file is new, or with
// a newline if the file ends in a torn line.
func (w *Writer) open(now time.Time) error {
	name := FileName(now)
	if w.f != nil && w.name == name {
		return nil
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	// The logs name every sender, recipient and subject: owner only, like the control socket.
	// A directory or file an older build made readable to all is tightened as it is opened.
	if err := safefile.MkdirAll(w.dir, 0o700); err != nil {
		return fmt.Errorf("tracking log directory: %w", err)
	}
	if err := os.Chmod(w.dir, 0o700); err != nil {
		return fmt.Errorf("tracking log directory: %w", err)
	}
	path := filepath.Join(w.dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open tracking log: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("open tracking log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open tracking log: %w", err)
	}
	if st.Size() == 0 {
		w.buf = append(w.buf, Header(w.software, now)...)
		if err := safefile.SyncDir(w.dir); err != nil {
			f.Close()
			return err
		}
	} else if last, err := lastByte(path, st.Size()); err != nil {
		f.Close()
		return err
	} else if last != '\n' {
		w.buf = append(w.buf, '\n')
	}
	w.f, w.name = f, name
	return nil
}

func lastByte(path string, size int64) (byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open tracking log: %w", err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil && err != io.EOF {
		return 0, fmt.Errorf("read tracking log %s: %w", path, err)
	}
	return b[0], nil
}

// Header returns the header that opens a log file created at t by software.
func Header(software string, t time.Time) string {
	return "#Software: " + software + "\n" +
		"#Version: 1\n" +
		"#Date: " + t.UTC().Format("2006-01-02 15:04:05") + " GMT\n" +
		"#Fields: " + strings.Join(fieldNames, "\t") + "\n"
}

// Close closes the current file.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
