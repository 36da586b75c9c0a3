package peers

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/plot"
)

// The files Refresh writes under root.
const (
	CostPlot    = "cost-per-connection.png"
	LatencyPlot = "latency-vs-n.png"
	Table       = "peers.md"
)

// Refresh loads the results under root and writes the two plots and
// peers.md there.
func Refresh(root string) error {
	d, err := Load(root)
	if err != nil {
		return err
	}
	if err := costChart(d).WritePNG(filepath.Join(root, CostPlot)); err != nil {
		return err
	}
	if err := latencyChart(d).WritePNG(filepath.Join(root, LatencyPlot)); err != nil {
		return err
	}
	path := filepath.Join(root, Table)
	if err := os.WriteFile(path, []byte(d.Markdown(time.Now())), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// AfterRun is bench/run's hook: once it has written its results into
// out, it redraws the plots and peers.md there. A failure is logged, not
// returned: the results are written already.
func AfterRun(out string) {
	if err := Refresh(out); err != nil {
		log.Printf("plots: %v", err)
		return
	}
	log.Printf("plots: wrote %s, %s and %s", filepath.Join(out, CostPlot), filepath.Join(out, LatencyPlot), filepath.Join(out, Table))
}

// ns answers every N measured, increasing.
func (d Data) ns() []int {
	var out []int
	for _, p := range d.Points {
		if !slices.Contains(out, p.N) {
			out = append(out, p.N)
		}
	}
	slices.Sort(out)
	return out
}

func (d Data) xticks() []float64 {
	var out []float64
	for _, n := range d.ns() {
		out = append(out, float64(n))
	}
	return out
}

// costChart: RSS per idle connection against N, one line per server.
func costChart(d Data) plot.Chart {
	c := plot.Chart{Title: "RSS per idle connection (lower is better)", XLabel: "connections (N, log)", XLog: true,
		YLabel: "KiB per connection (log)", YLog: true, XTicks: d.xticks()}
	for i, s := range Servers {
		se := plot.Series{Name: s, Color: plot.Palette[i], Marker: plot.Marker(i)}
		for _, p := range d.series(s) {
			se.X, se.Y = append(se.X, float64(p.N)), append(se.Y, p.RSSPerConn/1024)
		}
		if len(se.X) > 0 {
			c.Series = append(c.Series, se)
		}
	}
	return c
}

// latencyChart: broadcast p50 (solid) and p99 (dashed) against N.
func latencyChart(d Data) plot.Chart {
	c := plot.Chart{Title: "One broadcast to all N: p50 solid, p99 dashed", XLabel: "connections (N, log)", XLog: true,
		YLabel: "ms, publish to receipt (log)", YLog: true, XTicks: d.xticks(),
		Width: 1200, Height: 760} // wide enough for two legend columns
	for i, s := range Servers {
		pts := d.series(s)
		if len(pts) == 0 {
			continue
		}
		p50 := plot.Series{Name: s + " p50", Color: plot.Palette[i], Marker: plot.Marker(i)}
		p99 := plot.Series{Name: s + " p99", Color: plot.Palette[i], Marker: plot.Marker(i), Dashed: true}
		for _, p := range pts {
			p50.X, p50.Y = append(p50.X, float64(p.N)), append(p50.Y, p.P50)
			p99.X, p99.Y = append(p99.X, float64(p.N)), append(p99.Y, p.P99)
		}
		c.Series = append(c.Series, p50, p99)
	}
	return c
}

// metric is one row kind of the table.
type metric struct {
	name string
	val  func(Point) float64
	fmt  func(float64) string
}

var metrics = []metric{
	{"RSS / idle conn", func(p Point) float64 { return p.RSSPerConn }, func(v float64) string { return fmt.Sprintf("%.1f KB", v/1000) }},
	{"goroutines", func(p Point) float64 { return float64(p.Goroutines) }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	{"broadcast p50", func(p Point) float64 { return p.P50 }, ms},
	{"broadcast p99", func(p Point) float64 { return p.P99 }, ms},
	{"time to last", func(p Point) float64 { return p.Last }, ms},
	{"CPU / delivery", func(p Point) float64 { return p.CPUPerDelUS }, func(v float64) string { return fmt.Sprintf("%.1f µs", v) }},
}

func ms(v float64) string { return fmt.Sprintf("%.1f ms", v) }

// ratios are the table's comparison columns: a ÷ b.
var ratios = []struct{ a, b, head string }{
	{Gateway, Baseline, "push_gateway ÷ baseline"},
	{Gateway, SocketIO, "push_gateway ÷ socket.io"},
	{GatewaySIO, SocketIO, "pg Socket.IO ÷ socket.io"},
	{GatewaySIO, Baseline, "pg Socket.IO ÷ baseline"},
}

// Markdown renders peers.md: one table, a row per N and measure, a column
// per server and per ratio (below 1: push_gateway costs less).
func (d Data) Markdown(now time.Time) string {
	var b strings.Builder
	b.WriteString("# push_gateway beside its peers\n\n")
	fmt.Fprintf(&b, "Written %s by `go run ./bench/plots` (also run at the end of `bench/run`) from:\n\n",
		now.UTC().Format(time.RFC3339))
	for _, s := range d.Sources {
		fmt.Fprintf(&b, "- `%s`: `%s`, started %s, on %s\n", s.File, s.Command, s.Started, s.Machine)
	}
	b.WriteString("\nAll four servers were measured in that one run, one after the other, with the same load generator." +
		" Ratios are push_gateway's figure ÷ the peer's: below 1, push_gateway costs less." +
		" Figures are medians over the runs of the sweep (latencies: of the medians over the measured broadcasts);" +
		" — means not measured at that N (goroutines: node has none). results.md has every table (burst, reconnect storm, steady load).\n\n")
	b.WriteString("| N | measure |")
	for _, s := range Servers {
		fmt.Fprintf(&b, " %s |", s)
	}
	for _, r := range ratios {
		fmt.Fprintf(&b, " %s |", r.head)
	}
	b.WriteString("\n| ---: | --- |" + strings.Repeat(" ---: |", len(Servers)+len(ratios)) + "\n")
	for _, n := range d.ns() {
		for _, m := range metrics {
			fmt.Fprintf(&b, "| %d | %s |", n, m.name)
			for _, s := range Servers {
				p, ok := d.find(s, n)
				if v := m.val(p); ok && v > 0 {
					fmt.Fprintf(&b, " %s |", m.fmt(v))
				} else {
					b.WriteString(" — |")
				}
			}
			for _, r := range ratios {
				pa, okA := d.find(r.a, n)
				pb, okB := d.find(r.b, n)
				if va, vb := m.val(pa), m.val(pb); okA && okB && va > 0 && vb > 0 {
					fmt.Fprintf(&b, " %s |", ratio(va/vb))
				} else {
					b.WriteString(" — |")
				}
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "\n![RSS per idle connection against N](%s)\n\n![Broadcast latency against N](%s)\n", CostPlot, LatencyPlot)
	return b.String()
}

// ratio formats r with two significant decimals, small ones in full.
func ratio(r float64) string {
	if r < 0.01 {
		return fmt.Sprintf("%.4f", r)
	}
	return fmt.Sprintf("%.2f", r)
}
