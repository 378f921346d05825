package tableprint

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRender(t *testing.T) {
	tests := []struct {
		name  string
		table func(*bytes.Buffer) *Table
		want  string
	}{
		{
			name:  "piped output is tab-separated",
			table: func(b *bytes.Buffer) *Table { return New(b, "File name", "File version") },
			want:  "File name\tFile version\nmsgtrack\t6.5.7651.45\n",
		},
		{
			name:  "boxed keeps the header's case",
			table: func(b *bytes.Buffer) *Table { return NewBoxed(b, "File name", "File version") },
			want: "+-----------+--------------+\n" +
				"| File name | File version |\n" +
				"+-----------+--------------+\n" +
				"| msgtrack  | 6.5.7651.45  |\n" +
				"+-----------+--------------+\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tbl := tc.table(&b)
			tbl.Append("msgtrack", "6.5.7651.45")
			if err := tbl.Render(); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file was taken for a terminal")
	}
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer was taken for a terminal")
	}
}
