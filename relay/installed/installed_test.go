package installed_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"relayfix/internal/relaytest"
	"relayfix/packages/store"
	"relayfix/relay/installed"
)

// TestReadsWhatHotfixWrites writes the files with the updater's own types and reads them back
// with this package's small ones.
func TestReadsWhatHotfixWrites(t *testing.T) {
	root := relaytest.ShortRoot(t)
	if s, err := installed.FromRoot(root).Read(); err != nil || s.Product.Version != "" || len(s.Files) != 0 || len(s.History) != 0 {
		t.Fatalf("bare root: %+v, %v", s, err)
	}
	relaytest.Install(t, root, "6.5.7638", 2,
		relaytest.Installed{Name: "relayd", Path: "bin/relayd", Version: "6.5.7638.1", Package: "SP2"},
		relaytest.Installed{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking", Version: "6.5.7651.45", Package: "KB910618"})
	start := time.Date(2026, 11, 29, 18, 40, 0, 0, time.UTC)
	relaytest.AppendHistory(t, root, store.HistoryEntry{ID: "T1", Package: "KB910618", Action: "apply", Result: "committed", Start: start, End: start})
	f, err := os.OpenFile(root.History(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"T2","pack`) // a line torn by a crash
	f.Close()

	s, err := installed.FromRoot(root).Read()
	if err != nil {
		t.Fatal(err)
	}
	if s.Product.Version != "6.5.7638" || s.Product.ServicePack != 2 {
		t.Errorf("product %+v", s.Product)
	}
	tr, ok := s.File("tracking")
	if !ok || tr.Version != "6.5.7651.45" || tr.Path != "bin/msgtrack" || tr.Package != "KB910618" || !tr.Date.Equal(time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)) {
		t.Errorf("tracking file %+v %v", tr, ok)
	}
	if rd, ok := s.File("relayd"); !ok || rd.Version != "6.5.7638.1" {
		t.Errorf("relayd file %+v %v", rd, ok)
	}
	if len(s.History) != 1 || s.History[0].ID != "T1" || !s.History[0].Start.Equal(start) {
		t.Errorf("history %+v", s.History)
	}

	if err := os.WriteFile(root.InstalledDB(), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := installed.FromRoot(root).Read(); err == nil || !strings.Contains(err.Error(), "installed.json") {
		t.Errorf("corrupt database: %v", err)
	}
}

func TestRestartPending(t *testing.T) {
	root := relaytest.ShortRoot(t)
	relaytest.Install(t, root, "6.5.7638", 2,
		relaytest.Installed{Name: "relayd", Path: "bin/relayd", Version: "6.5.7638.1", Package: "SP2"},
		relaytest.Installed{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking", Version: "6.5.7651.45", Package: "KB910618"})
	s, err := installed.FromRoot(root).Read()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		component, running string
		want               bool
	}{
		{"tracking", "6.5.7651.45", false},
		{"tracking", "6.5.7638.1", true}, // the hotfix went in, the old build still runs
		{"tracking", "", false},          // switched off or restarting: nothing runs
		{"relayd", "6.5.7638.1", false},
		{"msgtrack", "6.5.7638.1", true}, // named by its file, as hotfix list names it
		{"archiver", "1.0.0.0", false},   // nothing installed for it
	}
	for _, tt := range tests {
		if got := s.RestartPending(tt.component, tt.running); got != tt.want {
			t.Errorf("RestartPending(%q, %q) = %v, want %v", tt.component, tt.running, got, tt.want)
		}
	}
}

func TestFixes(t *testing.T) {
	const sig = "nil pointer dereference in relayfix/relay/trackplugin.recordsFor"
	root := relaytest.ShortRoot(t)
	relaytest.Install(t, root, "6.5.7638", 2, relaytest.Installed{Name: "relayd", Path: "bin/relayd", Version: "6.5.7638.1", Package: "SP2"})
	relaytest.OfferFix(t, root, "http://127.0.0.1:1/repo", "KB910618", "tracking", sig)
	s, err := installed.FromRoot(root).Read()
	if err != nil {
		t.Fatal(err)
	}
	fix, ok := s.FixFor("tracking", sig)
	if !ok || fix.Package != "KB910618" || fix.Installed || fix.Source != "http://127.0.0.1:1/repo" {
		t.Fatalf("fix %+v %v", fix, ok)
	}
	if _, ok := s.FixFor("tracking", "index out of range in relayfix/relay/other.f"); ok {
		t.Errorf("a fix for a signature no package names")
	}
	relaytest.Install(t, root, "6.5.7638", 2, relaytest.Installed{Name: "relayd", Path: "bin/relayd", Version: "6.5.7638.1", Package: "KB910618"})
	s, _ = installed.FromRoot(root).Read()
	if fix, ok := s.FixFor("tracking", sig); !ok || !fix.Installed {
		t.Errorf("installed fix %+v %v", fix, ok)
	}
}
