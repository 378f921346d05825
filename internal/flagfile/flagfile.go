// Package flagfile takes a command's settings from a JSON file as well as from its command line:
// {"listen": "127.0.0.1:2525", "allow": ["10.0.0.0/8"], "workers": 8}. Each key names a flag and
// its value goes through the flag's own parsing, so a setting means exactly what the flag of the
// same name means, and the command line wins over the file. relayd reads ROOT/relayd.json this
// way.
//
// A flag set from the file carries an annotation naming the file, so that a command validating
// its settings afterwards can name the file's key rather than a flag the operator never typed
// (Name). Errors in the file's content are *Error, told apart from a file that cannot be read:
// the first is the operator's mistake (a usage error), the second a problem of the machine.
package flagfile

import (
	"bytes"
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

// annotation marks a flag whose value came from the file; its value is the file's path.
const annotation = "flagfile"

// Error is a mistake in the file's content: its syntax, or one setting.
type Error struct {
	Path string
	Key  string // the setting, "" for the file as a whole
	Line int    // 1-based; 0 when unknown
	Col  int
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %q", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Apply sets each flag named in the JSON object in the file at path to the value given there,
// unless the command line set it already. A missing file sets nothing. A key that names no flag,
// or one of except, is an error, and so is a value of a type the flag does not take.
func Apply(path string, flags *pflag.FlagSet, except ...string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return syntaxError(path, data, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		fl := flags.Lookup(key)
		if fl == nil || slices.Contains(except, key) {
			return &Error{Path: path, Key: key, Msg: "unknown setting"}
		}
		if fl.Changed {
			continue
		}
		s, err := text(fl, m[key])
		if err == nil {
			err = fl.Value.Set(s)
			if err != nil {
				err = errors.New(want(fl))
			}
		}
		if err != nil {
			line, col := position(data, bytes.Index(data, []byte(strconv.Quote(key))))
			return &Error{Path: path, Key: key, Line: line, Col: col, Msg: err.Error()}
		}
		flags.SetAnnotation(key, annotation, []string{path})
	}
	return nil
}

// text returns the flag's textual form of the JSON value v, refusing a value of the wrong kind:
// "listen": 4103 is a number where an address is wanted, not the address ":4103".
func text(fl *pflag.Flag, v json.RawMessage) (string, error) {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return "", err
	}
	typ := fl.Value.Type()
	switch x := x.(type) {
	case string:
		if typ == "int" || typ == "int64" || typ == "uint" || typ == "bool" {
			return "", errors.New(want(fl))
		}
		return x, nil
	case float64:
		if typ != "int" && typ != "int64" && typ != "uint" && typ != "float64" {
			return "", errors.New(want(fl))
		}
		return string(v), nil
	case bool:
		if typ != "bool" {
			return "", errors.New(want(fl))
		}
		return strconv.FormatBool(x), nil
	case []any:
		if typ != "stringSlice" {
			return "", errors.New(want(fl))
		}
		parts := make([]string, len(x))
		for i, p := range x {
			s, ok := p.(string)
			if !ok {
				return "", errors.New(want(fl))
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New(want(fl))
}

// want describes the value a flag takes, for an error message.
func want(fl *pflag.Flag) string {
	switch fl.Value.Type() {
	case "int", "int64", "uint":
		return "want a whole number"
	case "float64":
		return "want a number"
	case "bool":
		return "want true or false"
	case "duration":
		return `want a duration as a string, such as "90s" or "5m"`
	case "stringSlice":
		return "want a list of strings"
	}
	return "want a string"
}

// syntaxError reports where the file stops being a JSON object, without the decoder's internals.
func syntaxError(path string, data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, int(syn.Offset)-1)
		return &Error{Path: path, Line: line, Col: col, Msg: "not valid JSON: " + syn.Error()}
	case errors.As(err, &typ):
		return &Error{Path: path, Msg: "want a JSON object of settings, such as {\"workers\": 8}"}
	}
	return &Error{Path: path, Msg: "not valid JSON: " + err.Error()}
}

// position returns the 1-based line and column of the byte at offset.
func position(data []byte, offset int) (line, col int) {
	if offset < 0 {
		return 0, 0
	}
	offset = min(offset, len(data))
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = offset - bytes.LastIndexByte(before, '\n')
	return line, col
}

// Name names the setting of the flag called name for an error message: `relayd.json "workers"`
// when the file set it, `--workers` otherwise.
func Name(flags *pflag.FlagSet, name string) string {
	if fl := flags.Lookup(name); fl != nil {
		if p := fl.Annotations[annotation]; len(p) > 0 {
			return fmt.Sprintf("%s %q", p[0], name)
		}
	}
	return "--" + name
}
