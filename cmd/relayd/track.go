package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"relayfix/internal/exitcode"
	"relayfix/internal/flagfile"
	"relayfix/internal/layout"
	"relayfix/internal/tableprint"
	"relayfix/packages/installdb"
	"relayfix/relay"
	"relayfix/relay/trackhost"
	"relayfix/relay/tracklog"
)

// trackingOptions are the daemon's --tracking* flags (also settable in ROOT/relayd.json under the
// same names).
type trackingOptions struct {
	enabled         bool
	binary          string
	unverified      bool
	restartInitial  time.Duration
	restartMax      time.Duration
	escalate        string
	escalateAfter   int
	escalateWindow  time.Duration
	escalateProgram string
	hotfix          string
	retain          time.Duration
}

// DefaultTrackRetain is how long tracking logs are kept: 30 days, as Exchange kept its message
// tracking logs.
const DefaultTrackRetain = 30 * 24 * time.Hour

// retainEvery is how often relayd looks for tracking logs past the retention window.
const retainEvery = time.Hour

// addTracking gives the daemon its tracking flags, wires the tracking host into the relay, and
// adds the `track` search command.
func addTracking(cmd *cobra.Command, o *rootOptions) {
	t := &trackingOptions{}
	def := trackhost.DefaultConfig()
	f := cmd.Flags()
	f.BoolVar(&t.enabled, "tracking", def.Enabled, "run the message-tracking plugin (ROOT/bin/msgtrack)")
	f.StringVar(&t.binary, "track-binary", "", "tracking plugin binary (default ROOT/bin/msgtrack)")
	f.BoolVar(&t.unverified, "track-unverified", false, "run a tracking plugin the installed-files database does not list (development roots)")
	f.DurationVar(&t.restartInitial, "track-restart-delay", time.Duration(def.Restart.InitialMS)*time.Millisecond, "delay before restarting a crashed tracking plugin (doubles per crash)")
	f.DurationVar(&t.restartMax, "track-restart-max", time.Duration(def.Restart.MaxMS)*time.Millisecond, "longest delay before restarting the tracking plugin")
	f.StringVar(&t.escalate, "track-escalate", def.Escalation.Action, "after repeated tracking crashes: none, run (--track-escalate-program) or rollback (hotfix rollback msgtrack)")
	f.IntVar(&t.escalateAfter, "track-escalate-after", def.Escalation.After, "crashes within --track-escalate-window that trigger the escalation")
	f.DurationVar(&t.escalateWindow, "track-escalate-window", time.Duration(def.Escalation.WindowMS)*time.Millisecond, "window in which tracking crashes are counted")
	f.StringVar(&t.escalateProgram, "track-escalate-program", "", "program run by --track-escalate=run; the failure is described in RELAYFIX_* variables")
	f.StringVar(&t.hotfix, "track-hotfix", "", "hotfix binary run by --track-escalate=rollback (default ROOT/bin/hotfix; relayd refuses to start when it is missing: copy hotfix there or name it here)")
	f.DurationVar(&t.retain, "track-retain", DefaultTrackRetain, "keep tracking logs this long: relayd removes older day files at start and hourly (0 keeps them all)")
	o.wiring = append(o.wiring, t.wire)
	o.checks = append(o.checks, func(flags *pflag.FlagSet) error { return t.check(flags, o.Root()) })
	cmd.AddCommand(newCmdTrack(o))
}

// check refuses tracking settings out of range (a usage error) and an escalation whose program
// is not there to run (a failure of the install: it would fail at each escalation).
func (t *trackingOptions) check(flags *pflag.FlagSet, root layout.Root) error {
	s := &settings{flags: flags}
	s.positive("track-restart-delay", t.restartInitial)
	s.notBelow("track-restart-max", t.restartMax, "track-restart-delay", t.restartInitial)
	s.atLeast("track-escalate-after", int64(t.escalateAfter), 1)
	s.positive("track-escalate-window", t.escalateWindow)
	if t.retain < 0 {
		s.fail("track-retain", "must not be negative, not %s", t.retain)
	}
	if s.err != nil {
		return s.err
	}
	esc := t.config(root).Escalation
	if err := esc.Validate(); err != nil {
		return &exitcode.UsageError{Err: fmt.Errorf("%s: %w", flagfile.Name(flags, "track-escalate"), err)}
	}
	if !t.enabled {
		return nil
	}
	return esc.Check(root)
}

func (t *trackingOptions) config(root layout.Root) trackhost.Config {
	return trackhost.Config{
		Enabled:     t.enabled,
		Binary:      t.binary,
		Unverified:  t.unverified,
		ExpectedSum: installedSum(root),
		Restart:     trackhost.RestartPolicy{InitialMS: int(t.restartInitial.Milliseconds()), MaxMS: int(t.restartMax.Milliseconds())},
		Escalation: trackhost.Escalation{
			After: t.escalateAfter, WindowMS: int(t.escalateWindow.Milliseconds()), Action: t.escalate,
			Program: t.escalateProgram, Hotfix: t.hotfix,
		},
	}
}

// wire attaches the tracking host to the relay. The host runs on a context of its own so that it
// outlives the relay's drain (events of the last deliveries are still journaled) and stops when
// the relay has stopped.
func (t *trackingOptions) wire(ctx context.Context, o *rootOptions, r *relay.Relay) (func(), error) {
	cfg := t.config(o.Root())
	h, err := trackhost.New(trackhost.Options{
		Root:   o.Root(),
		Config: cfg,
		Source: r.Messages(),
		Logger: slog.New(slog.NewTextHandler(o.stderr, nil)).With("component", trackhost.ComponentName),
	})
	if err != nil {
		return nil, err
	}
	r.SetRecorder(h)
	r.AddComponent(h)
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	// relayd, not the plugin, prunes the logs: it runs all the time, while the plugin may be
	// switched off, crash-looping, or an older build that knows nothing of retention.
	retained := make(chan struct{})
	go func() {
		defer close(retained)
		tracklog.Retain(hctx, o.Root().TrackingLog(), t.retain, retainEvery, slog.New(slog.NewTextHandler(o.stderr, nil)))
	}()
	return func() {
		cancel()
		<-retained
		if err := <-done; err != nil {
			fmt.Fprintf(o.stderr, "relayd: tracking: %v\n", err)
		}
	}, nil
}

// installedSum reads the checksum of a file from root's installed-files database, afresh at each
// plugin start: hotfix may have installed a new build since the last.
func installedSum(root layout.Root) trackhost.ExpectedSumFunc {
	return func(rel string) ([]byte, bool, error) { return installdb.Checksum(root, rel) }
}

// trackOptions are the flags of `relayd track`.
type trackOptions struct {
	root         *rootOptions
	q            tracklog.Query
	since, until string
	now          func() time.Time
}

func newCmdTrack(o *rootOptions) *cobra.Command {
	opts := &trackOptions{root: o, now: time.Now}
	cmd := &cobra.Command{
		Use:   "track (--message-id ID | --sender ADDR | --recipient ADDR | --queue-id ID | --since TIME | --until TIME)",
		Short: "Show a message's history from the tracking logs",
		Long: `track reads the message tracking logs in ROOT/log/tracking directly (no running relay is
needed) and prints every record that matches, in the order the events happened: received
(1019), queued for remote delivery (1020), delivered (1031), deferred (1032), failed (1033),
non-delivery report (1030), expired (1034). Several selectors must all match. Times are UTC.

--since and --until bound the events' times (since inclusive, until exclusive; a bare date
for --until includes that day) and track then reads only the day files that can hold them:
the files of those days, and one day after --until for records the plugin wrote late.
--limit keeps the first N records.

Exits 1 when no record matches.`,
		Example: `  relayd track --root /var/lib/relayfix --message-id '<1234@example.com>'
  relayd track --sender alice@example.com --json
  relayd track --since 2026-11-29 --until 2026-11-30 --recipient bob@example.com
  relayd track --since 2h --limit 50`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTrack(opts) },
	}
	f := cmd.Flags()
	f.StringVar(&opts.q.MessageID, "message-id", "", "Message-ID, with or without angle brackets")
	f.StringVar(&opts.q.Sender, "sender", "", "envelope sender address")
	f.StringVar(&opts.q.Recipient, "recipient", "", "recipient address")
	f.StringVar(&opts.q.QueueID, "queue-id", "", "the relay's queue id")
	f.StringVar(&opts.since, "since", "", "only events at or after TIME: RFC 3339, YYYY-MM-DD, \"YYYY-MM-DD hh:mm\" (UTC) or a duration ago (36h)")
	f.StringVar(&opts.until, "until", "", "only events before TIME (a bare date includes that day)")
	f.IntVar(&opts.q.Limit, "limit", 0, "print at most N records, the earliest first (0: all)")
	f.BoolVar(&o.json, "json", false, "print the records as a JSON array")
	return cmd
}

// errNoRecords is returned when a search matches nothing.
var errNoRecords = errors.New("no tracking records match")

func runTrack(opts *trackOptions) error {
	now := opts.now()
	var err error
	if opts.since != "" {
		if opts.q.Since, err = tracklog.ParseBound(opts.since, now, false); err != nil {
			return exitcode.Usagef("track: --since: %v", err)
		}
	}
	if opts.until != "" {
		if opts.q.Until, err = tracklog.ParseBound(opts.until, now, true); err != nil {
			return exitcode.Usagef("track: --until: %v", err)
		}
	}
	if opts.q.Limit < 0 {
		return exitcode.Usagef("track: --limit %d: must not be negative", opts.q.Limit)
	}
	if opts.q.Empty() {
		return exitcode.Usagef("track: give --message-id, --sender, --recipient, --queue-id, --since or --until")
	}
	recs, err := tracklog.Search(opts.root.Root().TrackingLog(), opts.q)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return errNoRecords
	}
	w := opts.root.stdout
	if opts.root.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(recs)
	}
	t := tableprint.New(w, "DATE", "TIME (UTC)", "EVENT", "QUEUE ID", "SENDER", "RECIPIENT", "PARTNER", "STATUS", "MESSAGE ID", "SIZE")
	for _, r := range recs {
		r.Time = r.Time.UTC() // the header names the zone
		t.Append(r.Time.Format("2006-01-02"), r.Time.Format("15:04:05.000"),
			strconv.Itoa(int(r.EventID))+" "+tracklog.EventName(r.EventID),
			r.QueueID, r.Sender, r.Recipient, r.PartnerName, r.ReportStatus, r.MessageID, strconv.FormatInt(r.TotalBytes, 10))
	}
	return t.Render()
}
