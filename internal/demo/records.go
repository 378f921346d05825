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

// Records is what the tracking logs say about the load's messages: for each sequence number,
// its event ids in log order.
type Records struct {
	Count  int
	events map[int][]int
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
	recs := &Records{events: make(map[int][]int)}
	for _, f := range files {
		if err := recs.readFile(f); err != nil {
			return nil, err
		}
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
	msgCol, evCol := -1, -1
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "#Fields:"); ok {
			msgCol, evCol = -1, -1
			for i, name := range strings.Fields(rest) {
				switch strings.ToLower(name) {
				case "msgid":
					msgCol = i
				case "event-id":
					evCol = i
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
		seq, _ := strconv.Atoi(m[1])
		r.events[seq] = append(r.events[seq], ev)
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
			if evs[i] == want {
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
