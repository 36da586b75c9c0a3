package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketOf(t *testing.T) {
	tests := []struct {
		name  string
		ns    int64
		upper float64 // µs
	}{
		{name: "zero", ns: 0, upper: 1},
		{name: "negative", ns: -5000, upper: 1},
		{name: "sub-µs", ns: 999, upper: 1},
		{name: "1 µs", ns: 1000, upper: 2},
		{name: "99.5 µs", ns: 99500, upper: 100},
		{name: "last linear", ns: 127999, upper: 128},
		{name: "first log", ns: 128000, upper: 129},
		{name: "256 µs", ns: 256000, upper: 258},
		{name: "1 s", ns: 1e9, upper: 1003520}, // 4096 µs wide buckets at 2^19 µs,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := upperUS(bucketOf(tt.ns)); got != tt.upper {
				t.Fatalf("upper bound of %d ns = %v µs, want %v", tt.ns, got, tt.upper)
			}
		})
	}
}

func TestBucketsAreMonotoneAndTight(t *testing.T) {
	prev := 0.0
	for b := range numBuckets {
		ub := upperUS(b)
		if ub <= prev {
			t.Fatalf("bucket %d: upper %v not above %v", b, ub, prev)
		}
		if prev >= linearUS && (ub-prev)/prev > 0.01 {
			t.Fatalf("bucket %d: [%v, %v) wider than 1%%", b, prev, ub)
		}
		// Its own lower and last value fall in it.
		if got := bucketOf(int64(prev * 1000)); got != b {
			t.Fatalf("lower bound %v µs in bucket %d, want %d", prev, got, b)
		}
		if got := bucketOf(int64(ub*1000) - 1); got != b {
			t.Fatalf("%v µs - 1 ns in bucket %d, want %d", ub, got, b)
		}
		prev = ub
	}
	if prev < 60e6 {
		t.Fatalf("buckets end at %v µs, before 60 s", prev)
	}
	if bucketOf(int64(prev*1000)) != overflow {
		t.Fatal("past the last bucket is not overflow")
	}
}

// percentile reads the q-quantile's bucket bound off a snapshot.
func percentile(snap [][2]float64, q float64) float64 {
	var total float64
	for _, b := range snap {
		total += b[1]
	}
	rank := math.Ceil(q * total)
	var seen float64
	for _, b := range snap {
		if seen += b[1]; seen >= rank {
			return b[0]
		}
	}
	return math.NaN()
}

func TestHistPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() int64 // ns
	}{
		{name: "uniform 0-100 µs", gen: func() int64 { return rng.Int64N(100_000) }},
		{name: "lognormal around 2 ms", gen: func() int64 { return int64(2e6 * math.Exp(rng.NormFloat64())) }},
		{name: "exponential 50 ms", gen: func() int64 { return int64(50e6 * rng.ExpFloat64()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h hist
			vals := make([]int64, 100_000)
			for i := range vals {
				vals[i] = tt.gen()
				h.add(vals[i])
			}
			slices.Sort(vals)
			snap := h.snapshot()
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
				exact := float64(vals[int(math.Ceil(q*float64(len(vals))))-1]) / 1000
				got := percentile(snap, q)
				// The bucket's upper bound: at most one 1 µs step or 1% above.
				if got < exact || got > max(exact*1.01, exact+1) {
					t.Errorf("p%v = %v µs, exact %v µs", q*100, got, exact)
				}
			}
		})
	}
}

func TestHistOverflowAndReset(t *testing.T) {
	var h hist
	h.add(70e9)
	h.add(90e9)
	h.add(5000)
	snap := h.snapshot()
	want := [][2]float64{{6, 1}, {90e6, 2}}
	if !slices.Equal(snap, want) {
		t.Fatalf("snapshot = %v, want %v", snap, want)
	}
	h.reset()
	if snap := h.snapshot(); len(snap) != 0 {
		t.Fatalf("after reset: %v", snap)
	}
}
