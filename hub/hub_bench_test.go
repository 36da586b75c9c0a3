package hub_test

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pushgateway/push_gateway/hub"
)

// queueFollower stands in for a connection: Deliver is a non-blocking
// enqueue into a bounded queue under a mutex, as netpoll's writer queue
// does; the benchmark never drains it, so the queue wraps around.
type queueFollower struct {
	mu sync.Mutex
	q  [64]*hub.Message
	n  int
}

func (f *queueFollower) Deliver(m *hub.Message) bool {
	f.mu.Lock()
	f.q[f.n&63] = m
	f.n++
	f.mu.Unlock()
	return true
}
func (f *queueFollower) Notify(hub.Notice) bool { return true }
func (f *queueFollower) Close(hub.Reason)       {}

// BenchmarkPublishFanOut publishes to one key followed by n followers.
// ns/delivery and allocs/delivery are the figures to watch; one allocation
// per publish (the Message) is expected.
func BenchmarkPublishFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run("followers="+strconv.Itoa(n), func(b *testing.B) {
			h := hub.New()
			defer h.Close()
			for i := 0; i < n; i++ {
				s := h.Subscribe(&queueFollower{})
				if err := s.Follow("bench", 0, "", false); err != nil {
					b.Fatal(err)
				}
			}
			data := []byte(`{"toggle":"kill-switch","on":true}`)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mallocs := ms.Mallocs
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, err := h.Publish("bench", "", data)
				if err != nil || p.LocalReceivers != n {
					b.Fatalf("publish: %+v %v", p, err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			deliveries := float64(b.N) * float64(n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
			// Everything the publishes allocated, minus the one Message per
			// publish, spread over the deliveries.
			b.ReportMetric((float64(ms.Mallocs-mallocs)-float64(b.N))/deliveries, "allocs/delivery")
		})
	}
}

// BenchmarkPublishManyKeys publishes to many distinct keys from parallel
// goroutines: the sharded locks, the history bookkeeping and the global
// byte cap under contention.
func BenchmarkPublishManyKeys(b *testing.B) {
	const numKeys = 100_000
	keys := make([]string, numKeys)
	for i := range keys {
		keys[i] = "sdk-key-" + strconv.Itoa(i)
	}
	for _, tc := range []struct {
		name     string
		maxBytes int64
	}{
		{name: "cap=default", maxBytes: hub.DefaultHistoryMaxBytes},
		{name: "cap=1MiB", maxBytes: 1 << 20},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := hub.New(hub.WithHistoryMaxBytes(tc.maxBytes))
			defer h.Close()
			data := []byte(`{"toggle":"kill-switch","on":true}`)
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(1) * 7919
				for pb.Next() {
					i++
					if _, err := h.Publish(keys[i%numKeys], "", data); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := h.Stats()
			b.ReportMetric(float64(st.Keys), "keys")
			b.ReportMetric(float64(st.HistoryBytes)/(1<<20), "history-MiB")
		})
	}
}

// BenchmarkFollowReplay measures a resume that replays 100 messages.
func BenchmarkFollowReplay(b *testing.B) {
	h := hub.New()
	defer h.Close()
	var p hub.Published
	for i := 0; i < 200; i++ {
		p, _ = h.Publish("k", "", []byte(`1`))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := h.Subscribe(&queueFollower{})
		if err := s.Follow("k", p.Seq-100, p.Epoch, true); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
