package report

import (
	"cmp"
	"slices"
)

// Quantile answers the q-quantile (0..1) of sorted by the nearest-rank
// method: a value that was measured, never one interpolated between two.
// It answers the zero value for no samples.
func Quantile[T cmp.Ordered](sorted []T, q float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	// The small slack keeps q·n that float arithmetic puts a hair above an
	// integer on that rank.
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Median answers the median of v (the mean of the middle two when even),
// leaving v as it is; 0 for none.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
