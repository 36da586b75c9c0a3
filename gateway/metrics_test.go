package gateway

import (
	"testing"
	"time"
)

func TestLatencyHistogram(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		// want: cumulative counts at the bounds 100µs, 1ms, 5s; the total
		at100us, at1ms, at5s, count uint64
	}{
		{name: "empty"},
		{name: "a bound counts in its own bucket", samples: []time.Duration{100 * time.Microsecond, time.Millisecond},
			at100us: 1, at1ms: 2, at5s: 2, count: 2},
		{name: "zero and tiny waits land in the first bucket", samples: []time.Duration{0, time.Nanosecond},
			at100us: 2, at1ms: 2, at5s: 2, count: 2},
		{name: "over the top bound only in the count", samples: []time.Duration{5*time.Second + 1, time.Minute, 3 * time.Second},
			at5s: 1, count: 3},
	}
	idx := func(d time.Duration) int {
		for i, b := range LatencyBuckets {
			if b == d {
				return i
			}
		}
		t.Fatalf("no bucket %v", d)
		return -1
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h latencyHistogram
			var sum time.Duration
			for _, d := range tt.samples {
				h.observe(d)
				sum += d
			}
			l := h.snapshot()
			got := [4]uint64{l.Cumulative[idx(100*time.Microsecond)], l.Cumulative[idx(time.Millisecond)], l.Cumulative[idx(5*time.Second)], l.Count}
			if want := [4]uint64{tt.at100us, tt.at1ms, tt.at5s, tt.count}; got != want {
				t.Fatalf("cumulative at 100µs, 1ms, 5s and count = %v, want %v", got, want)
			}
			if l.Sum != sum {
				t.Fatalf("sum %v, want %v", l.Sum, sum)
			}
			for i := 1; i < len(l.Cumulative); i++ {
				if l.Cumulative[i] < l.Cumulative[i-1] {
					t.Fatalf("cumulative counts decrease: %v", l.Cumulative)
				}
			}
		})
	}
}

// TestWriteLatencyCountsLiveWrites: one sample per live message written,
// none for notices and replays. Closing the clients is the barrier: a
// connection's last write is accounted before its OnClose.
func TestWriteLatencyCountsLiveWrites(t *testing.T) {
	e, url := testEngine(t, RouteSettings{})
	live := dialWS(t, url+"?sdk_key=lat")
	reg := live.expect("registered")
	// One message at a time, each read before the next: each its own batch.
	for i := 1; i <= 3; i++ {
		if _, err := e.Hub().Publish("lat", "", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		live.expect("message")
		waitFor(t, "a sample per message", func() bool { return e.WriteLatency().Count == uint64(i) })
	}
	// A resuming client: its registered notice and replay add no sample.
	resumed := dialWS(t, url+"?sdk_key=lat&since=0&epoch="+reg["epoch"].(string))
	resumed.expect("registered")
	for range 3 {
		resumed.expect("message")
	}
	if _, err := e.Hub().Publish("lat", "", []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	live.expect("message")
	resumed.expect("message")
	live.nc.Close()
	resumed.nc.Close()
	waitFor(t, "the clients gone", func() bool { return e.Stats().Connections.WebSocket == 0 })
	l := e.WriteLatency()
	if l.Count != 5 {
		t.Fatalf("%d samples, want 5: 3 + the last message to both clients", l.Count)
	}
	if l.Sum <= 0 || l.Sum > time.Minute {
		t.Fatalf("sum of samples %v", l.Sum)
	}
}

// BenchmarkLatencyObserve is the histogram's share of a write: one sample.
func BenchmarkLatencyObserve(b *testing.B) {
	var h latencyHistogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := 300 * time.Microsecond
		for pb.Next() {
			h.observe(d)
		}
	})
}
