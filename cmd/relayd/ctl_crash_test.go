package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"relayfix/relay/control"
)

func TestPrintStatusListsCrashSignatures(t *testing.T) {
	first := time.Date(2026, 12, 1, 13, 2, 11, 0, time.UTC)
	st := &control.Status{Version: "6.5.7638.1", Components: []control.ComponentStatus{{
		Name: "tracking", Version: "6.5.7638.1", Health: control.HealthHealthy, Crashes: 14,
		CrashSignatures: []control.CrashSignature{{Signature: "nil pointer dereference in relayfix/relay/trackplugin.recordsFor",
			Program: "msgtrack", Build: "6.5.7638.1", Count: 14, First: first, Last: first.Add(40 * time.Minute)}},
	}}}
	var b bytes.Buffer
	if err := printStatus(&b, &control.Response{Status: st}); err != nil {
		t.Fatal(err)
	}
	want := "crash: tracking msgtrack 6.5.7638.1: 14 times, first 2026-12-01 13:02:11, last 2026-12-01 13:42:11 UTC: nil pointer dereference in relayfix/relay/trackplugin.recordsFor\n"
	if !strings.HasSuffix(b.String(), want) {
		t.Errorf("status ends\n%s\nwant\n%s", b.String(), want)
	}
	st.Components[0].CrashSignatures = nil
	b.Reset()
	printStatus(&b, &control.Response{Status: st})
	if strings.Contains(b.String(), "crash:") {
		t.Errorf("crash line without a crash:\n%s", b.String())
	}
}
