package redis

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestPipelinedPublishes publishes from many goroutines at once, twice: once
// with the script cached and once right after SCRIPT FLUSH, so that
// pipelined calls meet NOSCRIPT and are sent again with the script's body.
// Every publish must succeed, seqs must be exactly 1..N, and concurrent
// calls must share round trips.
func TestPipelinedPublishes(t *testing.T) {
	const goroutines, each = 16, 50
	srv := redistest.Start(t)
	br, _ := newBroker(t, srv.URL(), 1000, time.Minute)
	ctx := context.Background()
	for round, flush := range []bool{false, true} {
		key := []string{"cached", "flushed"}[round]
		if flush {
			srv.Do(t, "SCRIPT", "FLUSH")
		}
		rt0 := br.Status().RoundTrips
		var (
			mu   sync.Mutex
			seqs []uint64
			wg   sync.WaitGroup
		)
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					e, err := br.Publish(ctx, key, "update", []byte(`"x"`))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					seqs = append(seqs, e.Seq)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		slices.Sort(seqs)
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("%s: seqs are not 1..%d: %v", key, goroutines*each, seqs)
			}
		}
		rt := br.Status().RoundTrips - rt0
		t.Logf("%s: %d publishes in %d round trips", key, len(seqs), rt)
		if !flush && rt >= uint64(len(seqs)) {
			t.Errorf("%d round trips for %d concurrent publishes: nothing was pipelined", rt, len(seqs))
		}
	}
}
