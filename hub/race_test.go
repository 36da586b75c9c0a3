package hub_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

// TestFollowRacesPublish proves invariant I1: while one goroutine publishes
// to a key without pause, followers resuming from positions they observed
// get every later message exactly once, in order (or resync, then every
// message after the resync's seq). Run with -race.
func TestFollowRacesPublish(t *testing.T) {
	const (
		total     = 4000 // messages published
		followers = 16   // goroutines following
		rounds    = 4    // subscriptions per goroutine, spread over the run
	)
	h := newHub(t, hub.WithHistorySize(64))
	type position struct {
		epoch string
		seq   uint64
	}
	var last atomic.Pointer[position]
	last.Store(&position{})

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i++ {
			p, err := h.Publish("race", "", []byte("x"))
			if err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			last.Store(&position{p.Epoch, p.Seq})
		}
	}()

	type run struct {
		rec   *recorder
		since uint64
		epoch string
	}
	runs := make(chan run, followers*rounds)
	for g := 0; g < followers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for r := 0; r < rounds; r++ {
				// Spread the follows over the publishing run.
				target := uint64(total * (r*followers + g) / (rounds * followers))
				for last.Load().seq < target {
					runtime.Gosched()
				}
				pos := last.Load()
				// Resume from a little behind the observed position: mostly
				// inside the 64-message window, sometimes outside of it.
				since := pos.seq - min(pos.seq, uint64(rng.IntN(80)))
				rec := &recorder{}
				s := h.Subscribe(rec)
				t.Cleanup(s.Close)
				if err := s.Follow("race", since, pos.epoch, true); err != nil {
					t.Errorf("follow: %v", err)
					return
				}
				runs <- run{rec, since, pos.epoch}
			}
		}(g)
	}
	wg.Wait()
	close(runs)

	n := 0
	for r := range runs {
		n++
		ev := r.rec.snapshot()
		if err := checkStream(ev, r.since, total); err != nil {
			t.Fatalf("follower from since %d: %v\nfirst events: %v", r.since, err, ev[:min(len(ev), 5)])
		}
	}
	if n != followers*rounds {
		t.Fatalf("%d runs, want %d", n, followers*rounds)
	}
}

// checkStream verifies registered, then replay or resync, then a gap-free,
// duplicate-free run of messages up to last.
func checkStream(ev []event, since, last uint64) error {
	if len(ev) == 0 || ev[0].kind != "registered" {
		return fmt.Errorf("first event is not registered")
	}
	next := since + 1
	rest := ev[1:]
	if len(rest) > 0 && rest[0].kind == "resync" {
		next = rest[0].seq + 1
		rest = rest[1:]
	} else if since > ev[0].seq {
		return fmt.Errorf("since %d beyond registered seq %d without resync", since, ev[0].seq)
	}
	for _, e := range rest {
		if e.kind != "message" {
			return fmt.Errorf("unexpected %v", e)
		}
		if e.seq != next {
			return fmt.Errorf("got seq %d, want %d (gap or duplicate)", e.seq, next)
		}
		next++
	}
	if next != last+1 {
		return fmt.Errorf("stream ends at %d, want %d", next-1, last)
	}
	return nil
}

// TestConcurrentOperations hammers every entry point at once on a small
// key space and then checks the hub's bookkeeping. Run with -race.
func TestConcurrentOperations(t *testing.T) {
	clock := newFakeClock()
	h := newHub(t, hub.WithHistorySize(8), hub.WithHistoryMaxBytes(40*hub.MessageOverhead),
		hub.WithClock(clock.Now), hub.WithHistoryTTL(time.Minute), hub.WithMaxKeysPerConn(4))
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	worker := func(seed uint64, op func(rng *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 2))
			for i := 0; i < 3000 && time.Now().Before(deadline); i++ {
				op(rng)
			}
		}()
	}
	for i := 0; i < 4; i++ {
		worker(uint64(i), func(rng *rand.Rand) {
			if _, err := h.Publish(keys[rng.IntN(len(keys))], "", []byte("payload")); err != nil {
				t.Error(err)
			}
		})
	}
	for i := 0; i < 4; i++ {
		rec := &recorder{limit: 0}
		s := h.Subscribe(rec)
		t.Cleanup(s.Close)
		worker(uint64(10+i), func(rng *rand.Rand) {
			k := keys[rng.IntN(len(keys))]
			switch rng.IntN(4) {
			case 0:
				s.Unfollow(k)
			default:
				_ = s.Follow(k, uint64(rng.IntN(20)), "", rng.IntN(2) == 0)
			}
			rec.take()
		})
	}
	worker(20, func(rng *rand.Rand) {
		switch rng.IntN(10) {
		case 0:
			h.DropKey(keys[rng.IntN(len(keys))])
		case 1:
			h.Configure(hub.WithHistorySize(2 + rng.IntN(10)))
		case 2:
			clock.Advance(time.Duration(rng.IntN(20)) * time.Second)
			h.SweepNow()
		default:
			h.KeyInfo(keys[rng.IntN(len(keys))])
			h.Stats()
		}
	})
	wg.Wait()
	checkInvariants(t, h)
}

// TestEncodedConcurrent: followers racing on the first Encoded call all
// get the one stored encoding.
func TestEncodedConcurrent(t *testing.T) {
	f := hub.NewFormat("concurrent", func(m *hub.Message) []byte { return append([]byte(nil), m.Data...) })
	h := newHub(t)
	const n = 8
	var mu sync.Mutex
	var got [][]byte
	var ready sync.WaitGroup
	ready.Add(n)
	msgs := make(chan *hub.Message, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			m := <-msgs
			b := m.Encoded(f)
			mu.Lock()
			got = append(got, b)
			mu.Unlock()
		}()
	}
	ff := &funcFollower{deliver: func(m *hub.Message) bool { msgs <- m; return true }}
	for i := 0; i < n; i++ {
		s := h.Subscribe(ff)
		defer s.Close()
		if err := s.Follow("k", 0, "", false); err != nil {
			t.Fatal(err)
		}
	}
	ready.Wait()
	publish(t, h, "k", "hello")
	wg.Wait()
	for _, b := range got {
		if string(b) != "hello" || &b[0] != &got[0][0] {
			t.Fatalf("different encodings returned")
		}
	}
}
