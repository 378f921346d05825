package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fieldsOf lists the Field of every FieldError in err, which may be joined.
func fieldsOf(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		var fe *FieldError
		if errors.As(err, &fe) && fe == err {
			out = append(out, fe.Field)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if e := errors.Unwrap(err); e != nil {
			walk(e)
		}
	}
	walk(err)
	return out
}

func TestParseValidRoundTrip(t *testing.T) {
	for _, name := range []string{"kb910618.json", "sp2.json"} {
		t.Run(name, func(t *testing.T) {
			data := readTestdata(t, name)
			m, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(out, data) {
				t.Errorf("Marshal is not byte-identical to the input:\n got %s\nwant %s", out, data)
			}
			m2, err := Parse(out)
			if err != nil {
				t.Fatalf("Parse(Marshal): %v", err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Errorf("Parse(Marshal(m)) = %+v, want %+v", m2, m)
			}
		})
	}
}

func TestParseKB910618Fields(t *testing.T) {
	m, err := Parse(readTestdata(t, "kb910618.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "KB910618" || m.Kind != KindHotfix || m.Requires.ServicePack != 2 || m.Requires.ProductVersion != ">= 6.5.7638" {
		t.Errorf("identity or prerequisites wrong: %+v", m)
	}
	if len(m.Files) != 1 {
		t.Fatalf("got %d files, want 1", len(m.Files))
	}
	f := m.Files[0]
	if want := MustParseFileVersion("6.5.7651.45"); f.Version != want {
		t.Errorf("version = %v, want %v", f.Version, want)
	}
	if f.Size != 99040 {
		t.Errorf("size = %d, want 99040", f.Size)
	}
	if want := time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC); !f.Date.Equal(want) || f.Date.Location() != time.UTC {
		t.Errorf("date = %v, want %v in UTC", f.Date, want)
	}
	if f.Mode != 0o755 || f.Platform != "linux/386" || f.ComponentName() != "msgtrack" {
		t.Errorf("file row wrong: %+v", f)
	}
	if !reflect.DeepEqual(m.Restart.Services, []string{"tracking"}) || m.Restart.Reboot {
		t.Errorf("restart = %+v", m.Restart)
	}
	if m.Expires == nil || !m.Expires.Equal(time.Date(2036, 3, 14, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expires = %v", m.Expires)
	}
	if m.Expired(time.Date(2036, 3, 13, 0, 0, 0, 0, time.UTC)) || !m.Expired(time.Date(2036, 3, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Expired does not follow expires %v", m.Expires)
	}
	d, err := m.ReleasedDate()
	if err != nil || !d.Equal(time.Date(2006, 3, 14, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("ReleasedDate = %v, %v", d, err)
	}
}

// TestParseMalformed edits a valid manifest in one place each and checks that Parse refuses it
// with a message that names the field and what is wrong with it.
func TestParseMalformed(t *testing.T) {
	kb := string(readTestdata(t, "kb910618.json"))
	sp := string(readTestdata(t, "sp2.json"))
	noFiles := kb[:strings.Index(kb, `"files": [`)] + "\"files\": [],\n  " + kb[strings.Index(kb, `"restart": {`):]
	tests := []struct {
		name     string
		base     string // kb or sp; empty means doc is the whole document
		old, new string // old must occur exactly once in base
		doc      string
		field    string // Field of a FieldError the error must hold
		want     string // a distinctive substring of the message
	}{
		{name: "empty", doc: "", field: "", want: "manifest is empty"},
		{name: "whitespace only", doc: " \n", field: "", want: "unexpected end of input"},
		{name: "not an object", doc: "[]", field: "", want: "must be a JSON object, got an array"},
		{name: "syntax error", base: kb, old: `"schema": 1,`, new: `"schema": 1,,`, field: "", want: "is not valid JSON at line 2, column 15"},
		{name: "truncated", base: kb, old: "  ]\n}\n", new: "  ]\n", field: "", want: "unexpected end of input"},
		{name: "trailing data", base: kb, old: "  ]\n}\n", new: "  ]\n}\n{}", field: "", want: "has data after the end of the JSON object at line 38, column 1"},
		{name: "invalid UTF-8", base: kb, old: "heavy load", new: "heavy \xff load", field: "", want: "is not valid UTF-8 at line 4, column 62"},
		{name: "unknown field", base: kb, old: `"kind": "hotfix",`, new: `"kind": "hotfix", "colour": "red",`, field: "colour", want: "colour: is not a known field"},
		{name: "unknown nested field", base: kb, old: `"mode": 493`, new: `"mode": 493, "owner": "root"`, field: "files[0].owner", want: "files[0].owner: is not a known field"},
		{name: "key in wrong case", base: kb, old: `"id":`, new: `"ID":`, field: "ID", want: `did you mean "id"?`},
		{name: "duplicate key", base: kb, old: `"id": "KB910618",`, new: `"id": "KB910618", "id": "KB1",`, field: "id", want: "id: appears more than once"},
		{name: "null", base: kb, old: `"platform": "linux/386"`, new: `"platform": null`, field: "files[0].platform", want: "files[0].platform: must not be null"},
		{name: "schema 2", base: kb, old: `"schema": 1`, new: `"schema": 2`, field: "schema", want: "schema: must be 1, got 2"},
		{name: "schema as string", base: kb, old: `"schema": 1`, new: `"schema": "1"`, field: "schema", want: `schema: must be a whole number, got the string "1"`},
		{name: "schema as fraction", base: kb, old: `"schema": 1`, new: `"schema": 1.0`, field: "schema", want: "schema: must be a whole number in range, got 1.0"},
		{name: "id starts with digit", base: kb, old: `"id": "KB910618"`, new: `"id": "910618"`, field: "id", want: `id: "910618" is not a package id`},
		{name: "id empty", base: kb, old: `"id": "KB910618"`, new: `"id": ""`, field: "id", want: "id: is required"},
		{name: "title two lines", base: kb, old: "heavy load", new: `heavy\nload`, field: "title", want: "title: must be one line"},
		{name: "title empty", base: sp, old: `"title": "relayfix service pack 2"`, new: `"title": ""`, field: "title", want: "title: is required"},
		{name: "title padded", base: sp, old: `"title": "relayfix service pack 2"`, new: `"title": " relayfix"`, field: "title", want: "starts or ends with white space"},
		{name: "kind unknown", base: kb, old: `"kind": "hotfix"`, new: `"kind": "patch"`, field: "kind", want: `kind: "patch" is not "servicepack" or "hotfix"`},
		{name: "released not padded", base: kb, old: `"released": "2006-03-14"`, new: `"released": "2006-3-14"`, field: "released", want: `released: "2006-3-14" is not a date like 2006-03-14`},
		{name: "released impossible day", base: kb, old: `"released": "2006-03-14"`, new: `"released": "2006-02-30"`, field: "released", want: `released: "2006-02-30" is not a date`},
		{name: "expires before released", base: kb, old: `"expires": "2036-03-14T00:00:00Z"`, new: `"expires": "2006-03-01T00:00:00Z"`, field: "expires", want: "expires: 2006-03-01T00:00:00Z is not after the release date 2006-03-14"},
		{name: "expires not UTC", base: kb, old: `"expires": "2036-03-14T00:00:00Z"`, new: `"expires": "2036-03-14T00:00:00+01:00"`, field: "expires", want: `expires: "2036-03-14T00:00:00+01:00" is not in UTC`},
		{name: "product name missing", base: kb, old: `"name": "relayfix"`, new: `"name": ""`, field: "product.name", want: "product.name: is required"},
		{name: "hotfix sets product version", base: kb, old: `"name": "relayfix"`, new: `"name": "relayfix", "version": "6.5.7651"`, field: "product.version", want: "product.version: is set, but only a service pack sets the product version"},
		{name: "bad constraint", base: kb, old: `">= 6.5.7638"`, new: `">= six"`, field: "requires.product_version", want: `requires.product_version: ">= six" is not a version constraint`},
		{name: "negative required level", base: kb, old: `"service_pack": 2`, new: `"service_pack": -1`, field: "requires.service_pack", want: "requires.service_pack: -1 is not a service-pack level"},
		{name: "hotfix without prerequisite", base: kb, old: "\"product_version\": \">= 6.5.7638\",\n    \"service_pack\": 2\n", new: "", field: "requires", want: "requires: a hotfix must name at least one prerequisite"},
		{name: "service pack version not semver", base: sp, old: `"version": "6.5.7638"`, new: `"version": "6.5"`, field: "product.version", want: `product.version: "6.5" is not a semantic version`},
		{name: "service pack without version", base: sp, old: `"version": "6.5.7638",`, new: ``, field: "product.version", want: "product.version: is required for a service pack"},
		{name: "service pack negative level", base: sp, old: `"service_pack": 2`, new: `"service_pack": -2`, field: "product.service_pack", want: "product.service_pack: -2 is not a service-pack level"},
		{name: "files empty", doc: noFiles, field: "files", want: "files: must list at least one file"},
		{name: "files not an array", base: kb, old: `"files": [`, new: `"files": 7, "files2": [`, field: "files", want: "files: must be an array, got the number 7"},
		{name: "name with slash", base: kb, old: `"name": "msgtrack"`, new: `"name": "bin/msgtrack"`, field: "files[0].name", want: `files[0].name: "bin/msgtrack" is not a plain file name`},
		{name: "path absolute", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": "/bin/msgtrack"`, field: "files[0].path", want: `files[0].path: "/bin/msgtrack" is absolute`},
		{name: "path escapes root", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": "../bin/msgtrack"`, field: "files[0].path", want: `files[0].path: "../bin/msgtrack" has a ".." segment`},
		{name: "path dot-dot inside", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": "bin/../msgtrack"`, field: "files[0].path", want: `"bin/../msgtrack" has a ".." segment`},
		{name: "path not clean", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": "bin//msgtrack"`, field: "files[0].path", want: `files[0].path: "bin//msgtrack" is not clean (it should read "bin/msgtrack")`},
		{name: "path backslash", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": "bin\\msgtrack"`, field: "files[0].path", want: `files[0].path: "bin\\msgtrack" contains a backslash`},
		{name: "path NUL", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": "bin/msg\u0000track"`, field: "files[0].path", want: "files[0].path: \"bin/msg\\x00track\" contains a NUL byte"},
		{name: "path empty", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": ""`, field: "files[0].path", want: "files[0].path: is required"},
		{name: "path drive letter", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": "C:/bin/msgtrack"`, field: "files[0].path", want: "starts with a drive letter"},
		{name: "path in updater records", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": "hotfix/installed.json"`, field: "files[0].path", want: `files[0].path: "hotfix/installed.json" is inside hotfix/`},
		{name: "path is product record", base: kb, old: `"path": "bin/msgtrack"`, new: `"path": "Product.json"`, field: "files[0].path", want: "is the product record"},
		{name: "duplicate path", base: sp, old: `"path": "bin/relayd"`, new: `"path": "bin/msgtrack"`, field: "files[1].path", want: `files[1].path: "bin/msgtrack" is also the path of files[0]`},
		{name: "path differs in case", base: sp, old: `"path": "bin/relayd"`, new: `"path": "bin/MsgTrack"`, field: "files[1].path", want: `files[1].path: "bin/msgtrack" differs only in case from files[0].path "bin/MsgTrack"`},
		{name: "path is file and directory", base: sp, old: `"path": "bin/relayd"`, new: `"path": "bin/msgtrack/relayd"`, field: "files[1].path", want: `files[1].path: "bin/msgtrack" is a file, but files[0].path "bin/msgtrack/relayd" puts a file inside it`},
		{name: "version three parts", base: kb, old: `"version": "6.5.7651.45"`, new: `"version": "6.5.7651"`, field: "files[0].version", want: `files[0].version: file version "6.5.7651": want four parts`},
		{name: "version leading zero", base: kb, old: `"version": "6.5.7651.45"`, new: `"version": "6.05.7651.45"`, field: "files[0].version", want: "part 2 has a leading zero"},
		{name: "version as number", base: kb, old: `"version": "6.5.7651.45"`, new: `"version": 6.5`, field: "files[0].version", want: "files[0].version: must be a four-part version string like \"6.5.7651.45\", got the number 6.5"},
		{name: "version zero", base: kb, old: `"version": "6.5.7651.45"`, new: `"version": "0.0.0.0"`, field: "files[0].version", want: "files[0].version: is required: 0.0.0.0 is the version of an unstamped build"},
		{name: "size zero", base: kb, old: `"size": 99040`, new: `"size": 0`, field: "files[0].size", want: "files[0].size: is required and must be more than 0 bytes"},
		{name: "size negative", base: kb, old: `"size": 99040`, new: `"size": -99040`, field: "files[0].size", want: "files[0].size: -99040 is negative"},
		{name: "size too large", base: kb, old: `"size": 99040`, new: `"size": 2147483648`, field: "files[0].size", want: "files[0].size: 2147483648 bytes is more than the limit"},
		{name: "size fraction", base: kb, old: `"size": 99040`, new: `"size": 99040.5`, field: "files[0].size", want: "files[0].size: must be a whole number in range, got 99040.5"},
		{name: "size overflows", base: kb, old: `"size": 99040`, new: `"size": 99999999999999999999`, field: "files[0].size", want: "got 99999999999999999999"},
		{name: "date as the KB prints it", base: kb, old: `"date": "2006-02-14T03:36:00Z"`, new: `"date": "2006-02-14 03:36"`, field: "files[0].date", want: `files[0].date: "2006-02-14 03:36" is not an RFC 3339 UTC date and time like "2006-02-14T03:36:00Z"`},
		{name: "date with offset", base: kb, old: `"date": "2006-02-14T03:36:00Z"`, new: `"date": "2006-02-14T04:36:00+01:00"`, field: "files[0].date", want: `files[0].date: "2006-02-14T04:36:00+01:00" is not in UTC`},
		{name: "date with zero offset", base: kb, old: `"date": "2006-02-14T03:36:00Z"`, new: `"date": "2006-02-14T03:36:00+00:00"`, field: "files[0].date", want: "is not in UTC"},
		{name: "date with fraction", base: kb, old: `"date": "2006-02-14T03:36:00Z"`, new: `"date": "2006-02-14T03:36:00.5Z"`, field: "files[0].date", want: `files[0].date: "2006-02-14T03:36:00.5Z" has fractions of a second`},
		{name: "date zero", base: kb, old: `"date": "2006-02-14T03:36:00Z"`, new: `"date": "0001-01-01T00:00:00Z"`, field: "files[0].date", want: "files[0].date: is required"},
		{name: "date before 1980", base: kb, old: `"date": "2006-02-14T03:36:00Z"`, new: `"date": "1979-12-31T23:59:59Z"`, field: "files[0].date", want: "files[0].date: 1979-12-31T23:59:59Z is before 1980"},
		{name: "platform without arch", base: kb, old: `"platform": "linux/386"`, new: `"platform": "linux"`, field: "files[0].platform", want: `files[0].platform: "linux" is not GOOS/GOARCH`},
		{name: "platform unknown OS", base: kb, old: `"platform": "linux/386"`, new: `"platform": "plan9/386"`, field: "files[0].platform", want: `unknown operating system "plan9"`},
		{name: "platform with extra part", base: kb, old: `"platform": "linux/386"`, new: `"platform": "linux/386/v2"`, field: "files[0].platform", want: `"linux/386/v2" is not GOOS/GOARCH`},
		{name: "platform any in wrong case", base: kb, old: `"platform": "linux/386"`, new: `"platform": "ANY"`, field: "files[0].platform", want: `"ANY" is not GOOS/GOARCH, like linux/amd64, or "any"`},
		{name: "platform unknown arch", base: kb, old: `"platform": "linux/386"`, new: `"platform": "linux/x86"`, field: "files[0].platform", want: `unknown architecture "x86"`},
		{name: "sha256 upper case", base: sp, old: `"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"`, new: `"FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210"`, field: "files[1].sha256", want: `files[1].sha256: "FEDCBA98`},
		{name: "sha256 short", base: sp, old: `"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"`, new: `"fedcba98"`, field: "files[1].sha256", want: `files[1].sha256: "fedcba98" is not 64 lower-case hex digits`},
		{name: "mode setuid", base: kb, old: `"mode": 493`, new: `"mode": 2541`, field: "files[0].mode", want: "files[0].mode: 04755 has bits other than the permission bits"},
		{name: "mode negative", base: kb, old: `"mode": 493`, new: `"mode": -1`, field: "files[0].mode", want: "files[0].mode: must be a whole number from 0 to 4294967295"},
		{name: "component with space", base: kb, old: `"component": "msgtrack"`, new: `"component": "msg track"`, field: "files[0].component", want: `files[0].component: "msg track" is not a component name`},
		{name: "service upper case", base: kb, old: `"tracking"`, new: `"Tracking"`, field: "restart.services[0]", want: `restart.services[0]: "Tracking" is not a service name`},
		{name: "service unknown", base: kb, old: `"tracking"`, new: `"trackng"`, field: "restart.services[0]", want: `restart.services[0]: "trackng" is not a service relayfix can restart (known: tracking, relay)`},
		{name: "service relayd", base: kb, old: `"tracking"`, new: `"relayd"`, field: "restart.services[0]", want: `restart.services[0]: "relayd" is not a service relayfix can restart (known: tracking, relay)`},
		{name: "service twice", base: kb, old: `"tracking"`, new: `"tracking", "tracking"`, field: "restart.services[1]", want: `restart.services[1]: "tracking" is already listed as restart.services[0]`},
		{name: "reboot as string", base: kb, old: `"reboot": false`, new: `"reboot": "no"`, field: "restart.reboot", want: `restart.reboot: must be true or false, got the string "no"`},
		{name: "supersedes itself", base: kb, old: `"KB900001"`, new: `"kb910618"`, field: "supersedes[0]", want: `supersedes[0]: "kb910618" is the package's own id`},
		{name: "supersedes twice", base: kb, old: `"KB900001"`, new: `"KB900001", "kb900001"`, field: "supersedes[1]", want: `supersedes[1]: "kb900001" is already listed as supersedes[0]`},
		{name: "supersedes bad id", base: kb, old: `"KB900001"`, new: `"KB 900001"`, field: "supersedes[0]", want: `supersedes[0]: "KB 900001" is not a package id`},
		{name: "supersedes not a list", base: kb, old: "\"supersedes\": [\n    \"KB900001\"\n  ]", new: `"supersedes": "KB900001"`, field: "supersedes", want: `supersedes: must be an array, got the string "KB900001"`},
	}
	seen := make(map[string]string)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc
			if tt.base != "" {
				if n := strings.Count(tt.base, tt.old); n != 1 {
					t.Fatalf("%q occurs %d times in the base manifest, want once", tt.old, n)
				}
				doc = strings.Replace(tt.base, tt.old, tt.new, 1)
			}
			m, err := Parse([]byte(doc))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", m)
			}
			if m != nil {
				t.Errorf("Parse returned a manifest along with the error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
			if fields := fieldsOf(err); !contains(fields, tt.field) {
				t.Errorf("error names fields %q, want one of them to be %q", fields, tt.field)
			}
			if other, dup := seen[err.Error()]; dup {
				t.Errorf("same message as case %q: %v", other, err)
			}
			seen[err.Error()] = tt.name
		})
	}
	if len(tests) < 30 {
		t.Errorf("only %d malformed manifests", len(tests))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestParseTooLarge(t *testing.T) {
	kb := readTestdata(t, "kb910618.json")
	// Pad with white space, which is valid JSON, so only the size can be the problem.
	doc := append(bytes.Repeat([]byte(" "), MaxSize), kb...)
	_, err := Parse(doc)
	if err == nil || !strings.Contains(err.Error(), "more than the limit of 1048576") {
		t.Fatalf("Parse of %d bytes: %v, want a size error", len(doc), err)
	}
	if _, err := Parse(append(bytes.Repeat([]byte(" "), MaxSize-len(kb)), kb...)); err != nil {
		t.Fatalf("Parse of exactly MaxSize bytes: %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	m, err := Parse(readTestdata(t, "sp2.json"))
	if err != nil {
		t.Fatal(err)
	}
	m.ID = ""
	m.Files[0].SHA256 = "x"
	m.Files[1].Platform = "linux/vax"
	err = m.Validate()
	want := []string{"id", "files[0].sha256", "files[1].platform"}
	if got := fieldsOf(err); !reflect.DeepEqual(got, want) {
		t.Errorf("fields = %q, want %q (error %v)", got, want, err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "id" {
		t.Errorf("errors.As finds %+v, want the id problem first", fe)
	}

	// A file table of bad rows is reported up to a limit, then counted.
	m.Files = nil
	for range 30 {
		m.Files = append(m.Files, File{Name: "x", Path: "x"})
	}
	err = m.Validate()
	if n := len(fieldsOf(err)); n != maxProblems {
		t.Errorf("%d problems listed, want %d", n, maxProblems)
	}
	if !strings.Contains(err.Error(), "more problems not listed") {
		t.Errorf("error does not say problems were left out: %v", err)
	}
}

// TestValidateBuiltInGo covers what JSON cannot express but code building a manifest can: times
// in another location or with nanoseconds.
func TestValidateBuiltInGo(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name  string
		edit  func(m *Manifest)
		field string
		want  string
	}{
		{"date in local zone", func(m *Manifest) { m.Files[0].Date = m.Files[0].Date.In(berlin) }, "files[0].date", "files[0].date: 2006-02-14T04:36:00+01:00 is not in UTC"},
		{"date with nanoseconds", func(m *Manifest) { m.Files[0].Date = m.Files[0].Date.Add(time.Millisecond) }, "files[0].date", "files[0].date: 2006-02-14T03:36:00.001Z has fractions of a second"},
		{"expires zero", func(m *Manifest) { m.Expires = new(time.Time) }, "expires", "expires: is required"},
		{"nil manifest", nil, "", "manifest is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m *Manifest
			if tt.edit != nil {
				var err error
				if m, err = Parse(readTestdata(t, "kb910618.json")); err != nil {
					t.Fatal(err)
				}
				tt.edit(m)
			}
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
			if !contains(fieldsOf(err), tt.field) {
				t.Errorf("fields %q, want %q", fieldsOf(err), tt.field)
			}
			if _, merr := m.Marshal(); merr == nil {
				t.Errorf("Marshal encoded an invalid manifest")
			}
		})
	}
}

func TestParseTemplate(t *testing.T) {
	data := readTestdata(t, "template.json")
	if _, err := Parse(data); err == nil {
		t.Fatal("Parse accepted a template with unfilled files")
	} else {
		if !contains(fieldsOf(err), "files[0].version") {
			t.Errorf("Parse error does not name files[0].version: %v", err)
		}
	}
	m, err := ParseTemplate(data)
	if err != nil {
		t.Fatalf("ParseTemplate: %v", err)
	}
	if m.Files[0].Path != "bin/msgtrack" || !m.Files[0].Version.IsZero() || !m.Files[0].Date.IsZero() {
		t.Errorf("template file row = %+v", m.Files[0])
	}
	if _, err := m.Marshal(); err == nil || !strings.Contains(err.Error(), "files[0].sha256: is required") {
		t.Errorf("Marshal of an unfilled template = %v, want a files[0].sha256 error", err)
	}

	// What pack does: fill in what it measured, then the result is a full manifest.
	f := &m.Files[0]
	f.Version = MustParseFileVersion("6.5.7651.45")
	f.Size = 99040
	f.Date = time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)
	f.Platform = "linux/386"
	f.SHA256 = strings.Repeat("ab", 32)
	out, err := m.Marshal()
	if err != nil {
		t.Fatalf("Marshal of the filled template: %v", err)
	}
	m2, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse of the filled template: %v", err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Errorf("round trip changed the manifest:\n got %+v\nwant %+v", m2, m)
	}

	// An optional date a template leaves empty is simply unset.
	withExpiry := strings.Replace(string(data), `"released": "2006-03-14",`, `"released": "2006-03-14", "expires": "",`, 1)
	if withExpiry == string(data) {
		t.Fatal("template has no release date to add an expiry after")
	}
	if mt, err := ParseTemplate([]byte(withExpiry)); err != nil || mt.Expires != nil {
		t.Errorf("ParseTemplate with an empty expiry = %+v, %v; want no expiry", mt, err)
	}

	// A template still checks what it does give, and everything outside the measured fields.
	bad := []struct{ old, new, want string }{
		{`"version": ""`, `"version": "6.5"`, "files[0].version: file version \"6.5\": want four parts"},
		{`"date": ""`, `"date": "2006-02-14 03:36"`, `files[0].date: "2006-02-14 03:36" is not an RFC 3339`},
		{`"date": ""`, `"date": "", "sha256": "ABC"`, `files[0].sha256: "ABC" is not 64 lower-case hex digits`},
		{`"date": ""`, `"date": "", "platform": "linux"`, `files[0].platform: "linux" is not GOOS/GOARCH`},
		{`"date": ""`, `"date": "", "size": -1`, "files[0].size: -1 is negative"},
		{`"path": "bin/msgtrack"`, `"path": "../msgtrack"`, `files[0].path: "../msgtrack" has a ".." segment`},
		{`"kind": "hotfix"`, `"kind": ""`, "kind: is required"},
		{`"date": ""`, `"date": "", "extra": 1`, "files[0].extra: is not a known field"},
	}
	for _, b := range bad {
		doc := strings.Replace(string(data), b.old, b.new, 1)
		if doc == string(data) {
			t.Fatalf("%q not in template", b.old)
		}
		if _, err := ParseTemplate([]byte(doc)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("ParseTemplate with %s = %v, want %q", b.new, err, b.want)
		}
	}
}

func TestMarshalCanonical(t *testing.T) {
	m, err := Parse(readTestdata(t, "kb910618.json"))
	if err != nil {
		t.Fatal(err)
	}
	// HTML-significant characters stay as they are: the signed bytes should read as written.
	m.Title = "Tracking <msgtrack> & delivery race"
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"title": "Tracking <msgtrack> & delivery race",`)) {
		t.Errorf("title escaped or misplaced:\n%s", out)
	}
	if !bytes.HasSuffix(out, []byte("}\n")) || bytes.HasSuffix(out, []byte("\n\n")) {
		t.Errorf("canonical form must end in exactly one newline: %q", out[len(out)-4:])
	}
	again, err := m.Marshal()
	if err != nil || !bytes.Equal(out, again) {
		t.Errorf("Marshal is not deterministic")
	}
	// An empty list is the same as none: both encode without the field.
	m.Supersedes = []string{}
	empty, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(empty, []byte("supersedes")) {
		t.Errorf("empty supersedes encoded:\n%s", empty)
	}
	m2, err := Parse(empty)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Supersedes != nil {
		t.Errorf("Supersedes = %#v after round trip, want nil", m2.Supersedes)
	}
}

// TestParseValidVariants edits a valid manifest into other valid ones. Each edit keeps the
// canonical layout, so the round trip must give back the very same bytes.
func TestParseValidVariants(t *testing.T) {
	kb := string(readTestdata(t, "kb910618.json"))
	sp := string(readTestdata(t, "sp2.json"))
	tests := []struct {
		name, base, old, new string
	}{
		{"platform any", kb, `"platform": "linux/386"`, `"platform": "any"`},
		{"windows x86", kb, `"platform": "linux/386"`, `"platform": "windows/386"`},
		{"reboot needed", kb, `"reboot": false`, `"reboot": true`},
		{"only a service-pack prerequisite", kb, `"product_version": ">= 6.5.7638",` + "\n    ", ``},
		{"only a version prerequisite", kb, `,` + "\n    \"service_pack\": 2", ``},
		{"pre-release constraint", kb, `">= 6.5.7638"`, `">= 6.5.7638-0, < 7"`},
		{"no expiry", kb, `"expires": "2036-03-14T00:00:00Z",` + "\n  ", ``},
		{"no component", kb, `"component": "msgtrack",` + "\n      ", ``},
		{"largest file", kb, `"size": 99040`, `"size": 1073741824`},
		{"largest version", kb, `"version": "6.5.7651.45"`, `"version": "4294967295.4294967295.4294967295.4294967295"`},
		{"deep path", kb, `"path": "bin/msgtrack"`, `"path": "lib/relayfix/plugins/.msgtrack"`},
		{"name differs from path", kb, `"name": "msgtrack"`, `"name": "Phatq.dll"`},
		{"title with markup", kb, `heavy load`, `heavy load <&> \"quotes\"`},
		{"unicode title", kb, `heavy load`, `heavy load – Ünïcode`},
		{"service pack 0", sp, `,` + "\n    \"service_pack\": 2", ``},
		{"service pack with pre-release version", sp, `"version": "6.5.7638"`, `"version": "6.5.7638-rc.1"`},
		{"date at 1980", kb, `"date": "2006-02-14T03:36:00Z"`, `"date": "1980-01-01T00:00:00Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Count(tt.base, tt.old) != 1 {
				t.Fatalf("%q does not occur exactly once", tt.old)
			}
			doc := []byte(strings.Replace(tt.base, tt.old, tt.new, 1))
			m, err := Parse(doc)
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, doc)
			}
			out, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(out, doc) {
				t.Errorf("round trip changed the bytes:\n got %s\nwant %s", out, doc)
			}
		})
	}
}
