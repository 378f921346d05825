package demo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRecordsMissing(t *testing.T) {
	dir := t.TempDir()
	log := "#Software: relayfix msgtrack 6.5.7651.45\n#Version: 1\n#Fields: date time event-id msgid\n" +
		"2026-11-29\t10:00:00\t1019\t<1.load@example.test>\n" +
		"2026-11-29\t10:00:00\t1020\t<1.load@example.test>\n" +
		"2026-11-29\t10:00:01\t1031\t<1.load@example.test>\n" +
		"2026-11-29\t10:00:00\t1019\t<2.load@example.test>\n" +
		"2026-11-29\t10:00:01\t1031\t<2.load@example.test>\n" + // queued missing
		"2026-11-29\t10:00:01\t1031\t<3.load@example.test>\n" + // delivered before queued: out of order
		"2026-11-29\t10:00:02\t1020\t<3.load@example.test>\n" +
		"2026-11-29\t10:00:02\t1019\t<3.load@example.test>\n"
	if err := os.WriteFile(filepath.Join(dir, "20261129.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	if recs.Count != 8 {
		t.Errorf("Count = %d, want 8", recs.Count)
	}
	// With a seq column, the relay's order counts, not the order the lines were written in.
	seqLog := "#Fields: event-id msgid seq\n" +
		"1031\t<5.load@example.test>\t12\n" +
		"1019\t<5.load@example.test>\t10\n" +
		"1020\t<5.load@example.test>\t11\n"
	if err := os.WriteFile(filepath.Join(dir, "20261130.log"), []byte(seqLog), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err = ReadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ seq, missing int }{{1, 0}, {2, 1}, {3, 2}, {4, 3}, {5, 0}} {
		if got := recs.Missing(tc.seq); got != tc.missing {
			t.Errorf("Missing(%d) = %d, want %d", tc.seq, got, tc.missing)
		}
	}
}
