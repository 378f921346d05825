// Package flagfile takes a command's settings from a JSON file as well as from its command line:
// {"listen": "127.0.0.1:2525", "allow": ["10.0.0.0/8"], "workers": 8}. Each key names a flag and
// its value goes through the flag's own parsing, so a setting means exactly what the flag of the
// same name means, and the command line wins over the file. relayd reads ROOT/relayd.json this
// way.
package flagfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// Apply sets each flag named in the JSON object in the file at path to the value given there,
// unless the command line set it already. A missing file sets nothing. A key that names no flag,
// or one of except, is an error, and so is a value of a type that cannot be a flag's.
func Apply(path string, flags *pflag.FlagSet, except ...string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	for key, v := range m {
		fl := flags.Lookup(key)
		if fl == nil || slices.Contains(except, key) {
			return fmt.Errorf("config %s: unknown setting %q", path, key)
		}
		if fl.Changed {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case float64:
			s = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			s = strconv.FormatBool(v)
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		default:
			return fmt.Errorf("config %s: setting %q: unsupported value %v", path, key, v)
		}
		if err := fl.Value.Set(s); err != nil {
			return fmt.Errorf("config %s: setting %q: %w", path, key, err)
		}
	}
	return nil
}
