package tracklog

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// Query selects records. Empty fields match anything; the others must all match. Addresses and
// message ids compare without regard to case, and a message id may be given with or without its
// angle brackets.
type Query struct {
	MessageID string
	Sender    string
	Recipient string
	QueueID   string
	// Since and Until bound the events' times: Since <= time < Until. A zero bound is open.
	Since, Until time.Time
	// Limit keeps the first Limit records, in the order the events happened; 0 keeps all.
	Limit int
}

// Empty reports whether q selects every record.
func (q Query) Empty() bool {
	return q.MessageID == "" && q.Sender == "" && q.Recipient == "" && q.QueueID == "" &&
		q.Since.IsZero() && q.Until.IsZero()
}

func (q Query) match(r Record) bool {
	return (q.MessageID == "" || strings.EqualFold(trimID(q.MessageID), trimID(r.MessageID))) &&
		(q.Sender == "" || strings.EqualFold(q.Sender, r.Sender)) &&
		(q.Recipient == "" || strings.EqualFold(q.Recipient, r.Recipient)) &&
		(q.QueueID == "" || q.QueueID == r.QueueID) &&
		(q.Since.IsZero() || !r.Time.Before(q.Since)) &&
		(q.Until.IsZero() || r.Time.Before(q.Until))
}

func trimID(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">") }

// lateDays is how many days after its event a record may be written and still be found by a
// search with an upper bound: the plugin writes an event when it gets it, and after a crash or
// while it was down it gets events late. A record written more than a day late is found by
// searches without --until.
const lateDays = 1

// Files returns the names of the day files in fsys that can hold records of q, oldest first.
// A record is written on the UTC day of its event or later, so the files before Since's day cannot
// hold any; those more than lateDays after Until's day are not read either. Without bounds every
// *.log file is returned.
func Files(fsys fs.FS, q Query) ([]string, error) {
	names, err := fs.Glob(fsys, "*.log")
	if err != nil {
		return nil, fmt.Errorf("list tracking logs: %w", err)
	}
	sort.Strings(names)
	if q.Since.IsZero() && q.Until.IsZero() {
		return names, nil
	}
	var out []string
	for _, name := range names {
		day, ok := Day(name)
		if !ok {
			continue
		}
		if !q.Since.IsZero() && day.Before(truncDay(q.Since)) {
			continue
		}
		// Until is exclusive: the last day with events is the one of the instant before it.
		if !q.Until.IsZero() && day.After(truncDay(q.Until.Add(-time.Nanosecond)).AddDate(0, 0, lateDays)) {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

// Day returns the UTC day a file name YYYYMMDD.log stands for.
func Day(name string) (time.Time, bool) {
	stem, ok := strings.CutSuffix(path.Base(name), ".log")
	if !ok || len(stem) != 8 {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102", stem)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

func truncDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Search reads the log files in dir that can hold records of q and returns the records q
// selects, each once, in the order the events happened (by time, then seq).
func Search(dir string, q Query) ([]Record, error) {
	return SearchFS(os.DirFS(dir), q)
}

// SearchFS is Search over the log files of fsys.
func SearchFS(fsys fs.FS, q Query) ([]Record, error) {
	files, err := Files(fsys, q)
	if err != nil {
		return nil, err
	}
	type key struct {
		seq  uint64
		rcpt string
	}
	seen := make(map[key]bool)
	var out []Record
	for _, name := range files {
		err := scanFS(fsys, name, func(r Record) {
			if !q.match(r) {
				return
			}
			k := key{r.Seq, strings.ToLower(r.Recipient)}
			if seen[k] {
				return
			}
			seen[k] = true
			out = append(out, r)
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].Seq < out[j].Seq
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// ReadFile returns every well-formed record of one log file, as written (repeats included).
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read tracking log: %w", err)
	}
	defer f.Close()
	var out []Record
	err = scan(f, path, func(r Record) { out = append(out, r) })
	return out, err
}

func scanFS(fsys fs.FS, name string, fn func(Record)) error {
	f, err := fsys.Open(name)
	if err != nil {
		return fmt.Errorf("read tracking log: %w", err)
	}
	defer f.Close()
	return scan(f, name, fn)
}

// scan calls fn for each well-formed record read from r; comment lines and malformed lines (a
// torn tail) are skipped.
func scan(r io.Reader, name string, fn func(Record)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		r, err := ParseLine(line)
		if err != nil {
			continue
		}
		fn(r)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read tracking log %s: %w", name, err)
	}
	return nil
}

// tailBytes is how much of the newest file Tail reads.
const tailBytes = 256 << 10

// Tail returns up to n of the last records written to the newest log file in dir, in the order
// they were written (repeats included). It reads only the end of that file, so it is cheap on a
// busy day's log. A missing directory has no records.
func Tail(dir string, n int) ([]Record, error) {
	names, err := Files(os.DirFS(dir), Query{})
	if err != nil || len(names) == 0 {
		return nil, err
	}
	f, err := os.Open(path.Join(dir, names[len(names)-1]))
	if err != nil {
		return nil, fmt.Errorf("read tracking log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read tracking log: %w", err)
	}
	var r io.Reader = f
	if off := st.Size() - tailBytes; off > 0 {
		br := bufio.NewReader(io.NewSectionReader(f, off, tailBytes))
		if _, err := br.ReadString('\n'); err != nil { // the line cut by the offset
			return nil, nil
		}
		r = br
	}
	var out []Record
	err = scan(r, f.Name(), func(rec Record) {
		out = append(out, rec)
		if len(out) > 2*n {
			out = append(out[:0], out[len(out)-n:]...)
		}
	})
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, err
}

// ParseBound parses a --since or --until value: an RFC 3339 time, a UTC date (YYYY-MM-DD) or
// date and time (YYYY-MM-DD hh:mm[:ss], UTC), or a duration back from now (90m, 36h). A bare date
// as an upper bound means the end of that day, so that --until 2026-11-30 includes the 30th.
func ParseBound(s string, now time.Time, upper bool) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("time %q: a duration back from now must not be negative", s)
		}
		return now.Add(-d).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		if upper {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339, YYYY-MM-DD, \"YYYY-MM-DD hh:mm\" (UTC) or a duration such as 36h", s)
}
