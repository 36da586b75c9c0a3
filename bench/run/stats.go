package main

import (
	"slices"

	benchreport "github.com/pushgateway/push_gateway/bench/internal/report"
)

// summarize fills b's latency fields from raw latencies in ns.
func summarize(b *Broadcast, lat []int64) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	toMS := func(ns int64) float64 { return float64(ns) / 1e6 }
	b.P50MS = toMS(benchreport.Quantile(lat, 0.50))
	b.P99MS = toMS(benchreport.Quantile(lat, 0.99))
	b.P999MS = toMS(benchreport.Quantile(lat, 0.999))
	b.LastMS = toMS(lat[len(lat)-1])
	if b.LastMS > 0 {
		b.DeliveriesPS = float64(len(lat)) / (b.LastMS / 1e3)
	}
}

// medianBroadcast answers the field-by-field median of bs.
func medianBroadcast(bs []Broadcast) Broadcast {
	col := func(f func(Broadcast) float64) float64 {
		v := make([]float64, len(bs))
		for i, b := range bs {
			v[i] = f(b)
		}
		return benchreport.Median(v)
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
