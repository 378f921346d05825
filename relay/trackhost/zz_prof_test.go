package trackhost

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"relayfix/internal/smtpload"
)

func cpuOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(b))
	if len(f) < 15 {
		return "?"
	}
	return "utime=" + f[13] + " stime=" + f[14]
}

func TestZZProf(t *testing.T) {
	for _, mode := range []string{"off", "on"} {
		root := relaydRoot(t)
		install(t, root, fixedBin, true)
		sink := newSink(t)
		extra := []string{"--pprof", "127.0.0.1:6061"}
		if mode == "off" {
			extra = append(extra, "--tracking=false")
		}
		p := startRelayd(t, root, sink.Addr(), extra...)
		time.Sleep(300 * time.Millisecond)
		runLoad(t, smtpload.LoadOptions{Addr: p.addr, N: 500, Concurrency: 16})
		before := cpuOf(p.cmd.Process.Pid)
		st := p.tracking(t)
		pb := ""
		if st.PID != 0 {
			pb = cpuOf(st.PID)
		}
		done := make(chan struct{})
		go func() {
			resp, err := http.Get("http://127.0.0.1:6061/debug/pprof/profile?seconds=2")
			if err == nil {
				f, _ := os.Create("/tmp/relayd-" + mode + ".prof")
				io.Copy(f, resp.Body)
				f.Close()
				resp.Body.Close()
			}
			close(done)
		}()
		res := runLoad(t, smtpload.LoadOptions{Addr: p.addr, N: 3000, Concurrency: 16, FirstSeq: 1000})
		<-done
		t.Logf("%s: %d msgs/s relayd %s -> %s plugin %s -> %s", mode, int(float64(res.Acked)/res.Elapsed.Seconds()), before, cpuOf(p.cmd.Process.Pid), pb, func() string {
			if st.PID != 0 {
				return cpuOf(st.PID)
			}
			return ""
		}())
		p.cmd.Process.Kill()
		<-p.done
	}
}
