package redis

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

// waitTimeout bounds one awaited condition on a loaded 2-core machine.
const waitTimeout = 10 * time.Second

type syncCall struct {
	key  string
	snap hub.Snapshot
}

// fakeSink records what the broker hands to the hub.
type fakeSink struct {
	mu      sync.Mutex
	applies []hub.Entry
	syncs   []syncCall
	drops   []string
	changed chan struct{} // closed and replaced at every call
}

func newSink() *fakeSink { return &fakeSink{changed: make(chan struct{})} }

func (s *fakeSink) record(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *fakeSink) Apply(e hub.Entry) { s.record(func() { s.applies = append(s.applies, e) }) }
func (s *fakeSink) Sync(key string, snap hub.Snapshot) {
	s.record(func() { s.syncs = append(s.syncs, syncCall{key, snap}) })
}
func (s *fakeSink) Drop(key, _ string) { s.record(func() { s.drops = append(s.drops, key) }) }

// waitUntil waits until cond, called with the sink locked, holds.
func (s *fakeSink) waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			tb.Fatalf("timed out waiting for %s; applies=%v syncs=%v drops=%v", what, s.applies, s.syncs, s.drops)
		}
	}
}

// syncsOf returns key's syncs so far; the caller holds s.mu.
func (s *fakeSink) syncsOfLocked(key string) []hub.Snapshot {
	var out []hub.Snapshot
	for _, c := range s.syncs {
		if c.key == key {
			out = append(out, c.snap)
		}
	}
	return out
}

// waitSync waits for key's n-th sync (1-based) and returns it.
func (s *fakeSink) waitSync(tb testing.TB, key string, n int) hub.Snapshot {
	tb.Helper()
	var snap hub.Snapshot
	s.waitUntil(tb, fmt.Sprintf("sync #%d of %q", n, key), func() bool {
		got := s.syncsOfLocked(key)
		if len(got) < n {
			return false
		}
		snap = got[n-1]
		return true
	})
	return snap
}

// seen returns the seqs of key in epoch that reached the sink by Apply or
// in a Sync's history, sorted, without duplicates.
func (s *fakeSink) seen(key, epoch string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seenLocked(key, epoch)
}

func (s *fakeSink) seenLocked(key, epoch string) []uint64 {
	var seqs []uint64
	for _, e := range s.applies {
		if e.Key == key && e.Epoch == epoch {
			seqs = append(seqs, e.Seq)
		}
	}
	for _, c := range s.syncs {
		if c.key == key && c.snap.Epoch == epoch {
			for _, e := range c.snap.History {
				seqs = append(seqs, e.Seq)
			}
		}
	}
	slices.Sort(seqs)
	return slices.Compact(seqs)
}

// newBroker starts a broker on url delivering to a new fake sink; cleanup
// closes it.
func newBroker(tb testing.TB, url string, size int, ttl time.Duration) (*Broker, *fakeSink) {
	tb.Helper()
	b, err := New(Options{URL: url, HistorySize: size, HistoryTTL: ttl})
	if err != nil {
		tb.Fatalf("New(%q): %v", url, err)
	}
	sink := newSink()
	b.Start(sink)
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return b, sink
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// publish publishes and fails the test on error.
func publish(tb testing.TB, b *Broker, key, data string) hub.Entry {
	tb.Helper()
	e, err := b.Publish(ctxT(tb), key, "update", []byte(data))
	if err != nil {
		tb.Fatalf("Publish(%q): %v", key, err)
	}
	return e
}

// seqs returns 1..n.
func seqs(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func historySeqs(h []hub.Entry) []uint64 {
	out := []uint64{}
	for _, e := range h {
		out = append(out, e.Seq)
	}
	return out
}

// waitStatus waits until the broker's state is want.
func waitStatus(tb testing.TB, b *Broker, want string) Status {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st := b.Status()
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("state %q, want %q: %+v", st.State, want, st)
		}
		time.Sleep(10 * time.Millisecond) // polling a status: nothing to wait on
	}
}

// waitTracked waits until the broker tracks n keys.
func waitTracked(tb testing.TB, b *Broker, n int) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for b.Status().TrackedKeys != n {
		if time.Now().After(deadline) {
			tb.Fatalf("tracking %d keys, want %d", b.Status().TrackedKeys, n)
		}
		time.Sleep(10 * time.Millisecond) // polling a status: nothing to wait on
	}
}
