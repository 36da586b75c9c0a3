package plot

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"path/filepath"
	"testing"
)

// sample is a chart like the benchmarks': a log y axis, two series.
func sample() Chart {
	return Chart{
		Title: "RSS per idle connection", XLabel: "connections", YLabel: "KiB",
		YLog: true, XTicks: []float64{1000, 5000, 10000, 19000},
		Series: []Series{
			{Name: "push_gateway", X: []float64{1000, 5000, 10000, 19000}, Y: []float64{5, 1.8, 1.5, 1.3}, Auto: true},
			{Name: "baseline", X: []float64{1000, 5000, 10000, 19000}, Y: []float64{36, 25, 21, 20}, Auto: true, Dashed: true},
		},
	}
}

// count answers how many pixels of img are exactly c.
func count(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			if uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(bl>>8) == c.B && uint8(a>>8) == c.A {
				n++
			}
		}
	}
	return n
}

func TestRender(t *testing.T) {
	tests := []struct {
		name          string
		chart         Chart
		width, height int
	}{
		{name: "default size", chart: sample(), width: 960, height: 600},
		{name: "given size, linear axes", chart: func() Chart {
			c := sample()
			c.YLog, c.Width, c.Height = false, 640, 400
			return c
		}(), width: 640, height: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.chart.Encode()
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("decoding what was encoded: %v", err)
			}
			if got := img.Bounds().Size(); got != image.Pt(tt.width, tt.height) {
				t.Fatalf("size %v, want %dx%d", got, tt.width, tt.height)
			}
			total := tt.width * tt.height
			if bg := count(img, white); bg < total/2 || bg == total {
				t.Errorf("%d of %d pixels are background: want a mostly white, not blank, picture", bg, total)
			}
			// Each series' colour is drawn (line, markers, legend), and
			// text in ink.
			for i := range tt.chart.Series {
				if n := count(img, Palette[i]); n < 200 {
					t.Errorf("series %d: %d pixels of its colour, want ≥ 200", i, n)
				}
			}
			if n := count(img, ink); n < 500 {
				t.Errorf("%d pixels of text, want ≥ 500", n)
			}
		})
	}
}

// TestRenderPlacesPoints checks the geometry robustly: the higher series
// is drawn above the lower one, and the first point left of the last.
func TestRenderPlacesPoints(t *testing.T) {
	img, err := sample().Render()
	if err != nil {
		t.Fatal(err)
	}
	// The legend sits below the plot area: only the upper part counts.
	centroid := func(c color.RGBA, legendY int) (float64, float64) {
		var sx, sy, n float64
		b := img.Bounds()
		for y := b.Min.Y; y < legendY; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if img.RGBAAt(x, y) == c {
					sx, sy, n = sx+float64(x), sy+float64(y), n+1
				}
			}
		}
		return sx / n, sy / n
	}
	lowX, lowY := centroid(Palette[0], 420)
	_, highY := centroid(Palette[1], 420)
	if !(highY < lowY) {
		t.Errorf("baseline's pixels centre at y=%.0f, push_gateway's at y=%.0f: want the larger values higher", highY, lowY)
	}
	// push_gateway falls from 5 to 1.3: its pixels lean to the lower right
	// of its first point, so they centre right of the plot's left edge.
	if lowX < 150 {
		t.Errorf("push_gateway's pixels centre at x=%.0f: want them spread across the plot", lowX)
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name  string
		chart Chart
	}{
		{name: "no series", chart: Chart{}},
		{name: "only non-positive values on a log axis", chart: Chart{YLog: true, Series: []Series{{X: []float64{1, 2}, Y: []float64{0, -1}}}}},
		{name: "only NaN", chart: Chart{Series: []Series{{X: []float64{math.NaN()}, Y: []float64{1}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.chart.Render(); !errors.Is(err, ErrNoData) {
				t.Errorf("err = %v, want ErrNoData", err)
			}
		})
	}
	if err := sample().WritePNG(filepath.Join(t.TempDir(), "no", "such", "dir.png")); err == nil {
		t.Error("writing into a missing directory: want an error")
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		name string
		s    scale
		want []float64
	}{
		{name: "linear", s: scale{lo: 0, hi: 10}, want: []float64{0, 2, 4, 6, 8, 10}},
		{name: "log, few decades", s: scale{lo: 0.9, hi: 60, log: true}, want: []float64{1, 2, 5, 10, 20, 50}},
		{name: "log, many decades", s: scale{lo: 0.5, hi: 2e5, log: true}, want: []float64{1, 10, 100, 1000, 1e4, 1e5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.ticks()
			if len(got) != len(tt.want) {
				t.Fatalf("ticks %v, want %v", got, tt.want)
			}
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-9*math.Abs(tt.want[i]) {
					t.Fatalf("ticks %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestCompact(t *testing.T) {
	tests := []struct {
		name string
		v    float64
		want string
	}{
		{name: "thousands", v: 19000, want: "19k"},
		{name: "millions", v: 1.5e6, want: "1.5M"},
		{name: "fraction", v: 0.25, want: "0.25"},
		{name: "integer", v: 5, want: "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compact(tt.v); got != tt.want {
				t.Errorf("Compact(%v) = %q, want %q", tt.v, got, tt.want)
			}
		})
	}
}
