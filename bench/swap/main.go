// Command swap measures one swap of a relay's binary under load (internal/swapbench), or draws
// the plot of several. bench/swap.sh runs it for Postfix and relayd side by side:
//
//	go run ./bench/swap -label L -addr 127.0.0.1:P -sink 127.0.0.1:S -swap 'CMD' -out L.json
//	go run ./bench/swap -plot out.png a.json b.json ...
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"relayfix/internal/smtpload"
	"relayfix/internal/swapbench"
)

func main() {
	var o swapbench.Options
	var sink, out, plotPath string
	flag.StringVar(&o.Label, "label", "", "name of the swap")
	flag.StringVar(&o.Addr, "addr", "", "the relay's SMTP address")
	flag.StringVar(&sink, "sink", "", "listen here as the relay's next hop")
	flag.StringVar(&o.Swap, "swap", "", "shell command that swaps the relay")
	flag.StringVar(&out, "out", "", "write the result as JSON here")
	flag.StringVar(&plotPath, "plot", "", "draw the JSON results given as arguments to this PNG")
	flag.Parse()
	if err := run(o, sink, out, plotPath, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "swap:", err)
		os.Exit(1)
	}
}

func run(o swapbench.Options, sink, out, plotPath string, files []string) error {
	if plotPath != "" {
		var rs []swapbench.Result
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			var r swapbench.Result
			if err := json.Unmarshal(b, &r); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			rs = append(rs, r)
		}
		return swapbench.Plot(plotPath, rs)
	}
	s, err := smtpload.NewSink(sink)
	if err != nil {
		return err
	}
	defer s.Close()
	o.Sink = s
	r, err := swapbench.Measure(context.Background(), o)
	if err != nil {
		return err
	}
	fmt.Println(r)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
