package swapbench

import (
	"fmt"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Plot draws each result's acknowledged msgs/s per bucket, as a fraction of its steady state,
// with the time axis aligned on the swap, so that dips of different relays compare.
func Plot(path string, results []Result) error {
	p := plot.New()
	p.Title.Text = "Acknowledged msgs/s across a swap of the relay's binary (same load)"
	p.X.Label.Text = "seconds since the swap began"
	p.Y.Label.Text = "% of steady state (250 ms buckets)"
	palette := []color.Color{
		color.RGBA{R: 200, A: 255}, color.RGBA{G: 140, A: 255}, color.RGBA{B: 220, A: 255},
		color.RGBA{R: 150, B: 150, A: 255}, color.RGBA{R: 200, G: 120, A: 255},
	}
	for i, r := range results {
		pts := make(plotter.XYs, 0, len(r.Buckets))
		for b, v := range r.Buckets[:max(len(r.Buckets)-1, 0)] {
			x := (time.Duration(b)*Bucket - r.SwapAt).Seconds()
			pts = append(pts, plotter.XY{X: x, Y: 100 * v / r.Steady})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", r.Label, err)
		}
		line.Color = palette[i%len(palette)]
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(r.Label, line)
	}
	goal, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: 80}, {X: p.X.Max, Y: 80}})
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	goal.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(goal, plotter.NewGrid())
	p.Legend.Add("goal: 80% of steady state", goal)
	p.Legend.Top = false
	p.Legend.Left = true
	p.Y.Min = 0
	if err := p.Save(10*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	return nil
}
