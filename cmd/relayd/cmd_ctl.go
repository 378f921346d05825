package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"relayfix/internal/exitcode"
	"relayfix/internal/tableprint"
	"relayfix/relay/control"
)

// ctlTimeout bounds a control request that has no reason to take long.
const ctlTimeout = 10 * time.Second

func newCmdCtl(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Talk to a running relayd over its control socket",
		Long: `ctl sends one request to the relayd running on the install root, over its control
socket ROOT/run/relayd.sock, and prints the answer (as JSON with --json).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("ctl: unknown command %q", args[0])
			}
			return exitcode.Usagef("ctl: a command is needed (status, queue, flush, restart-component, tracking, shutdown)")
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	cmd.PersistentFlags().BoolVar(&o.json, "json", false, "print machine-readable JSON on stdout")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "status",
			Short: "Show uptime, queue depth, counters and components",
			Args:  noArgs,
			Long: `status shows the running relay and its components. A component that failed twice or
more within its failure window is crash-looping, not healthy. When the installed-files
database records another version than the one running (hotfix replaced the file and the
old build still runs), the line says "restart pending" and --json gives the installed
version as "installed".`,
			RunE: func(cmd *cobra.Command, _ []string) error {
				req := control.Request{Op: control.OpStatus}
				if o.json {
					return ctlJSON(cmd.Context(), o, req, ctlTimeout, func(r *control.Response) any {
						if r.Status != nil {
							markRestartPending(o.Root(), r.Status)
						}
						return r
					})
				}
				return ctlDo(cmd.Context(), o, req, ctlTimeout, func(w io.Writer, r *control.Response) error {
					if r.Status != nil {
						markRestartPending(o.Root(), r.Status)
					}
					return printStatus(w, r)
				})
			},
		},
		newCmdCtlQueue(o),
		&cobra.Command{
			Use:   "flush",
			Short: "Retry every deferred message now",
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return ctlDo(cmd.Context(), o, control.Request{Op: control.OpFlush}, ctlTimeout, func(w io.Writer, r *control.Response) error {
					_, err := fmt.Fprintf(w, "flushed; %d messages queued\n", r.Status.QueueDepth)
					return err
				})
			},
		},
		&cobra.Command{
			Use:   "restart-component NAME",
			Short: "Start the installed build of a component and switch over to it",
			Args:  exactArgs(1, "NAME"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return ctlDo(cmd.Context(), o, control.Request{Op: control.OpRestartComponent, Name: args[0]}, 3*time.Minute, printComponent)
			},
		},
		&cobra.Command{
			Use:   "tracking on|off",
			Short: "Switch message tracking on or off",
			Args:  exactArgs(1, "on|off"),
			RunE: func(cmd *cobra.Command, args []string) error {
				var on bool
				switch args[0] {
				case "on":
					on = true
				case "off":
				default:
					return exitcode.Usagef("tracking: want on or off, not %q", args[0])
				}
				return ctlDo(cmd.Context(), o, control.Request{Op: control.OpSetComponent, Name: "tracking", Enabled: &on}, time.Minute, printComponent)
			},
		},
		&cobra.Command{
			Use:   "shutdown",
			Short: "Stop the relay gracefully",
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return ctlDo(cmd.Context(), o, control.Request{Op: control.OpShutdown}, ctlTimeout, func(w io.Writer, _ *control.Response) error {
					_, err := fmt.Fprintln(w, "relayd is shutting down")
					return err
				})
			},
		},
	)
	return cmd
}

func newCmdCtlQueue(o *rootOptions) *cobra.Command {
	var limit int
	var utc bool
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "List the queued messages",
		Long: `queue lists the queued messages. Times are local, with the zone of each instant
(--utc: in UTC). With --json the answer is a JSON array, [] when the queue is empty.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := control.Request{Op: control.OpQueue, Limit: limit}
			if o.json {
				return ctlJSON(cmd.Context(), o, req, time.Minute, func(r *control.Response) any {
					if r.Queue == nil {
						return []control.QueueEntry{}
					}
					return r.Queue
				})
			}
			return ctlDo(cmd.Context(), o, req, time.Minute, func(w io.Writer, r *control.Response) error {
				return printQueue(w, r, utc)
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "list at most this many messages (0: all)")
	cmd.Flags().BoolVar(&utc, "utc", false, "show times in UTC")
	return cmd
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return exitcode.Usagef("%s: unexpected argument %q", cmd.Name(), args[0])
	}
	return nil
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return exitcode.Usagef("%s: want %s", cmd.Name(), what)
		}
		return nil
	}
}

// ctlDo sends req and prints the response as JSON or with print.
func ctlDo(ctx context.Context, o *rootOptions, req control.Request, timeout time.Duration, print func(io.Writer, *control.Response) error) error {
	if o.json {
		return ctlJSON(ctx, o, req, timeout, func(r *control.Response) any { return r })
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := control.Client{Path: o.Root().ControlSocket()}.Do(ctx, req)
	if err != nil {
		return err
	}
	return print(o.stdout, resp)
}

// ctlJSON sends req and prints what of the response answers it as JSON. A failure is printed
// as one object, {"error": "..."}, on stdout as well: a script reads one shape either way.
func ctlJSON(ctx context.Context, o *rootOptions, req control.Request, timeout time.Duration, answer func(*control.Response) any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	resp, err := control.Client{Path: o.Root().ControlSocket()}.Do(ctx, req)
	if err != nil {
		printJSONError(o.stdout, err)
		o.jsonErr = true
		return err
	}
	return enc.Encode(answer(resp))
}

// printJSONError prints err as the one shape every --json failure has: {"error": "..."}.
func printJSONError(w io.Writer, err error) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(struct {
		Error string `json:"error"`
	}{err.Error()})
}

func printStatus(w io.Writer, r *control.Response) error {
	st := r.Status
	if st == nil {
		return fmt.Errorf("status: empty reply")
	}
	fmt.Fprintf(w, "version:     %s%s\n", st.Version, pendingNote(st.Installed))
	fmt.Fprintf(w, "pid:         %d\n", st.PID)
	fmt.Fprintf(w, "uptime:      %s\n", (time.Duration(st.Uptime) * time.Second).String())
	fmt.Fprintf(w, "listen:      %s\n", st.Listen)
	fmt.Fprintf(w, "next hop:    %s\n", st.NextHop)
	fmt.Fprintf(w, "queue depth: %d\n", st.QueueDepth)
	keys := make([]string, 0, len(st.Counters))
	for k := range st.Counters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.FormatUint(st.Counters[k], 10))
	}
	fmt.Fprintf(w, "counters:    %s\n", strings.Join(parts, " "))
	if len(st.Components) == 0 {
		_, err := fmt.Fprintln(w, "components:  none")
		return err
	}
	t := tableprint.New(w, "Component", "Version", "Health", "Enabled", "PID", "Crashes", "Pending", "Detail")
	for _, c := range st.Components {
		t.Append(c.Name, c.Version+pendingNote(c.Installed), c.Health, strconv.FormatBool(c.Enabled), strconv.Itoa(c.PID), strconv.Itoa(c.Crashes), strconv.Itoa(c.Pending), c.Detail)
	}
	if err := t.Render(); err != nil {
		return err
	}
	return printCrashSignatures(w, st.Components)
}

// pendingNote is what follows a running version whose installed file is another.
func pendingNote(installed string) string {
	if installed == "" {
		return ""
	}
	return " (restart pending: " + installed + " installed)"
}

// printCrashSignatures lists the recorded crash signatures, one line each, after the table.
func printCrashSignatures(w io.Writer, cs []control.ComponentStatus) error {
	for _, c := range cs {
		for _, s := range c.CrashSignatures {
			if _, err := fmt.Fprintf(w, "crash: %s %s %s: %d times, first %s, last %s UTC: %s\n", c.Name, s.Program, s.Build, s.Count,
				s.First.UTC().Format(time.DateTime), s.Last.UTC().Format(time.DateTime), s.Signature); err != nil {
				return err
			}
		}
	}
	return nil
}

func printComponent(w io.Writer, r *control.Response) error {
	c := r.Component
	if c == nil {
		return fmt.Errorf("empty reply")
	}
	_, err := fmt.Fprintf(w, "%s: version %s, %s, enabled=%t, pid %d\n", c.Name, c.Version, c.Health, c.Enabled, c.PID)
	return err
}

// printQueue lists the queue; times are local with each instant's own zone (EST or EDT as the
// date has it), or UTC.
func printQueue(w io.Writer, r *control.Response, utc bool) error {
	zone := time.Local
	if utc {
		zone = time.UTC
	}
	const layout = "2006-01-02 15:04:05 MST"
	t := tableprint.New(w, "Queue ID", "Sender", "Recipients", "Size", "Received", "Attempts", "Next try", "Last error")
	for _, e := range r.Queue {
		next := ""
		if !e.NextTry.IsZero() {
			next = e.NextTry.In(zone).Format(layout)
		}
		t.Append(e.QueueID, "<"+e.Sender+">", strings.Join(e.Recipients, ","), strconv.FormatInt(e.Size, 10),
			e.Received.In(zone).Format(layout), strconv.Itoa(e.Attempts), next, e.LastError)
	}
	return t.Render()
}
