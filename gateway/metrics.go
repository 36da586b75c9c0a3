package gateway

import (
	"sync/atomic"
	"time"
)

// Publish→write latency: how long a published message waited between the
// hub starting its fan-out on this node (hub.Message.LiveStamp) and the
// write that put it on a client's socket. The netpoll workers report one
// sample per write batch, the wait of the batch's oldest message
// (netpoll.Config.OnLatency), into a fixed-bucket histogram of atomic
// counters: no lock, no allocation and no Prometheus type on the delivery
// path. The module turns a snapshot into a Prometheus histogram at scrape
// time.
//
// It covers the transports netpoll writes: native WebSocket, SSE over
// HTTP/1.1, Socket.IO over WebSocket. Long polls, Engine.IO polling and
// HTTP/2 SSE streams are written by their HTTP handlers and not measured.

// LatencyBuckets are the histogram's upper bounds, from 100µs (a write
// straight after the publish) to 5s (a client far behind); slower samples
// land in the +Inf bucket only.
var LatencyBuckets = [numLatencyBuckets]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

const numLatencyBuckets = 15

// Latency is a snapshot of the publish→write histogram.
type Latency struct {
	// Cumulative[i] counts the samples ≤ LatencyBuckets[i].
	Cumulative [numLatencyBuckets]uint64
	Count      uint64        // every sample, +Inf included
	Sum        time.Duration // of every sample
}

// latencyHistogram counts samples per bucket. Goroutine-safe; observe is
// called by netpoll workers with a connection's lock held, so it only adds.
type latencyHistogram struct {
	counts [numLatencyBuckets + 1]atomic.Uint64 // last: over the top bound
	sum    atomic.Int64                         // nanoseconds
}

// observe records one sample. A linear scan: samples mostly fall in the
// first buckets, and 15 compares cost less than a binary search's branches.
func (h *latencyHistogram) observe(d time.Duration) {
	i := 0
	for i < numLatencyBuckets && d > LatencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// snapshot reads the counters one by one: a scrape racing a write may see
// a sample in Count but not yet in Sum, never a non-monotonic bucket.
func (h *latencyHistogram) snapshot() Latency {
	var l Latency
	var n uint64
	for i := range numLatencyBuckets {
		n += h.counts[i].Load()
		l.Cumulative[i] = n
	}
	l.Count = n + h.counts[numLatencyBuckets].Load()
	l.Sum = time.Duration(h.sum.Load())
	return l
}

// WriteLatency returns the publish→write latency histogram since the
// Engine started (it outlives reloads, as the Engine does).
func (e *Engine) WriteLatency() Latency { return e.latency.snapshot() }
