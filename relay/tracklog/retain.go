package tracklog

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Prune removes the day files in dir whose whole day lies before now minus window, and returns
// the names it removed. The current day's file is never removed, whatever the window, since the
// plugin appends to it. A missing directory has nothing to prune.
func Prune(dir string, now time.Time, window time.Duration) ([]string, error) {
	names, err := Files(os.DirFS(dir), Query{})
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-window)
	today := truncDay(now)
	var removed []string
	for _, name := range names {
		day, ok := Day(name)
		if !ok || !day.Before(today) || day.AddDate(0, 0, 1).After(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
			return removed, fmt.Errorf("remove old tracking log: %w", err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// Retain prunes dir to window at once and then every interval until ctx is done. A window of 0
// keeps every file.
func Retain(ctx context.Context, dir string, window, interval time.Duration, log *slog.Logger) {
	if window <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		removed, err := Prune(dir, time.Now(), window)
		if err != nil {
			log.Error("tracking log retention", "err", err)
		}
		if len(removed) > 0 {
			log.Info("removed tracking logs older than the retention window", "window", window.String(),
				"files", len(removed), "oldest", removed[0], "newest", removed[len(removed)-1])
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
