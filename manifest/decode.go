package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// A manifest is the signed part of a package, so it is read more strictly than encoding/json reads
// on its own: that decoder matches keys case-insensitively, lets a repeated key overwrite the
// first, accepts null for anything, drops invalid UTF-8 silently and reports a type error without
// saying which array element it was in. Two readers could then disagree about what was signed.
// decoder walks the token stream instead and fills the value by reflection, so that every key
// must match a field exactly, appears once, and every error carries the JSON path of the field.
type decoder struct {
	data []byte
	dec  *json.Decoder
	// template lets the empty string stand for an unset file version or date, the fields that
	// hotfix pack fills in from the payload.
	template bool
}

var (
	timeType        = reflect.TypeFor[time.Time]()
	fileVersionType = reflect.TypeFor[FileVersion]()
)

// decodeStrict decodes data, which must hold exactly one JSON object, into v (a pointer to a
// struct).
func decodeStrict(data []byte, v any, template bool) error {
	if len(data) == 0 {
		return &FieldError{Problem: "is empty"}
	}
	if len(data) > MaxSize {
		return &FieldError{Problem: fmt.Sprintf("is %d bytes, more than the limit of %d", len(data), MaxSize)}
	}
	if !utf8.Valid(data) {
		off := invalidUTF8Offset(data)
		line, col := position(data, off)
		return &FieldError{Problem: fmt.Sprintf("is not valid UTF-8 at line %d, column %d", line, col)}
	}
	d := &decoder{data: data, dec: json.NewDecoder(bytes.NewReader(data)), template: template}
	d.dec.UseNumber()
	rv := reflect.ValueOf(v).Elem()
	tok, err := d.dec.Token()
	if err != nil {
		return d.syntax("", err)
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '{' {
		return &FieldError{Problem: "must be a JSON object, got " + describe(tok)}
	}
	if err := d.object("", rv); err != nil {
		return err
	}
	end := int(d.dec.InputOffset())
	if _, err := d.dec.Token(); err != io.EOF {
		for end < len(data) && strings.IndexByte(" \t\r\n", data[end]) >= 0 {
			end++
		}
		line, col := position(data, end)
		return &FieldError{Problem: fmt.Sprintf("has data after the end of the JSON object at line %d, column %d", line, col)}
	}
	return nil
}

// value reads the next JSON value into v.
func (d *decoder) value(path string, v reflect.Value) error {
	tok, err := d.dec.Token()
	if err != nil {
		return d.syntax(path, err)
	}
	if tok == nil {
		return &FieldError{Field: path, Problem: "must not be null"}
	}
	return d.fromToken(path, tok, v)
}

// fromToken stores the value that starts with tok into v.
func (d *decoder) fromToken(path string, tok json.Token, v reflect.Value) error {
	switch v.Type() {
	case timeType:
		s, ok := tok.(string)
		if !ok {
			return &FieldError{Field: path, Problem: "must be a UTC date and time string like \"2006-02-14T03:36:00Z\", got " + describe(tok)}
		}
		if s == "" && d.template {
			return nil
		}
		t, err := parseUTC(s)
		if err != nil {
			return &FieldError{Field: path, Problem: err.Error()}
		}
		v.Set(reflect.ValueOf(t))
		return nil
	case fileVersionType:
		s, ok := tok.(string)
		if !ok {
			return &FieldError{Field: path, Problem: "must be a four-part version string like \"6.5.7651.45\", got " + describe(tok)}
		}
		if s == "" && d.template {
			return nil
		}
		fv, err := ParseFileVersion(s)
		if err != nil {
			return &FieldError{Field: path, Problem: err.Error()}
		}
		v.Set(reflect.ValueOf(fv))
		return nil
	}

	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.fromToken(path, tok, p.Elem()); err != nil {
			return err
		}
		if d.template && p.Elem().IsZero() {
			return nil // an optional field a template leaves empty stays unset
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		if delim, ok := tok.(json.Delim); !ok || delim != '{' {
			return &FieldError{Field: path, Problem: "must be an object, got " + describe(tok)}
		}
		return d.object(path, v)
	case reflect.Slice:
		if delim, ok := tok.(json.Delim); !ok || delim != '[' {
			return &FieldError{Field: path, Problem: "must be an array, got " + describe(tok)}
		}
		return d.array(path, v)
	case reflect.String:
		s, ok := tok.(string)
		if !ok {
			return &FieldError{Field: path, Problem: "must be a string, got " + describe(tok)}
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		b, ok := tok.(bool)
		if !ok {
			return &FieldError{Field: path, Problem: "must be true or false, got " + describe(tok)}
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			return &FieldError{Field: path, Problem: "must be a whole number, got " + describe(tok)}
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || v.OverflowInt(i) {
			return &FieldError{Field: path, Problem: fmt.Sprintf("must be a whole number in range, got %s", n)}
		}
		v.SetInt(i)
		return nil
	case reflect.Uint32:
		n, ok := tok.(json.Number)
		if !ok {
			return &FieldError{Field: path, Problem: "must be a whole number, got " + describe(tok)}
		}
		u, err := strconv.ParseUint(string(n), 10, 32)
		if err != nil {
			return &FieldError{Field: path, Problem: fmt.Sprintf("must be a whole number from 0 to %d, got %s", uint32(1<<32-1), n)}
		}
		v.SetUint(u)
		return nil
	}
	// Only reachable if a field of a type this decoder does not know is added to Manifest.
	return &FieldError{Field: path, Problem: fmt.Sprintf("has unsupported Go type %s", v.Type())}
}

// object reads the members of an object whose '{' was already read into the struct v.
func (d *decoder) object(path string, v reflect.Value) error {
	fields := jsonFields(v.Type())
	seen := make(map[string]bool)
	for d.dec.More() {
		tok, err := d.dec.Token()
		if err != nil {
			return d.syntax(path, err)
		}
		key, ok := tok.(string)
		if !ok { // json.Decoder reports this itself; kept so a change there cannot slip through
			return &FieldError{Field: path, Problem: "has a key that is not a string"}
		}
		child := join(path, key)
		idx, ok := fields[key]
		if !ok {
			problem := "is not a known field"
			for name := range fields {
				if strings.EqualFold(name, key) {
					problem += fmt.Sprintf(" (field names are case-sensitive: did you mean %q?)", name)
					break
				}
			}
			return &FieldError{Field: child, Problem: problem}
		}
		if seen[key] {
			return &FieldError{Field: child, Problem: "appears more than once"}
		}
		seen[key] = true
		if err := d.value(child, v.FieldByIndex(idx)); err != nil {
			return err
		}
	}
	if _, err := d.dec.Token(); err != nil { // the closing '}'
		return d.syntax(path, err)
	}
	return nil
}

// array reads the elements of an array whose '[' was already read into the slice v. An empty
// array leaves v nil, so that it encodes the same way as an absent field.
func (d *decoder) array(path string, v reflect.Value) error {
	elem := v.Type().Elem()
	s := reflect.MakeSlice(v.Type(), 0, 0)
	for i := 0; d.dec.More(); i++ {
		e := reflect.New(elem).Elem()
		if err := d.value(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
			return err
		}
		s = reflect.Append(s, e)
	}
	if _, err := d.dec.Token(); err != nil { // the closing ']'
		return d.syntax(path, err)
	}
	if s.Len() > 0 {
		v.Set(s)
	}
	return nil
}

// syntax turns an error from the JSON tokenizer into one that says where it happened.
func (d *decoder) syntax(path string, err error) error {
	off := int(d.dec.InputOffset())
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = int(se.Offset)
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		off = len(d.data)
		err = errors.New("unexpected end of input")
	}
	line, col := position(d.data, off)
	where := ""
	if path != "" {
		where = " in " + path
	}
	return &FieldError{Problem: fmt.Sprintf("is not valid JSON at line %d, column %d%s: %v", line, col, where, err)}
}

// jsonFields maps the JSON names of a struct's fields to their indexes.
func jsonFields(t reflect.Type) map[string][]int {
	m := make(map[string][]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Index
	}
	return m
}

// parseUTC parses an RFC 3339 date and time that must be in UTC, written with the zone "Z", to
// the whole second. Anything else would make the same instant print differently on two hosts.
func parseUTC(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 UTC date and time like \"2006-02-14T03:36:00Z\"", s)
	}
	if !strings.HasSuffix(s, "Z") {
		return time.Time{}, fmt.Errorf("%q is not in UTC: write the time in UTC with the zone \"Z\"", s)
	}
	if strings.Contains(s, ".") {
		return time.Time{}, fmt.Errorf("%q has fractions of a second: give whole seconds", s)
	}
	return t, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe names the kind of JSON value that starts with tok, for "got ..." in messages.
func describe(tok json.Token) string {
	switch t := tok.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(t)
	case json.Number:
		return "the number " + string(t)
	case string:
		if len(t) > 40 {
			return fmt.Sprintf("the string %q...", t[:40])
		}
		return fmt.Sprintf("the string %q", t)
	case json.Delim:
		switch t {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
	}
	return fmt.Sprintf("%v", tok)
}

// position converts a byte offset into a 1-based line and column (in bytes).
func position(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = off - bytes.LastIndexByte(before, '\n')
	return line, col
}

func invalidUTF8Offset(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(data)
}
