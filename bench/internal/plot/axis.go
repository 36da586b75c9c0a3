package plot

import (
	"math"
	"strconv"
)

// scale maps values of one axis onto [0, 1].
type scale struct {
	lo, hi float64
	log    bool
}

// scales answers the x and y scales covering every drawable point, padded
// so that no marker sits on the frame.
func (c Chart) scales() (x, y scale, err error) {
	x, y = scale{math.Inf(1), math.Inf(-1), c.XLog}, scale{math.Inf(1), math.Inf(-1), c.YLog}
	n := 0
	for _, s := range c.Series {
		for j := range s.X {
			if j >= len(s.Y) || !x.valid(s.X[j]) || !y.valid(s.Y[j]) {
				continue
			}
			x.lo, x.hi = min(x.lo, s.X[j]), max(x.hi, s.X[j])
			y.lo, y.hi = min(y.lo, s.Y[j]), max(y.hi, s.Y[j])
			n++
		}
	}
	if n == 0 {
		return x, y, ErrNoData
	}
	for _, v := range c.XTicks {
		if x.valid(v) {
			x.lo, x.hi = min(x.lo, v), max(x.hi, v)
		}
	}
	x.pad(0.05, false)
	y.pad(0.08, !y.log)
	return x, y, nil
}

// valid reports whether v can be drawn on the scale.
func (s scale) valid(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && (!s.log || v > 0)
}

// contains reports whether v lies within the scale.
func (s scale) contains(v float64) bool { return s.valid(v) && v >= s.lo && v <= s.hi }

// pad widens the range by frac of its span on each side (in log space for
// a log scale); fromZero starts a linear range at 0 when all values are
// positive, so that bar-like comparisons are not exaggerated.
func (s *scale) pad(frac float64, fromZero bool) {
	if s.log {
		lo, hi := math.Log10(s.lo), math.Log10(s.hi)
		if hi-lo < 0.3 { // less than a factor 2: show at least one
			mid := (lo + hi) / 2
			lo, hi = mid-0.15, mid+0.15
		}
		d := (hi - lo) * frac
		s.lo, s.hi = math.Pow(10, lo-d), math.Pow(10, hi+d)
		return
	}
	if fromZero && s.lo > 0 {
		s.lo = 0
	}
	if s.hi == s.lo {
		s.lo, s.hi = s.lo-1, s.hi+1
	}
	d := (s.hi - s.lo) * frac
	if !(fromZero && s.lo == 0) {
		s.lo -= d
	}
	s.hi += d
}

// frac answers where v falls on the scale, 0 at lo and 1 at hi.
func (s scale) frac(v float64) float64 {
	if s.log {
		return (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	}
	return (v - s.lo) / (s.hi - s.lo)
}

// ticks answers round values within the scale: 1-2-5 steps on a linear
// scale; on a log scale the powers of ten, with 2 and 5 between them
// while the range spans few decades.
func (s scale) ticks() []float64 {
	var out []float64
	if s.log {
		lo, hi := math.Floor(math.Log10(s.lo)), math.Ceil(math.Log10(s.hi))
		steps := []float64{1, 2, 5}
		if hi-lo > 4 {
			steps = []float64{1}
		}
		for e := lo; e <= hi && len(out) < 100; e++ {
			for _, m := range steps {
				if v := m * math.Pow(10, e); s.contains(v) {
					out = append(out, v)
				}
			}
		}
		return out
	}
	step := niceStep((s.hi - s.lo) / 6)
	for v := math.Ceil(s.lo/step) * step; v <= s.hi && len(out) < 100; v += step {
		// Snap away the float error step additions pile up.
		r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 10, 64), 64)
		if err != nil {
			r = v
		}
		out = append(out, r)
	}
	return out
}

// niceStep answers the 1, 2 or 5 × 10^k nearest above raw.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}
