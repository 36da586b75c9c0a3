package plot

import (
	"image"
	"image/color"
)

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) { fillRect(img, x0, y, x1-x0+1, 1, c) }
func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) { fillRect(img, x, y0, 1, y1-y0+1, c) }

// frame draws r's outline.
func frame(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	hline(img, r.Min.X, r.Max.X, r.Min.Y, c)
	hline(img, r.Min.X, r.Max.X, r.Max.Y, c)
	vline(img, r.Min.X, r.Min.Y, r.Max.Y, c)
	vline(img, r.Max.X, r.Min.Y, r.Max.Y, c)
}

// line draws a line from a to b, width pixels thick (Bresenham, a square
// pen); dashed lines alternate 8 pixels on and 6 off.
func line(img *image.RGBA, a, b image.Point, width int, dashed bool, c color.RGBA) {
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := sign(b.X-a.X), sign(b.Y-a.Y)
	err := dx + dy
	x, y := a.X, a.Y
	for i := 0; i < 1<<16; i++ { // bounded: no line is that long
		if !dashed || i%14 < 8 {
			fillRect(img, x-width/2, y-width/2, width, width, c)
		}
		if x == b.X && y == b.Y {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x += sx
		}
		if e2 <= dx {
			err += dx
			y += sy
		}
	}
}

// marker draws shape m centred on p, about 11 pixels across.
func marker(img *image.RGBA, p image.Point, m Marker, c color.RGBA) {
	const r = 5
	switch m {
	case Square:
		fillRect(img, p.X-r+1, p.Y-r+1, 2*r-1, 2*r-1, c)
	case Triangle:
		for dy := -r; dy <= r; dy++ {
			half := (dy + r) / 2
			fillRect(img, p.X-half, p.Y+dy, 2*half+1, 1, c)
		}
	case Diamond:
		for dy := -r - 1; dy <= r+1; dy++ {
			half := r + 1 - abs(dy)
			fillRect(img, p.X-half, p.Y+dy, 2*half+1, 1, c)
		}
	case Cross:
		line(img, image.Pt(p.X-r, p.Y-r), image.Pt(p.X+r, p.Y+r), 3, false, c)
		line(img, image.Pt(p.X-r, p.Y+r), image.Pt(p.X+r, p.Y-r), 3, false, c)
	default: // Circle
		for dy := -r; dy <= r; dy++ {
			for dx := -r; dx <= r; dx++ {
				if dx*dx+dy*dy <= r*r+1 {
					fillRect(img, p.X+dx, p.Y+dy, 1, 1, c)
				}
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
