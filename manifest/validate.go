package manifest

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/Masterminds/semver/v3"

	"relayfix/manifest/record"
)

// Limits on what a manifest may describe.
const (
	// MaxFileSize is the largest payload file a manifest may list. The updater reads payloads
	// whole to check them, and a relay component is tens of megabytes at most.
	MaxFileSize = 1 << 30
	// MaxFiles is the most rows a file table may have.
	MaxFiles = 4096
	// maxProblems is how many problems one error lists before it stops counting.
	maxProblems = 20
)

// ReleasedLayout is the layout of Manifest.Released (YYYY-MM-DD).
const ReleasedLayout = "2006-01-02"

var (
	idPattern        = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,63}$`)
	servicePattern   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	componentPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	sha256Pattern    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	drivePattern     = regexp.MustCompile(`^[A-Za-z]:`)
)

// earliest is the earliest date a manifest may carry: ZIP and FAT cannot store file dates before
// 1980, so an earlier one is a clock or a build that was never stamped.
var earliest = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// FieldError is one thing wrong with a manifest.
type FieldError struct {
	Field   string // JSON path of the field, e.g. "files[1].sha256"; empty for the document itself
	Problem string // what is wrong with it
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "manifest " + e.Problem
	}
	return "manifest: " + e.Field + ": " + e.Problem
}

// Validate checks m against every rule a finished manifest must meet. It reports all the problems
// it finds (up to a limit), each a *FieldError, joined with errors.Join.
func (m *Manifest) Validate() error { return m.validate(false) }

// ValidateTemplate is Validate for a manifest template (see ParseTemplate): the files' version,
// size, date, platform and sha256 may be unset, and are checked only when set.
func (m *Manifest) ValidateTemplate() error { return m.validate(true) }

// ReleasedDate returns the release date as midnight UTC.
func (m *Manifest) ReleasedDate() (time.Time, error) {
	t, err := time.Parse(ReleasedLayout, m.Released)
	if err != nil {
		return time.Time{}, fmt.Errorf("manifest %s: release date %q is not YYYY-MM-DD", m.ID, m.Released)
	}
	return t, nil
}

// Expired reports whether m carries an expiry that lies before now.
func (m *Manifest) Expired(now time.Time) bool {
	return m.Expires != nil && now.After(*m.Expires)
}

// problems collects the FieldErrors of one validation.
type problems struct {
	errs  []error
	extra int
}

func (p *problems) add(field, format string, args ...any) {
	if len(p.errs) == maxProblems {
		p.extra++
		return
	}
	p.errs = append(p.errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if p.extra > 0 {
		p.errs = append(p.errs, fmt.Errorf("manifest: %d more problems not listed", p.extra))
	}
	return errors.Join(p.errs...)
}

func (m *Manifest) validate(template bool) error {
	if m == nil {
		return &FieldError{Problem: "is missing"}
	}
	var p problems
	if m.Schema != SchemaVersion {
		p.add("schema", "must be %d, got %d", SchemaVersion, m.Schema)
	}
	checkID(&p, "id", m.ID)
	checkText(&p, "title", m.Title, 200)

	switch m.Kind {
	case KindServicePack, KindHotfix:
	case "":
		p.add("kind", "is required: %q or %q", KindServicePack, KindHotfix)
	default:
		p.add("kind", "%q is not %q or %q", m.Kind, KindServicePack, KindHotfix)
	}

	released, releasedOK := time.Time{}, false
	switch t, err := time.Parse(ReleasedLayout, m.Released); {
	case m.Released == "":
		p.add("released", "is required: a date like 2006-03-14 (YYYY-MM-DD)")
	case err != nil:
		p.add("released", "%q is not a date like 2006-03-14 (YYYY-MM-DD)", m.Released)
	case t.Before(earliest):
		p.add("released", "%s is before 1980", m.Released)
	default:
		released, releasedOK = t, true
	}
	if m.Expires != nil {
		if checkInstant(&p, "expires", *m.Expires) && releasedOK && !m.Expires.After(released) {
			p.add("expires", "%s is not after the release date %s", m.Expires.Format(time.RFC3339), m.Released)
		}
	}

	checkText(&p, "product.name", m.Product.Name, 100)
	m.checkLevels(&p)
	m.checkFiles(&p, template)

	seen := make(map[string]int)
	for i, s := range m.Restart.Services {
		field := fmt.Sprintf("restart.services[%d]", i)
		if !servicePattern.MatchString(s) {
			p.add(field, "%q is not a service name: lower-case letters, digits and '-', starting with a letter, at most 32", s)
			continue
		}
		if !slices.Contains(record.KnownServices(), s) {
			p.add(field, "%q is not a service relayfix can restart (known: %s)", s, strings.Join(record.KnownServices(), ", "))
			continue
		}
		if j, dup := seen[s]; dup {
			p.add(field, "%q is already listed as restart.services[%d]", s, j)
			continue
		}
		seen[s] = i
	}

	seen = make(map[string]int)
	for i, id := range m.Supersedes {
		field := fmt.Sprintf("supersedes[%d]", i)
		if !checkID(&p, field, id) {
			continue
		}
		key := strings.ToLower(id)
		if key == strings.ToLower(m.ID) {
			p.add(field, "%q is the package's own id: a package cannot supersede itself", id)
			continue
		}
		if j, dup := seen[key]; dup {
			p.add(field, "%q is already listed as supersedes[%d]", id, j)
			continue
		}
		seen[key] = i
	}
	m.checkFixes(&p)
	return p.err()
}

// checkLevels checks the product version, service-pack level and prerequisites, whose rules
// depend on the kind of package.
func (m *Manifest) checkLevels(p *problems) {
	switch m.Kind {
	case KindServicePack:
		if m.Product.Version == "" {
			p.add("product.version", "is required for a service pack: the product version it installs, like 6.5.7638")
		} else if _, err := semver.StrictNewVersion(m.Product.Version); err != nil {
			p.add("product.version", "%q is not a semantic version like 6.5.7638: %v", m.Product.Version, err)
		}
		checkLevel(p, "product.service_pack", m.Product.ServicePack)
	case KindHotfix:
		if m.Product.Version != "" {
			p.add("product.version", "is set, but only a service pack sets the product version: a hotfix states what it needs under requires")
		}
		if m.Product.ServicePack != 0 {
			p.add("product.service_pack", "is set, but only a service pack sets the level: a hotfix states what it needs under requires.service_pack")
		}
		if m.Requires.ProductVersion == "" && m.Requires.ServicePack == 0 {
			p.add("requires", "a hotfix must name at least one prerequisite: product_version or service_pack")
		}
	}
	if c := m.Requires.ProductVersion; c != "" {
		if strings.ContainsFunc(c, unicode.IsControl) || len(c) > 200 {
			p.add("requires.product_version", "%q is not a version constraint", c)
		} else if _, err := semver.NewConstraint(c); err != nil {
			p.add("requires.product_version", "%q is not a version constraint like \">= 6.5.7638\": %v", c, err)
		}
	}
	checkLevel(p, "requires.service_pack", m.Requires.ServicePack)
}

func checkLevel(p *problems, field string, level int) {
	if level < 0 || level > 999 {
		p.add(field, "%d is not a service-pack level from 0 to 999", level)
	}
}

// checkFiles checks the file table, row by row and then across rows.
func (m *Manifest) checkFiles(p *problems, template bool) {
	switch {
	case len(m.Files) == 0:
		p.add("files", "must list at least one file")
		return
	case len(m.Files) > MaxFiles:
		p.add("files", "lists %d files, more than the limit of %d", len(m.Files), MaxFiles)
		return
	}
	paths := make(map[string]int) // lower-cased path -> row
	dirs := make(map[string]int)  // lower-cased directory that some row's path lies in -> row
	for i, f := range m.Files {
		field := func(name string) string { return fmt.Sprintf("files[%d].%s", i, name) }
		checkFileName(p, field("name"), f.Name)
		if f.Component != "" && !componentPattern.MatchString(f.Component) {
			p.add(field("component"), "%q is not a component name: letters, digits, '.', '_' and '-', at most 64", f.Component)
		}

		switch {
		case f.Version.IsZero() && template:
		case f.Version.IsZero():
			p.add(field("version"), "is required: 0.0.0.0 is the version of an unstamped build")
		}

		switch {
		case f.Size == 0 && template:
		case f.Size == 0:
			p.add(field("size"), "is required and must be more than 0 bytes")
		case f.Size < 0:
			p.add(field("size"), "%d is negative", f.Size)
		case f.Size > MaxFileSize:
			p.add(field("size"), "%d bytes is more than the limit of %d", f.Size, MaxFileSize)
		}

		if !(f.Date.IsZero() && template) {
			checkInstant(p, field("date"), f.Date)
		}

		switch {
		case f.Platform == "" && template:
		case f.Platform == "":
			p.add(field("platform"), "is required: GOOS/GOARCH, like linux/amd64")
		default:
			checkPlatform(p, field("platform"), f.Platform)
		}

		switch {
		case f.SHA256 == "" && template:
		case f.SHA256 == "":
			p.add(field("sha256"), "is required: 64 lower-case hex digits")
		case !sha256Pattern.MatchString(f.SHA256):
			p.add(field("sha256"), "%q is not 64 lower-case hex digits", f.SHA256)
		}

		if f.Mode&^0o777 != 0 {
			p.add(field("mode"), "%#o has bits other than the permission bits 0777", f.Mode)
		}

		if !checkPath(p, field("path"), f.Path) {
			continue
		}
		key := strings.ToLower(f.Path)
		if j, dup := paths[key]; dup {
			if m.Files[j].Path == f.Path {
				p.add(field("path"), "%q is also the path of files[%d]", f.Path, j)
			} else {
				p.add(field("path"), "%q differs only in case from files[%d].path %q", f.Path, j, m.Files[j].Path)
			}
			continue
		}
		paths[key] = i
		for d := path.Dir(key); d != "."; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = i
			}
		}
	}
	// A path that is a file in one row and a directory in another cannot both be installed.
	for i, f := range m.Files {
		if j, ok := dirs[strings.ToLower(f.Path)]; ok {
			p.add(fmt.Sprintf("files[%d].path", i), "%q is a file, but files[%d].path %q puts a file inside it", f.Path, j, m.Files[j].Path)
		}
	}
}

// checkPath checks an install path and reports whether it is valid.
func checkPath(p *problems, field, s string) bool {
	n := len(p.errs) + p.extra
	switch {
	case s == "":
		p.add(field, "is required: the install path relative to the root, like bin/msgtrack")
	case strings.ContainsRune(s, 0):
		p.add(field, "%q contains a NUL byte", s)
	case strings.ContainsFunc(s, unicode.IsControl):
		p.add(field, "%q contains a control character", s)
	case strings.ContainsRune(s, '\\'):
		p.add(field, "%q contains a backslash: separate directories with '/'", s)
	case strings.HasPrefix(s, "/"):
		p.add(field, "%q is absolute: give it relative to the install root", s)
	case drivePattern.MatchString(s):
		p.add(field, "%q starts with a drive letter: give it relative to the install root", s)
	case s == ".." || strings.HasPrefix(s, "../") || strings.HasSuffix(s, "/..") || strings.Contains(s, "/../"):
		p.add(field, "%q has a \"..\" segment: it must stay inside the install root", s)
	case path.Clean(s) != s:
		p.add(field, "%q is not clean (it should read %q)", s, path.Clean(s))
	case s == ".":
		p.add(field, "%q is the install root itself, not a file in it", s)
	case len(s) > 1024:
		p.add(field, "is %d bytes long, more than the limit of 1024", len(s))
	default:
		for seg := range strings.SplitSeq(s, "/") {
			if len(seg) > 255 {
				p.add(field, "%q has a path segment longer than 255 bytes", s)
				return false
			}
		}
		first, _, _ := strings.Cut(s, "/")
		switch {
		case strings.EqualFold(first, "hotfix"):
			p.add(field, "%q is inside hotfix/, where the updater keeps its own records", s)
		case strings.EqualFold(s, "product.json"):
			p.add(field, "%q is the product record, which the updater writes itself", s)
		}
	}
	return len(p.errs)+p.extra == n
}

// checkFileName checks that s is a plain file name, as a KB file table lists it.
func checkFileName(p *problems, field, s string) {
	switch {
	case s == "":
		p.add(field, "is required: the file name, like msgtrack")
	case strings.ContainsFunc(s, unicode.IsControl):
		p.add(field, "%q contains a control character", s)
	case strings.ContainsAny(s, `/\`):
		p.add(field, "%q is not a plain file name: it contains a path separator", s)
	case s == "." || s == "..":
		p.add(field, "%q is not a file name", s)
	case len(s) > 255:
		p.add(field, "is %d bytes long, more than the limit of 255", len(s))
	}
}

// checkID checks a package id and reports whether it is valid.
func checkID(p *problems, field, id string) bool {
	switch {
	case id == "":
		p.add(field, "is required: a package id like KB910618")
	case !idPattern.MatchString(id):
		p.add(field, "%q is not a package id: a letter, then up to 63 letters, digits, '.', '_' or '-'", id)
	default:
		return true
	}
	return false
}

// checkText checks a required one-line text of at most limit bytes.
func checkText(p *problems, field, s string, limit int) {
	switch {
	case s == "":
		p.add(field, "is required")
	case strings.ContainsAny(s, "\r\n\u0085\u2028\u2029"):
		p.add(field, "must be one line")
	case strings.ContainsFunc(s, unicode.IsControl):
		p.add(field, "contains a control character")
	case strings.TrimSpace(s) != s:
		p.add(field, "%q starts or ends with white space", s)
	case len(s) > limit:
		p.add(field, "is %d bytes long, more than the limit of %d", len(s), limit)
	}
}

// checkInstant checks a date and time from a manifest and reports whether it is valid.
func checkInstant(p *problems, field string, t time.Time) bool {
	switch {
	case t.IsZero():
		p.add(field, "is required: a UTC date and time like \"2006-02-14T03:36:00Z\"")
	case t.Location() != time.UTC:
		p.add(field, "%s is not in UTC", t.Format(time.RFC3339))
	case t.Nanosecond() != 0:
		p.add(field, "%s has fractions of a second: give whole seconds", t.Format(time.RFC3339Nano))
	case t.Before(earliest):
		p.add(field, "%s is before 1980", t.Format(time.RFC3339))
	default:
		return true
	}
	return false
}

// PlatformAny is the platform of a payload that is not an executable, such as a configuration
// file: it runs nowhere, so it fits everywhere.
const PlatformAny = "any"

// checkPlatform checks a GOOS/GOARCH pair against the platforms whose executable headers the
// verifier can read, so that a platform a manifest states can also be checked.
func checkPlatform(p *problems, field, s string) {
	if s == PlatformAny {
		return
	}
	goos, goarch, ok := strings.Cut(s, "/")
	switch {
	case !ok || strings.Contains(goarch, "/"):
		p.add(field, "%q is not GOOS/GOARCH, like linux/amd64, or %q for a file that is not an executable", s, PlatformAny)
	case !knownOS(goos):
		p.add(field, "%q names an unknown operating system %q (want linux, windows, darwin, freebsd, netbsd, openbsd or solaris)", s, goos)
	case !knownArch(goarch):
		p.add(field, "%q names an unknown architecture %q (want amd64, 386, arm64, arm, riscv64, ppc64, ppc64le, s390x, mips, mipsle, mips64, mips64le or loong64)", s, goarch)
	}
}

func knownOS(goos string) bool {
	switch goos {
	case "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris":
		return true
	}
	return false
}

func knownArch(goarch string) bool {
	switch goarch {
	case "amd64", "386", "arm64", "arm", "riscv64", "ppc64", "ppc64le", "s390x",
		"mips", "mipsle", "mips64", "mips64le", "loong64":
		return true
	}
	return false
}
