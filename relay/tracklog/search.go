package tracklog

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Query selects records. Empty fields match anything; the others must all match. Addresses and
// message ids compare without regard to case, and a message id may be given with or without its
// angle brackets.
type Query struct {
	MessageID string
	Sender    string
	Recipient string
	QueueID   string
}

// Empty reports whether q selects every record.
func (q Query) Empty() bool { return q == Query{} }

func (q Query) match(r Record) bool {
	return (q.MessageID == "" || strings.EqualFold(trimID(q.MessageID), trimID(r.MessageID))) &&
		(q.Sender == "" || strings.EqualFold(q.Sender, r.Sender)) &&
		(q.Recipient == "" || strings.EqualFold(q.Recipient, r.Recipient)) &&
		(q.QueueID == "" || q.QueueID == r.QueueID)
}

func trimID(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">") }

// Search reads every log file in dir and returns the records q selects, each once, in the order
// the events happened (by time, then seq).
func Search(dir string, q Query) ([]Record, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, fmt.Errorf("search tracking logs: %w", err)
	}
	sort.Strings(files)
	type key struct {
		seq  uint64
		rcpt string
	}
	seen := make(map[key]bool)
	var out []Record
	for _, path := range files {
		err := scanFile(path, func(r Record) {
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
	return out, nil
}

// ReadFile returns every well-formed record of one log file, as written (repeats included).
func ReadFile(path string) ([]Record, error) {
	var out []Record
	err := scanFile(path, func(r Record) { out = append(out, r) })
	return out, err
}

// scanFile calls fn for each well-formed record of path; comment lines and malformed lines (a
// torn tail) are skipped.
func scanFile(path string, fn func(Record)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read tracking log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
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
		return fmt.Errorf("read tracking log %s: %w", path, err)
	}
	return nil
}
