// Package plot draws the benchmark's line charts as PNG on the standard
// library alone: axes with ticks on a linear or log scale, several series
// in distinct colours and markers, and a legend, with labels in a built-in
// 5x7 bitmap font. It knows nothing of the benchmarks; bench/internal/peers
// decides what is drawn.
package plot

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
)

// ErrNoData is returned for a chart without a single drawable point.
var ErrNoData = errors.New("plot: no data to draw")

// Marker is the shape drawn at each point of a series.
type Marker int

// The markers, in the order series get them by default.
const (
	Circle Marker = iota
	Square
	Triangle
	Diamond
	Cross
	numMarkers
)

// Series is one line. X and Y have the same length; points with a
// non-finite value (or ≤ 0 on a log axis) are skipped and break the line.
type Series struct {
	Name   string
	X, Y   []float64
	Color  color.RGBA // zero: the palette's colour for the series' index
	Marker Marker     // used as given; Auto picks the index's marker
	Auto   bool       // pick Color and Marker from the series' index
	Dashed bool
}

// Chart is one picture.
type Chart struct {
	Title          string
	XLabel, YLabel string
	XLog, YLog     bool
	XTicks         []float64            // explicit x ticks; nil: chosen from the range
	TickLabel      func(float64) string // nil: Compact
	Width, Height  int                  // zero: 960 × 600
	Series         []Series
}

// Palette holds distinct colours (colour-blind-safe, Okabe–Ito order).
var Palette = []color.RGBA{
	{0, 114, 178, 255},   // blue
	{213, 94, 0, 255},    // vermillion
	{0, 158, 115, 255},   // bluish green
	{204, 121, 167, 255}, // reddish purple
	{230, 159, 0, 255},   // orange
	{86, 180, 233, 255},  // sky blue
	{0, 0, 0, 255},       // black
}

var (
	white     = color.RGBA{255, 255, 255, 255}
	ink       = color.RGBA{33, 33, 33, 255}
	gridInk   = color.RGBA{225, 225, 225, 255}
	frameInk  = color.RGBA{120, 120, 120, 255}
	textScale = 2
)

// Render draws the chart.
func (c Chart) Render() (*image.RGBA, error) {
	w, h := c.Width, c.Height
	if w == 0 {
		w = 960
	}
	if h == 0 {
		h = 600
	}
	xs, ys, err := c.scales()
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)

	label := c.TickLabel
	if label == nil {
		label = Compact
	}
	xt := c.XTicks
	if xt == nil {
		xt = xs.ticks()
	}
	yt := ys.ticks()

	// The plot area: room on the left for the y tick labels and label,
	// below for the x ticks, the x label and the legend, which flows in
	// rows of as many columns as fit (so a p50/p99 pair shares a row).
	lh := textHeight(textScale)
	yTickW := 0
	for _, v := range yt {
		yTickW = max(yTickW, textWidth(label(v), textScale))
	}
	itemW := 0
	for _, s := range c.Series {
		itemW = max(itemW, textWidth(s.Name, textScale))
	}
	itemW += 48 + 28 // the sample line before the name, a gap after
	left := 16 + lh + 12 + yTickW + 10
	cols := max(1, min(len(c.Series), (w-left-24)/itemW))
	rows := (len(c.Series) + cols - 1) / cols
	rowH := lh + 10
	legendH := rows * rowH
	area := image.Rect(left, 20+lh+20, w-40, h-(10+lh+14+lh+20+legendH+12))
	if area.Dx() < 50 || area.Dy() < 50 {
		return nil, fmt.Errorf("plot: %d×%d is too small for the labels and legend", w, h)
	}
	px := func(v float64) int { return area.Min.X + int(math.Round(xs.frac(v)*float64(area.Dx()))) }
	py := func(v float64) int { return area.Max.Y - int(math.Round(ys.frac(v)*float64(area.Dy()))) }

	// Title, grid, ticks, frame.
	drawText(img, (w-textWidth(c.Title, textScale))/2, 16, c.Title, textScale, ink)
	for _, v := range yt {
		y := py(v)
		hline(img, area.Min.X, area.Max.X, y, gridInk)
		hline(img, area.Min.X-5, area.Min.X, y, frameInk)
		s := label(v)
		drawText(img, area.Min.X-10-textWidth(s, textScale), y-lh/2, s, textScale, ink)
	}
	lastRight := math.MinInt
	for _, v := range xt {
		if !xs.contains(v) {
			continue
		}
		x := px(v)
		vline(img, x, area.Min.Y, area.Max.Y, gridInk)
		vline(img, x, area.Max.Y, area.Max.Y+5, frameInk)
		s := label(v)
		// A label that would touch the previous one is left out; its
		// grid line still shows where the value is.
		if lx := x - textWidth(s, textScale)/2; lx > lastRight+textScale*6 {
			drawText(img, lx, area.Max.Y+10, s, textScale, ink)
			lastRight = lx + textWidth(s, textScale)
		}
	}
	frame(img, area, frameInk)
	drawText(img, area.Min.X+(area.Dx()-textWidth(c.XLabel, textScale))/2, area.Max.Y+10+lh+14, c.XLabel, textScale, ink)
	drawTextUp(img, 16, area.Min.Y+(area.Dy()+textWidth(c.YLabel, textScale))/2, c.YLabel, textScale, ink)

	// The series, clipped to the area, then the legend beside it.
	plotImg := img.SubImage(area.Inset(-6)).(*image.RGBA)
	for i, s := range c.Series {
		col, mk := s.style(i)
		var prev image.Point
		havePrev := false
		for j := range s.X {
			if j >= len(s.Y) || !xs.valid(s.X[j]) || !ys.valid(s.Y[j]) {
				havePrev = false
				continue
			}
			p := image.Pt(px(s.X[j]), py(s.Y[j]))
			if havePrev {
				line(plotImg, prev, p, 2, s.Dashed, col)
			}
			prev, havePrev = p, true
		}
		for j := range s.X {
			if j < len(s.Y) && xs.valid(s.X[j]) && ys.valid(s.Y[j]) {
				marker(plotImg, image.Pt(px(s.X[j]), py(s.Y[j])), mk, col)
			}
		}
	}
	legendTop := area.Max.Y + 10 + lh + 14 + lh + 20
	legendLeft := area.Min.X + (area.Dx()-cols*itemW)/2
	for i, s := range c.Series {
		col, mk := s.style(i)
		lx := legendLeft + (i%cols)*itemW
		y := legendTop + (i/cols)*rowH + lh/2
		line(img, image.Pt(lx, y), image.Pt(lx+36, y), 2, s.Dashed, col)
		marker(img, image.Pt(lx+18, y), mk, col)
		drawText(img, lx+48, y-textHeight(textScale)/2+textScale, s.Name, textScale, ink)
	}
	return img, nil
}

// style answers the series' colour and marker.
func (s Series) style(i int) (color.RGBA, Marker) {
	col, mk := s.Color, s.Marker
	if s.Auto || col.A == 0 {
		col = Palette[i%len(Palette)]
	}
	if s.Auto {
		mk = Marker(i % int(numMarkers))
	}
	return col, mk
}

// Encode answers the chart as PNG bytes.
func (c Chart) Encode() ([]byte, error) {
	img, err := c.Render()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("encoding png: %w", err)
	}
	return b.Bytes(), nil
}

// WritePNG renders the chart into the file at path.
func (c Chart) WritePNG(path string) error {
	b, err := c.Encode()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Compact formats a tick value short: 19000 → "19k", 1500000 → "1.5M",
// 0.25 → "0.25".
func Compact(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trim(v/1e6) + "M"
	case a >= 1e3:
		return trim(v/1e3) + "k"
	default:
		return trim(v)
	}
}

// trim formats v with at most two decimals and no trailing zeros.
func trim(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
