package demo

import (
	"fmt"
	"image/color"
	"os"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// bucket is the width of one throughput sample.
const bucket = 250 * time.Millisecond

// writeTimeline turns arrival times at the next hop into delivered msgs/s per bucket, and writes
// them as CSV and as a PNG plot with the run's marks (crash, apply, rollback) drawn in.
func (r *run) writeTimeline(arrivals []time.Time) error {
	if len(arrivals) == 0 {
		return fmt.Errorf("timeline: nothing was delivered")
	}
	// The last bucket is cut short by the end of the run: leave it out rather than draw a dip.
	end := arrivals[len(arrivals)-1].Sub(r.start)
	n := max(int(end/bucket), 1)
	counts := make([]int, n)
	for _, t := range arrivals {
		if i := int(t.Sub(r.start) / bucket); i < n {
			counts[i]++
		}
	}
	pts := make(plotter.XYs, n)
	var csv strings.Builder
	csv.WriteString("seconds,delivered_per_second\n")
	for i, c := range counts {
		x := (time.Duration(i) * bucket).Seconds()
		y := float64(c) / bucket.Seconds()
		pts[i] = plotter.XY{X: x, Y: y}
		fmt.Fprintf(&csv, "%.2f,%.0f\n", x, y)
	}
	r.mu.Lock()
	marks := append([]Mark(nil), r.marks...)
	r.mu.Unlock()
	for _, m := range marks {
		fmt.Fprintf(&csv, "# %.2f %s\n", m.At.Seconds(), m.Label)
	}
	if r.opts.Timeline != "" {
		if err := os.WriteFile(r.opts.Timeline, []byte(csv.String()), 0o644); err != nil {
			return fmt.Errorf("write timeline: %w", err)
		}
	}
	if r.opts.PlotPath == "" {
		return nil
	}
	p := plot.New()
	p.Title.Text = "relayfix: delivered msgs/s across a live KB910618 apply"
	p.X.Label.Text = "seconds since start"
	p.Y.Label.Text = "delivered msgs/s (250 ms buckets)"
	line, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	p.Add(line, plotter.NewGrid())
	ymax := 0.0
	for _, pt := range pts {
		ymax = max(ymax, pt.Y)
	}
	for i, m := range marks {
		// Stagger the labels so that marks close together stay readable.
		top := ymax * (1.12 - 0.06*float64(i%3))
		v, err := plotter.NewLine(plotter.XYs{{X: m.At.Seconds(), Y: 0}, {X: m.At.Seconds(), Y: top}})
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		v.Color = color.RGBA{R: 200, A: 255}
		v.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(v)
		lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: m.At.Seconds(), Y: top}}, Labels: []string{m.Label}})
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		p.Add(lbl)
	}
	if err := p.Save(10*vg.Inch, 5*vg.Inch, r.opts.PlotPath); err != nil {
		return fmt.Errorf("save plot %s: %w", r.opts.PlotPath, err)
	}
	return nil
}
