package manifest

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse and ParseTemplate never panic, that a finished manifest reads the
// same as a template, and that whatever Parse accepts survives the trip through the canonical
// form unchanged: Marshal then Parse gives an equal manifest, and Marshal of that gives the same
// bytes again. A manifest whose meaning could shift between signing and reading would let a
// signature cover something other than what gets installed.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"kb910618.json", "sp2.json", "template.json"} {
		f.Add(readTestdata(f, name))
	}
	kb := string(readTestdata(f, "kb910618.json"))
	for _, edit := range [][2]string{
		{`"id":`, `"ID":`},
		{`"id": "KB910618",`, `"id": "KB910618", "id": "KB1",`},
		{`"date": "2006-02-14T03:36:00Z"`, `"date": "2006-02-14 03:36"`},
		{`"date": "2006-02-14T03:36:00Z"`, `"date": "2006-02-14T03:36:00+00:00"`},
		{`"date": "2006-02-14T03:36:00Z"`, `"date": "2006-02-14T03:36:00.000Z"`},
		{`"path": "bin/msgtrack"`, `"path": "bin/../../etc/passwd"`},
		{`"path": "bin/msgtrack"`, `"path": "bin/msg\u0000track"`},
		{`"size": 99040`, `"size": 9.904e4`},
		{`"size": 99040`, `"size": -0`},
		{`"schema": 1`, `"schema": 1e0`},
		{"heavy load", `heavy \u2028load`},
		{"heavy load", `heavy \ud800 load`},
		{"heavy load", `heavy <&> load`},
		{`"tracking"`, `"tracking", null`},
		{`"KB900001"`, `"KB900001", "kb900001"`},
		{`"supersedes": [`, `"supersedes": [],"x": [`},
		{`"expires": "2036-03-14T00:00:00Z"`, `"expires": null`},
		{`"version": "6.5.7651.45"`, `"version": "6.5.7651.045"`},
	} {
		f.Add([]byte(strings.Replace(kb, edit[0], edit[1], 1)))
	}
	f.Add([]byte(kb + "{}"))
	f.Add([]byte(kb[:len(kb)/2]))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[{"schema":1}]`))
	f.Add([]byte(`{"files":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		tmpl, terr := ParseTemplate(data)
		if err == nil {
			// A finished manifest is also a valid template, and reads the same as one.
			if terr != nil {
				t.Fatalf("Parse accepted what ParseTemplate refused: %v", terr)
			}
			if !reflect.DeepEqual(m, tmpl) {
				t.Fatalf("Parse and ParseTemplate disagree:\n%#v\n%#v", m, tmpl)
			}
		}
		if err != nil {
			if m != nil {
				t.Fatalf("Parse returned a manifest and an error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "manifest") {
				t.Fatalf("error does not say it is about the manifest: %v", err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed manifest: %v", err)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of the canonical form: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the manifest:\n got %#v\nwant %#v", m2, m)
		}
		out2, err := m2.Marshal()
		if err != nil {
			t.Fatalf("second Marshal: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("Marshal is not idempotent:\n%s\n%s", out, out2)
		}
	})
}

// FuzzParseFileVersion checks that a version that parses prints back as the same string (the
// parser admits one spelling per version), and that what it rejects it rejects without panicking.
func FuzzParseFileVersion(f *testing.F) {
	for _, s := range []string{"6.5.7651.45", "0.0.0.0", "4294967295.4294967295.4294967295.4294967295",
		"4294967296.0.0.0", "06.5.7651.45", "6.5.7651", "6..7651.45", "+6.5.7651.45", "6.5.7651.45 ", "٦.5.7651.45"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseFileVersion(s)
		if err != nil {
			if v != (FileVersion{}) {
				t.Fatalf("ParseFileVersion(%q) returned %v with error %v", s, v, err)
			}
			return
		}
		if v.String() != s {
			t.Fatalf("ParseFileVersion(%q).String() = %q", s, v.String())
		}
		v2, err := ParseFileVersion(v.String())
		if err != nil || v2 != v || v2.Compare(v) != 0 {
			t.Fatalf("reparse of %q = %v, %v", v.String(), v2, err)
		}
	})
}
