package manifest_test

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"relayfix/manifest"
)

func ExampleParse() {
	data, err := os.ReadFile("testdata/kb910618.json")
	if err != nil {
		panic(err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		panic(err)
	}
	f := m.Files[0]
	fmt.Println(m.ID, "requires service pack", m.Requires.ServicePack)
	fmt.Println(f.Name, f.Version, f.Size, f.Date.Format("02-Jan-2006 15:04"), f.Platform)
	// Output:
	// KB910618 requires service pack 2
	// msgtrack 6.5.7651.45 99040 14-Feb-2006 03:36 linux/386
}

// A date written as a KB article prints it is refused, and the error names the field.
func ExampleParse_error() {
	data, err := os.ReadFile("testdata/kb910618.json")
	if err != nil {
		panic(err)
	}
	data = []byte(strings.Replace(string(data), "2006-02-14T03:36:00Z", "2006-02-14 03:36", 1))
	_, err = manifest.Parse(data)
	fmt.Println(err)
	var fe *manifest.FieldError
	if errors.As(err, &fe) {
		fmt.Println("field:", fe.Field)
	}
	// Output:
	// manifest: files[0].date: "2006-02-14 03:36" is not an RFC 3339 UTC date and time like "2006-02-14T03:36:00Z"
	// field: files[0].date
}
