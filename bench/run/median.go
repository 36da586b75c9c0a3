package main

import (
	"reflect"

	benchreport "github.com/pushgateway/push_gateway/bench/internal/report"
)

// medians answers one Result per server and N: every number the median of
// that number over the runs without an error (or, when all failed, the
// first run); losses are the worst run's. Strings, maps and slices come from the first good run, so the
// per-broadcast list and the close codes there are one run's, not medians.
func medians(runs []Result) []Result {
	type id struct {
		server string
		n      int
	}
	var order []id
	groups := map[id][]Result{}
	for _, r := range runs {
		k := id{r.Server, r.N}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]Result, 0, len(order))
	for _, k := range order {
		var good []Result
		for _, r := range groups[k] {
			if r.Error == "" {
				good = append(good, r)
			}
		}
		if len(good) == 0 {
			out = append(out, groups[k][0])
			continue
		}
		m := good[0]
		vals := make([]reflect.Value, len(good))
		for i := range good {
			vals[i] = reflect.ValueOf(&good[i]).Elem()
		}
		medianInto(reflect.ValueOf(&m).Elem(), vals)
		m.Repeat = 0
		// Losses are not a median: one lost message in any run counts.
		m.Lost, m.Duplicates, m.Storm.Lost, m.Storm.Duplicates, m.Storm.Resyncs = 0, 0, 0, 0, 0
		for _, r := range good {
			m.Lost, m.Duplicates = max(m.Lost, r.Lost), max(m.Duplicates, r.Duplicates)
			m.Storm.Lost, m.Storm.Duplicates = max(m.Storm.Lost, r.Storm.Lost), max(m.Storm.Duplicates, r.Storm.Duplicates)
			m.Storm.Resyncs = max(m.Storm.Resyncs, r.Storm.Resyncs)
		}
		if len(good) < len(groups[k]) {
			m.Error = "" // the failed runs are listed in runs
		}
		out = append(out, m)
	}
	return out
}

// medianInto sets every numeric field of dst (recursing into structs) to
// the median of the same field of vals.
func medianInto(dst reflect.Value, vals []reflect.Value) {
	switch dst.Kind() {
	case reflect.Struct:
		for i := range dst.NumField() {
			fields := make([]reflect.Value, len(vals))
			for j, v := range vals {
				fields[j] = v.Field(i)
			}
			medianInto(dst.Field(i), fields)
		}
	case reflect.Float64:
		dst.SetFloat(benchreport.Median(floats(vals, reflect.Value.Float)))
	case reflect.Int, reflect.Int64:
		dst.SetInt(int64(benchreport.Median(floats(vals, func(v reflect.Value) float64 { return float64(v.Int()) }))))
	}
}

func floats(vals []reflect.Value, f func(reflect.Value) float64) []float64 {
	out := make([]float64, len(vals))
	for i, v := range vals {
		out[i] = f(v)
	}
	return out
}
