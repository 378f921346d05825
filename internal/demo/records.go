package demo

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Records is what the tracking logs say about the load's messages: for each message, its
// event ids in the order the relay recorded them (the log's seq column; file order without it).
type Records struct {
	Count  int
	events map[int][]record
	n      uint64 // records read so far: the order of a log without a seq column
}

type record struct {
	seq   uint64 // the relay's event sequence number
	event int
}

// loadMsgID matches the Message-ID smtpload gives message N: <N.load@example.test>.
var loadMsgID = regexp.MustCompile(`(\d+)\.load@example\.test`)

// The events every delivered message must have, in this order: received, queued, delivered.
var wantOrder = []int{1019, 1020, 1031}

// ReadRecords reads every tracking log in dir (files named YYYYMMDD.log, W3C-style headers
// with a #Fields line naming the columns).
func ReadRecords(dir string) (*Records, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	recs := &Records{events: make(map[int][]record)}
	for _, f := range files {
		if err := recs.readFile(f); err != nil {
			return nil, err
		}
	}
	for _, evs := range recs.events {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].seq < evs[j].seq })
	}
	return recs, nil
}

func (r *Records) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read tracking log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	msgCol, evCol, seqCol := -1, -1, -1
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "#Fields:"); ok {
			msgCol, evCol, seqCol = -1, -1, -1
			for i, name := range strings.Fields(rest) {
				switch strings.ToLower(name) {
				case "msgid":
					msgCol = i
				case "event-id":
					evCol = i
				case "seq":
					seqCol = i
				}
			}
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" || msgCol < 0 || evCol < 0 {
			continue
		}
		cols := strings.Split(line, "\t")
		if msgCol >= len(cols) || evCol >= len(cols) {
			continue
		}
		r.Count++
		m := loadMsgID.FindStringSubmatch(cols[msgCol])
		ev, err := strconv.Atoi(cols[evCol])
		if m == nil || err != nil {
			continue
		}
		msg, _ := strconv.Atoi(m[1])
		r.n++
		rec := record{seq: r.n, event: ev}
		if seqCol >= 0 && seqCol < len(cols) {
			if s, err := strconv.ParseUint(cols[seqCol], 10, 64); err == nil {
				rec.seq = s
			}
		}
		r.events[msg] = append(r.events[msg], rec)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read tracking log %s: %w", path, err)
	}
	return nil
}

// Missing returns how many of the received, queued and delivered records of message seq are
// missing or out of order.
func (r *Records) Missing(seq int) int {
	evs := r.events[seq]
	missing, at := 0, 0
	for _, want := range wantOrder {
		found := false
		for i := at; i < len(evs); i++ {
			if evs[i].event == want {
				found, at = true, i+1
				break
			}
		}
		if !found {
			missing++
		}
	}
	return missing
}

// Repeated returns how many of the received, queued and delivered records of message seq appear
// more than once: a message is recorded once per event, whatever restarted in between.
func (r *Records) Repeated(seq int) int {
	n := 0
	for _, want := range wantOrder {
		c := 0
		for _, ev := range r.events[seq] {
			if ev.event == want {
				c++
			}
		}
		if c > 1 {
			n++
		}
	}
	return n
}
