package redis

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/internal/redistest"
)

// BenchmarkPublish measures Publish against a real redis-server on
// loopback: one key or many, one publisher or GOMAXPROCS*8 (SetParallelism)
// at once. rt/op is Redis round trips per publish, pubs/s the rate.
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	data := []byte(`{"flag":"on","rollout":42,"rules":[{"attr":"country","op":"in","values":["fr","de"]}]}`)
	for _, bc := range []struct {
		name     string
		parallel bool
		keys     int
		tracked  bool
	}{
		{name: "serial", keys: 1},
		{name: "serial-tracked", keys: 1, tracked: true},
		{name: "parallel-1key", parallel: true, keys: 1},
		{name: "parallel-1000keys", parallel: true, keys: 1000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br, sink := newBroker(b, srv.URL(), 100, time.Minute)
			ctx := context.Background()
			keys := make([]string, bc.keys)
			for i := range keys {
				keys[i] = fmt.Sprintf("bench-%s-%d", bc.name, i)
				if _, err := br.Publish(ctx, keys[i], "update", data); err != nil { // caches the script
					b.Fatal(err)
				}
				if bc.tracked {
					br.Track(keys[i])
					sink.waitSync(b, keys[i], 1)
				}
			}
			rt0 := br.Status().RoundTrips
			start := time.Now()
			b.ResetTimer()
			if bc.parallel {
				var n atomic.Uint64
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						k := keys[n.Add(1)%uint64(len(keys))]
						if _, err := br.Publish(ctx, k, "update", data); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for i := 0; b.Loop(); i++ {
					if _, err := br.Publish(ctx, keys[i%len(keys)], "update", data); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			el := time.Since(start)
			b.ReportMetric(float64(br.Status().RoundTrips-rt0)/float64(b.N), "rt/op")
			b.ReportMetric(float64(b.N)/el.Seconds(), "pubs/s")
		})
	}
}

// latencySink signals every Apply on a channel.
type latencySink struct{ applied chan hub.Entry }

func (s latencySink) Apply(e hub.Entry)                  { s.applied <- e }
func (s latencySink) Sync(key string, snap hub.Snapshot) { s.applied <- hub.Entry{Key: key} }
func (s latencySink) Drop(string, string)                {}

// BenchmarkPublishToApply measures one message's way from Publish on one
// broker to Sink.Apply on another (two gateway nodes sharing one Redis),
// serially: p50 and p99 in µs.
func BenchmarkPublishToApply(b *testing.B) {
	srv := redistest.Start(b)
	pub, _ := newBroker(b, srv.URL(), 100, time.Minute)
	sub, err := New(Options{URL: srv.URL(), HistorySize: 100, HistoryTTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	sink := latencySink{applied: make(chan hub.Entry, 16)}
	sub.Start(sink)
	b.Cleanup(func() { sub.Close() })
	const key = "latency"
	sub.Track(key)
	<-sink.applied // the Sync
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1024)
	for b.Loop() {
		start := time.Now()
		if _, err := pub.Publish(ctx, key, "update", []byte(`{"on":true}`)); err != nil {
			b.Fatal(err)
		}
		<-sink.applied
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
