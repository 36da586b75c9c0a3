package main

import (
	"slices"
	"sort"
)

// quantile answers the q-quantile (0..1) of sorted by the nearest-rank method.
func quantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// summarize fills b's latency fields from raw latencies in ns.
func summarize(b *Broadcast, lat []int64) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	toMS := func(ns int64) float64 { return float64(ns) / 1e6 }
	b.P50MS = toMS(quantile(lat, 0.50))
	b.P99MS = toMS(quantile(lat, 0.99))
	b.P999MS = toMS(quantile(lat, 0.999))
	b.LastMS = toMS(lat[len(lat)-1])
	if b.LastMS > 0 {
		b.DeliveriesPS = float64(len(lat)) / (b.LastMS / 1e3)
	}
}

// median answers the median of v (the mean of the middle two when even).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianBroadcast answers the field-by-field median of bs.
func medianBroadcast(bs []Broadcast) Broadcast {
	col := func(f func(Broadcast) float64) float64 {
		v := make([]float64, len(bs))
		for i, b := range bs {
			v[i] = f(b)
		}
		return median(v)
	}
	return Broadcast{
		Received:     int64(col(func(b Broadcast) float64 { return float64(b.Received) })),
		Expected:     int64(col(func(b Broadcast) float64 { return float64(b.Expected) })),
		PublishMS:    col(func(b Broadcast) float64 { return b.PublishMS }),
		P50MS:        col(func(b Broadcast) float64 { return b.P50MS }),
		P99MS:        col(func(b Broadcast) float64 { return b.P99MS }),
		P999MS:       col(func(b Broadcast) float64 { return b.P999MS }),
		LastMS:       col(func(b Broadcast) float64 { return b.LastMS }),
		DeliveriesPS: col(func(b Broadcast) float64 { return b.DeliveriesPS }),
	}
}
