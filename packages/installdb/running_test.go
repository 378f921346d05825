package installdb

import (
	"reflect"
	"testing"

	"relayfix/internal/layout"
	"relayfix/manifest/record"
)

func TestRestartPending(t *testing.T) {
	root := layout.Root("/srv/relay")
	db := &DB{Files: []InstalledFile{
		{File: record.File{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking", Version: record.MustParseFileVersion("6.5.7651.45")}},
		{File: record.File{Name: "relayd", Path: "bin/relayd", Version: record.MustParseFileVersion("6.5.7700.1")}},
	}}
	tests := []struct {
		name    string
		running []Running
		want    []Stale
	}{
		{"all current", []Running{{Name: "relayd", Version: "6.5.7700.1"}, {Name: "tracking", Binary: "/srv/relay/bin/msgtrack", Version: "6.5.7651.45"}}, nil},
		{"relayd old", []Running{{Name: "relayd", Version: "6.5.7638.1"}},
			[]Stale{{Name: "relayd", Path: "bin/relayd", Running: "6.5.7638.1", Installed: "6.5.7700.1"}}},
		{"tracking by binary", []Running{{Name: "tracking", Binary: "/srv/relay/bin/msgtrack", Version: "6.5.7638.1"}},
			[]Stale{{Name: "tracking", Path: "bin/msgtrack", Running: "6.5.7638.1", Installed: "6.5.7651.45"}}},
		{"tracking by component name", []Running{{Name: "tracking", Version: "6.5.7638.1"}},
			[]Stale{{Name: "tracking", Path: "bin/msgtrack", Running: "6.5.7638.1", Installed: "6.5.7651.45"}}},
		{"relative binary", []Running{{Name: "tracking", Binary: "bin/msgtrack", Version: "6.5.7651.45"}}, nil},
		{"not running", []Running{{Name: "tracking", Version: ""}}, nil},
		{"binary outside the database", []Running{{Name: "tracking", Binary: "/opt/other/msgtrack", Version: "1.0.0.0"}}, nil},
		{"unreadable version", []Running{{Name: "relayd", Version: "dev"}},
			[]Stale{{Name: "relayd", Path: "bin/relayd", Running: "dev", Installed: "6.5.7700.1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := db.RestartPending(root, tc.running); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
