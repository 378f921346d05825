package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"relayfix/internal/layout"
)

// History results.
const (
	ResultCommitted  = "committed"
	ResultRolledBack = "rolled-back"
	ResultFailed     = "failed"
)

// HistoryEntry is one line of ROOT/hotfix/history.jsonl: one transaction.
type HistoryEntry struct {
	ID      string    `json:"id"`
	Package string    `json:"package"`
	Action  string    `json:"action"` // apply, rollback, recover
	Result  string    `json:"result"` // committed, rolled-back, failed
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Error   string    `json:"error,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// appendHistory appends e durably.
func appendHistory(root layout.Root, e HistoryEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode history: %w", err)
	}
	f, err := os.OpenFile(root.History(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append history: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("append history: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("append history: sync: %w", err)
	}
	return nil
}

// LoadHistory reads every transaction recorded for root, oldest first. A line torn by a crash
// (the last one, unsynced) is skipped.
func LoadHistory(root layout.Root) ([]HistoryEntry, error) {
	f, err := os.Open(root.History())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer f.Close()
	var out []HistoryEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e HistoryEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}
