package trackhost

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sort"
)

// slogWriter receives go-plugin's hclog output as JSON lines (one per Write, as hclog writes
// them) and re-emits each entry on relayd's slog logger at its own level, so that a plugin's
// warning is a warning in relayd's log and not an info line with "[WARN]" in its text.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte{'\n'}) {
		var e map[string]any
		if json.Unmarshal(line, &e) != nil {
			w.log.Info(string(line))
			continue
		}
		level := slog.LevelInfo
		switch e["@level"] {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		msg, _ := e["@message"].(string)
		keys := make([]string, 0, len(e))
		for k := range e {
			switch k {
			case "@level", "@message", "@timestamp", "@caller", "timestamp":
			default:
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		attrs := make([]any, 0, 2*len(keys))
		for _, k := range keys {
			attrs = append(attrs, k, e[k])
		}
		w.log.Log(context.Background(), level, msg, attrs...)
	}
	return len(b), nil
}
