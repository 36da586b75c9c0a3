package main

import (
	"math/bits"
	"sync/atomic"
)

// The latency histogram is log-linear in microseconds: 1 µs wide buckets
// below linearUS, then subBuckets buckets per power of two, so a bucket is
// at most 1/subBuckets (0.8%) of its lower bound wide — fine enough for
// p99.9 — up to 2^maxExp µs (67 s); anything above lands in one overflow
// bucket.
const (
	subBits    = 7
	subBuckets = 1 << subBits // per power of two
	linearUS   = subBuckets   // 1 µs steps below this
	maxExp     = 26           // 2^26 µs ≈ 67 s
	numBuckets = linearUS + (maxExp-subBits)*subBuckets
	overflow   = numBuckets // index of the overflow bucket
)

// hist counts latencies. Its counters are atomics: in goroutine mode many
// readers add to it, and the control loop reads and resets it.
type hist struct {
	counts [numBuckets + 1]atomic.Uint64
	maxNS  atomic.Int64 // largest latency seen, reported as the overflow bucket's bound
}

// bucketOf answers the bucket of a latency in ns; negative latencies (wall
// clock steps) count as 0.
func bucketOf(ns int64) int {
	if ns < 0 {
		ns = 0
	}
	us := uint64(ns) / 1000
	if us < linearUS {
		return int(us)
	}
	exp := bits.Len64(us) - 1 // us is in [2^exp, 2^(exp+1))
	if exp >= maxExp {
		return overflow
	}
	sub := int(us>>(exp-subBits)) - subBuckets
	return linearUS + (exp-subBits)*subBuckets + sub
}

// upperUS answers bucket b's exclusive upper bound in µs.
func upperUS(b int) float64 {
	if b < linearUS {
		return float64(b + 1)
	}
	i := b - linearUS
	exp := i/subBuckets + subBits
	sub := i % subBuckets
	return float64(uint64(subBuckets+sub+1) << (exp - subBits))
}

func (h *hist) add(ns int64) {
	b := bucketOf(ns)
	h.counts[b].Add(1)
	if b == overflow {
		for {
			m := h.maxNS.Load()
			if ns <= m || h.maxNS.CompareAndSwap(m, ns) {
				break
			}
		}
	}
}

func (h *hist) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.maxNS.Store(0)
}

// snapshot answers the non-empty buckets, ascending, as [upper bound µs,
// count] pairs; the overflow bucket's bound is the largest latency seen.
func (h *hist) snapshot() [][2]float64 {
	out := [][2]float64{}
	for b := range h.counts {
		n := h.counts[b].Load()
		if n == 0 {
			continue
		}
		ub := float64(h.maxNS.Load()) / 1000
		if b < overflow {
			ub = upperUS(b)
		}
		out = append(out, [2]float64{ub, float64(n)})
	}
	return out
}
