// Package demo runs the whole relayfix story on a throwaway install root: service pack 2 applied,
// relayd carrying load to a counting next hop, the pre-fix tracking build crashing under it while
// mail keeps flowing, hotfix check against a signed repository served on loopback naming
// KB910618 as the fix for the crash relayd recorded, KB910618 applied live by id, the file
// versions listed, a message found in the tracking log, a rollback and a second apply, and a
// summary of what was sent, delivered and lost.
//
// It drives the real binaries (hotfix, and the relayd that the service pack installs) as an
// operator would, so what it shows is what an operator gets.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/smtpload"
	"relayfix/relay/control"
)

// Options configure a run.
type Options struct {
	BinDir   string  // where hotfix is (bin/)
	DistDir  string  // where SP2.hfx, KB910618.hfx and demo.pub are (dist/)
	Root     string  // install root; "" = a new temporary directory, removed afterwards
	Messages int     // messages in the main load (default 3000)
	Rate     float64 // messages per second (default 300; negative: as fast as the relay takes them)
	// Phase is how long each build carries load before the next step: the pre-fix build before
	// the apply, the fix before the rollback, the rollback before the second apply (default 2 s).
	Phase       time.Duration
	Concurrency int
	Out         io.Writer // the story, step by step
	Progress    bool      // draw a live status line (on a terminal)
	Timeline    string    // when set, write delivered-per-interval samples here (CSV)
	PlotPath    string    // when set, draw delivered msgs/s over time to this PNG
}

// Summary is what a run measured.
type Summary struct {
	Sent, Acked, Delivered, Lost, Duplicates int
	RecordsWritten, RecordsLost              int
	CrashesBefore, CrashesAfter              int
	ApplyTime, ReapplyTime, RollbackTime     time.Duration
	// CheckNamedFix is whether hotfix check, after the crash, named KB910618 as its fix.
	CheckNamedFix bool
	Elapsed       time.Duration
	// Builds is the tracking build relayd ran at each stage: under SP2, after the apply, after
	// the rollback, after the second apply.
	Builds []string
	// Service pack 3 replaces relayd itself, applied live under load of its own: relayd's PID
	// and version before and after, how long the apply took, and the sessions of that load that
	// were not greeted or whose transaction was refused.
	SP3PIDs     [2]int
	SP3Versions [2]string
	SP3Time     time.Duration
	SP3Sessions int
	SP3Acked    int // also counted in Acked
	SP3Refused  int
}

// Failed reports whether the run lost anything, or the live upgrade of relayd refused a session
// or kept the same process.
func (s Summary) Failed() bool {
	return s.Lost > 0 || s.RecordsLost > 0 || s.Duplicates > 0 || s.SP3Refused > 0 || s.SP3PIDs[0] == s.SP3PIDs[1]
}

type run struct {
	opts    Options
	root    layout.Root
	hotfix  string
	relayd  *exec.Cmd
	done    chan error
	sink    *smtpload.Sink
	ctl     control.Client
	start   time.Time
	mu      sync.Mutex
	marks   []Mark
	outMu   sync.Mutex
	lastLen int
}

// Mark is a labelled instant on the timeline (apply started, apply done, ...).
type Mark struct {
	At    time.Duration
	Label string
}

// Run runs the story and returns its summary. An error means a step failed outright.
func Run(ctx context.Context, opts Options) (Summary, error) {
	if opts.Messages <= 0 {
		opts.Messages = 3000
	}
	if opts.Rate == 0 {
		opts.Rate = 300
	}
	if opts.Phase <= 0 {
		opts.Phase = 2 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	r := &run{opts: opts, start: time.Now(), hotfix: filepath.Join(opts.BinDir, "hotfix")}
	var sum Summary
	if opts.Root == "" {
		dir, err := os.MkdirTemp("", "relayfix-demo-")
		if err != nil {
			return sum, fmt.Errorf("make throwaway root: %w", err)
		}
		defer os.RemoveAll(dir)
		opts.Root = filepath.Join(dir, "root")
	}
	r.root = layout.Root(opts.Root)
	r.ctl = control.Client{Path: r.root.ControlSocket()}
	defer r.stopRelay()
	err := r.story(ctx, &sum)
	sum.Elapsed = time.Since(r.start)
	return sum, err
}

func (r *run) say(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	if r.lastLen > 0 {
		fmt.Fprintf(r.opts.Out, "\r%s\r", strings.Repeat(" ", r.lastLen))
		r.lastLen = 0
	}
	fmt.Fprintf(r.opts.Out, "[%5.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *run) mark(label string) {
	r.mu.Lock()
	r.marks = append(r.marks, Mark{At: time.Since(r.start), Label: label})
	r.mu.Unlock()
}

// hotfixCmd runs hotfix with args and returns its stdout; stderr goes into the error.
func (r *run) hotfixCmd(ctx context.Context, args ...string) (string, error) {
	args = append(args, "--root", string(r.root))
	cmd := exec.CommandContext(ctx, r.hotfix, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("hotfix %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (r *run) story(ctx context.Context, sum *Summary) error {
	dist := r.opts.DistDir
	pub := filepath.Join(dist, "demo.pub")
	r.say("throwaway install root %s", r.root)

	if _, err := r.hotfixCmd(ctx, "apply", filepath.Join(dist, "SP2.hfx"), "--pubkey", pub); err != nil {
		return err
	}
	r.say("applied service pack 2 (product 6.5.7638, pre-fix tracking build)")
	if out, err := r.hotfixCmd(ctx, "list"); err == nil {
		r.block(out)
	} else {
		return err
	}

	stopRepo, err := r.serveRepository(ctx, dist)
	if err != nil {
		return err
	}
	defer stopRepo()

	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sink.Close()
	r.sink = sink
	listen, err := freePort()
	if err != nil {
		return err
	}
	if err := r.startRelay(ctx, listen, sink.Addr()); err != nil {
		return err
	}
	r.say("relayd listening on %s, next hop %s (counts what it receives)", listen, sink.Addr())

	// Load runs in the background across the crash, the live apply, the rollback and the re-apply.
	var ackCount atomic.Int64 // for the progress line; the load result holds the acks themselves
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	type loadOutcome struct {
		res *smtpload.LoadResult
		err error
	}
	loadDone := make(chan loadOutcome, 1)
	go func() {
		res, err := smtpload.Load(loadCtx, smtpload.LoadOptions{
			Addr: listen, N: r.opts.Messages, Concurrency: r.opts.Concurrency, Rate: max(r.opts.Rate, 0),
			Duration: 90 * time.Second,
			OnAck:    func(int, string) { ackCount.Add(1) },
		})
		loadDone <- loadOutcome{res, err}
	}()
	progressStop := r.progress(ctx, func() int { return int(ackCount.Load()) })
	defer progressStop()
	rate := fmt.Sprintf("%.0f msgs/s", r.opts.Rate)
	if r.opts.Rate < 0 {
		rate = "full speed"
	}
	r.say("load: %d messages of 4 KiB at %s over %d connections", r.opts.Messages, rate, r.opts.Concurrency)

	// The pre-fix build meets the KB 910618 race under this load.
	crashCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	st, err := r.waitTracking(crashCtx, func(c control.ComponentStatus) bool { return c.Crashes > 0 })
	cancel()
	sum.Builds = append(sum.Builds, st.Version)
	if err != nil {
		r.say("the pre-fix tracking build did not crash yet: %v", err)
	} else {
		r.say("tracking %s crashed (%d so far): %s; mail keeps flowing", st.Version, st.Crashes, firstLine(st.LastExit))
	}
	r.mark("crash")
	r.sleep(ctx, r.opts.Phase) // mail keeps flowing while the pre-fix build crashes
	if sum.CheckNamedFix, err = r.check(ctx); err != nil {
		return err
	}

	// Apply the fix live, by id from the repository, as the check advises.
	r.mark("apply KB910618")
	t0 := time.Now()
	if _, err := r.hotfixCmd(ctx, "apply", "KB910618"); err != nil {
		return err
	}
	sum.ApplyTime = time.Since(t0)
	r.mark("applied")
	st, _ = r.tracking(ctx)
	sum.CrashesBefore = st.Crashes
	sum.Builds = append(sum.Builds, st.Version)
	r.say("applied KB910618 live in %v: tracking now %s (%s)", sum.ApplyTime.Round(time.Millisecond), st.Version, st.Health)
	if out, err := r.hotfixCmd(ctx, "list"); err == nil {
		r.block(out)
	} else {
		return err
	}
	crashesAtFix := st.Crashes

	// Let the fixed build carry load for a while, then roll back and apply again.
	r.sleep(ctx, r.opts.Phase)
	st, _ = r.tracking(ctx)
	sum.CrashesAfter = st.Crashes - crashesAtFix
	r.say("fixed build under load: %d crash(es) since the apply", sum.CrashesAfter)

	r.mark("rollback")
	t0 = time.Now()
	if _, err := r.hotfixCmd(ctx, "rollback", "msgtrack"); err != nil {
		return err
	}
	sum.RollbackTime = time.Since(t0)
	st, _ = r.tracking(ctx)
	sum.Builds = append(sum.Builds, st.Version)
	r.say("rolled msgtrack back in %v: tracking now %s", sum.RollbackTime.Round(time.Millisecond), st.Version)
	if out, err := r.hotfixCmd(ctx, "list"); err == nil {
		r.block(out)
	} else {
		return err
	}
	r.sleep(ctx, r.opts.Phase)

	r.mark("re-apply")
	t0 = time.Now()
	if _, err := r.hotfixCmd(ctx, "apply", filepath.Join(dist, "KB910618.hfx"), "--pubkey", pub); err != nil {
		return err
	}
	sum.ReapplyTime = time.Since(t0)
	st, _ = r.tracking(ctx)
	sum.Builds = append(sum.Builds, st.Version)
	r.say("applied KB910618 again in %v: tracking %s", sum.ReapplyTime.Round(time.Millisecond), st.Version)

	out := <-loadDone
	if out.err == nil {
		out.err = r.servicePack3(ctx, sum, dist, pub, out.res)
	}
	progressStop()
	if out.err != nil {
		return fmt.Errorf("load: %w", out.err)
	}
	res, acked := out.res, out.res.Acks
	sum.Sent, sum.Acked = res.Sent, res.Acked
	r.say("load finished: %d sent, %d acknowledged in %v", res.Sent, res.Acked, res.Elapsed.Round(time.Millisecond))

	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	tally := sink.WaitFor(waitCtx, acked)
	cancel()
	sum.Delivered, sum.Lost, sum.Duplicates = tally.Delivered, tally.Lost, tally.Duplicates

	// Every delivered message must have its received, queued and delivered records, in order.
	waitCtx, cancel = context.WithTimeout(ctx, 30*time.Second)
	r.waitTracking(waitCtx, func(c control.ComponentStatus) bool { return c.Pending == 0 })
	cancel()
	r.stopRelay()
	recs, err := ReadRecords(r.root.TrackingLog())
	if err != nil {
		return err
	}
	sum.RecordsWritten = recs.Count
	for seq := range acked {
		sum.RecordsLost += recs.Missing(seq)
	}

	if out, err := r.findOne(ctx, acked); err == nil {
		r.block(out)
	} else {
		r.say("tracking search failed: %v", err)
	}
	if r.opts.PlotPath != "" || r.opts.Timeline != "" {
		if err := r.writeTimeline(sink.Arrivals()); err != nil {
			return err
		}
	}
	return nil
}

// servicePack3 applies SP3, which replaces relayd itself, live under a load of its own whose
// clients reconnect every 20 messages, and adds that load's acknowledgements to res.
func (r *run) servicePack3(ctx context.Context, sum *Summary, dist, pub string, res *smtpload.LoadResult) error {
	st, err := r.ctl.Status(ctx)
	if err != nil {
		return err
	}
	sum.SP3PIDs[0], sum.SP3Versions[0] = st.PID, st.Version
	type outcome struct {
		res *smtpload.LoadResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := smtpload.Load(ctx, smtpload.LoadOptions{
			Addr: st.Listen, N: 100000, Concurrency: r.opts.Concurrency, Rate: max(r.opts.Rate, 0),
			Duration: 3 * r.opts.Phase, PerConn: 20, FirstSeq: 1_000_000,
		})
		done <- outcome{res, err}
	}()
	r.sleep(ctx, r.opts.Phase) // the new load runs on the old relayd first
	r.mark("apply SP3")
	t0 := time.Now()
	if _, err := r.hotfixCmd(ctx, "apply", filepath.Join(dist, "SP3.hfx"), "--pubkey", pub); err != nil {
		return err
	}
	sum.SP3Time = time.Since(t0)
	r.mark("applied SP3")
	if st, err = r.ctl.Status(ctx); err != nil {
		return err
	}
	sum.SP3PIDs[1], sum.SP3Versions[1] = st.PID, st.Version
	r.say("applied SP3 live in %v: relayd %s (pid %d) handed over to %s (pid %d)", sum.SP3Time.Round(time.Millisecond),
		sum.SP3Versions[0], sum.SP3PIDs[0], sum.SP3Versions[1], sum.SP3PIDs[1])
	o := <-done
	if o.err != nil {
		return fmt.Errorf("load: %w", o.err)
	}
	sum.SP3Sessions, sum.SP3Acked, sum.SP3Refused = o.res.Sessions, o.res.Acked, o.res.ConnErrors+o.res.Rejected
	r.say("SP3 load: %d sessions, %d messages acknowledged, %d sessions or transactions refused",
		o.res.Sessions, o.res.Acked, sum.SP3Refused)
	res.Sent += o.res.Sent
	res.Acked += o.res.Acked
	maps.Copy(res.Acks, o.res.Acks)
	return nil
}

// findOne looks a delivered message up in the tracking log, as an operator would.
func (r *run) findOne(ctx context.Context, acked map[int]string) (string, error) {
	seq := -1
	for s := range acked {
		if seq < 0 || s < seq {
			seq = s
		}
	}
	if seq < 0 {
		return "", errors.New("no message was acknowledged")
	}
	id := fmt.Sprintf("<%d.load@example.test>", seq)
	r.say("searching the tracking log for message %s:", id)
	cmd := exec.CommandContext(ctx, r.root.Bin("relayd"), "track", "--root", string(r.root), "--message-id", id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("relayd track: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (r *run) block(s string) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(r.opts.Out, "         %s\n", l)
	}
}

func (r *run) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (r *run) startRelay(ctx context.Context, listen, nextHop string) error {
	cmd := exec.Command(r.root.Bin("relayd"), "--root", string(r.root), "--listen", listen, "--next-hop", nextHop)
	logf, err := os.Create(filepath.Join(filepath.Dir(string(r.root)), "relayd.log"))
	if err != nil {
		logf, err = os.CreateTemp("", "relayd-*.log")
		if err != nil {
			return fmt.Errorf("relayd log: %w", err)
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start relayd: %w", err)
	}
	r.relayd = cmd
	r.done = make(chan error, 1)
	go func() { r.done <- cmd.Wait(); logf.Close() }()
	waitCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		if _, err := r.ctl.Status(waitCtx); err == nil {
			return nil
		}
		select {
		case err := <-r.done:
			r.relayd = nil
			return fmt.Errorf("relayd exited at start: %v (log %s)", err, logf.Name())
		case <-waitCtx.Done():
			return fmt.Errorf("relayd did not answer on its control socket (log %s)", logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopRelay shuts relayd down gracefully, then kills its process group if it lingers.
func (r *run) stopRelay() {
	if r.relayd == nil {
		return
	}
	cmd := r.relayd
	r.relayd = nil
	// After a live upgrade the relayd that serves is the started one's child, in its process
	// group: the group is told to stop, and is waited for until the control socket is gone.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	deadline := time.After(10 * time.Second)
	select {
	case <-r.done:
	case <-deadline:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
		return
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := r.ctl.Status(ctx)
		cancel()
		if err != nil {
			return
		}
		select {
		case <-deadline:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *run) tracking(ctx context.Context) (control.ComponentStatus, error) {
	st, err := r.ctl.Status(ctx)
	if err != nil {
		return control.ComponentStatus{}, err
	}
	c, ok := st.Component("tracking")
	if !ok {
		return c, errors.New("relayd reports no tracking component")
	}
	return c, nil
}

func (r *run) waitTracking(ctx context.Context, ok func(control.ComponentStatus) bool) (control.ComponentStatus, error) {
	for {
		c, err := r.tracking(ctx)
		if err == nil && ok(c) {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, fmt.Errorf("tracking: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// progress draws "sent, delivered, queued, crashes" on one line until stopped.
func (r *run) progress(ctx context.Context, acked func() int) (stop func()) {
	if !r.opts.Progress {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			line := fmt.Sprintf("  acknowledged %d  delivered %d", acked(), r.sink.Count())
			if st, err := r.ctl.Status(ctx); err == nil {
				line += fmt.Sprintf("  queued %d", st.QueueDepth)
				if c, ok := st.Component("tracking"); ok {
					line += fmt.Sprintf("  tracking %s %s, crashes %d", c.Version, c.Health, c.Crashes)
				}
			}
			r.outMu.Lock()
			fmt.Fprintf(r.opts.Out, "\r%-*s", r.lastLen, line)
			r.lastLen = len(line)
			r.outMu.Unlock()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			r.outMu.Lock()
			fmt.Fprintf(r.opts.Out, "\r%s\r", strings.Repeat(" ", r.lastLen))
			r.lastLen = 0
			r.outMu.Unlock()
		})
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
