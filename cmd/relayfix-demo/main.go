// Command relayfix-demo runs the whole relayfix story on a throwaway root and prints a summary:
// messages sent, delivered and lost; tracking records written and lost; plugin crashes before
// and after the hotfix; how long the live apply took. `make demo` builds everything and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"relayfix/internal/demo"
	"relayfix/internal/tableprint"
)

func main() {
	opts := demo.Options{Out: os.Stdout, Progress: tableprint.IsTerminal(os.Stdout)}
	fs := flag.NewFlagSet("relayfix-demo", flag.ContinueOnError)
	fs.StringVar(&opts.BinDir, "bin", "bin", "directory holding the hotfix binary")
	fs.StringVar(&opts.DistDir, "dist", "dist", "directory holding SP2.hfx, KB910618.hfx and demo.pub")
	fs.StringVar(&opts.Root, "root", "", "install root to use (default: a throwaway directory)")
	fs.IntVar(&opts.Messages, "messages", 3000, "messages to send")
	fs.Float64Var(&opts.Rate, "rate", 300, "messages per second (negative: as fast as relayd takes them)")
	fs.DurationVar(&opts.Phase, "phase", 2*time.Second, "how long each build carries load before the next step")
	fs.IntVar(&opts.Concurrency, "c", 8, "SMTP connections")
	fs.StringVar(&opts.PlotPath, "plot", "", "write a PNG of delivered msgs/s over time here")
	fs.StringVar(&opts.Timeline, "timeline", "", "write delivered msgs/s samples (CSV) here")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	sum, err := demo.Run(ctx, opts)
	stop()
	fmt.Printf(`
summary
  messages      sent %d, acknowledged %d, delivered %d, lost %d, duplicated %d
  tracking      records written %d, lost %d
  plugin        crashes before the hotfix %d, after it %d
  live apply    %v (rollback %v, second apply %v)
  SP3 live      relayd %s pid %d -> %s pid %d in %v; %d sessions, %d refused
  whole run     %v
`, sum.Sent, sum.Acked, sum.Delivered, sum.Lost, sum.Duplicates, sum.RecordsWritten, sum.RecordsLost,
		sum.CrashesBefore, sum.CrashesAfter, sum.ApplyTime.Round(1e6), sum.RollbackTime.Round(1e6),
		sum.ReapplyTime.Round(1e6), sum.SP3Versions[0], sum.SP3PIDs[0], sum.SP3Versions[1], sum.SP3PIDs[1],
		sum.SP3Time.Round(1e6), sum.SP3Sessions, sum.SP3Refused, sum.Elapsed.Round(1e6))
	if err != nil {
		fmt.Fprintln(os.Stderr, "relayfix-demo:", err)
		os.Exit(1)
	}
	if sum.Failed() {
		fmt.Fprintln(os.Stderr, "relayfix-demo: something was lost, duplicated or refused, or relayd did not hand over")
		os.Exit(1)
	}
}
