package hub_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

// event is one call the hub made on a recorder.
type event struct {
	kind  string // "registered", "resync", "message"
	key   string
	epoch string
	seq   uint64
	data  string
}

func (e event) String() string { return fmt.Sprintf("%s %s@%s:%d", e.kind, e.key, e.epoch, e.seq) }

// recorder is a Follower that records every call. With limit > 0 it
// accepts that many Deliver/Notify calls and then reports a full queue.
type recorder struct {
	mu       sync.Mutex
	events   []event
	limit    int
	attempts int
	closes   []hub.Reason
}

func (r *recorder) accept(e event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.limit > 0 && len(r.events) >= r.limit {
		return false
	}
	r.events = append(r.events, e)
	return true
}

func (r *recorder) Deliver(m *hub.Message) bool {
	return r.accept(event{kind: "message", key: m.Key, epoch: m.Epoch, seq: m.Seq, data: string(m.Data)})
}

func (r *recorder) Notify(n hub.Notice) bool {
	kind := map[hub.NoticeKind]string{hub.NoticeRegistered: "registered", hub.NoticeResync: "resync"}[n.Kind]
	return r.accept(event{kind: kind, key: n.Key, epoch: n.Epoch, seq: n.Seq})
}

func (r *recorder) Close(reason hub.Reason) {
	r.mu.Lock()
	r.closes = append(r.closes, reason)
	r.mu.Unlock()
}

func (r *recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func (r *recorder) snapshot() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

func (r *recorder) closeReasons() []hub.Reason {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hub.Reason(nil), r.closes...)
}

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newHub returns a hub without a background sweeper (tests call SweepNow)
// that is checked for consistency and closed when the test ends.
func newHub(tb testing.TB, opts ...hub.Option) *hub.Hub {
	tb.Helper()
	h := hub.New(append([]hub.Option{hub.WithSweepInterval(-1)}, opts...)...)
	tb.Cleanup(func() {
		if err := h.CheckInvariants(); err != nil {
			tb.Errorf("hub invariants: %v", err)
		}
		h.Close()
	})
	return h
}

// publish publishes and fails the test on error.
func publish(tb testing.TB, h *hub.Hub, key, data string) hub.Published {
	tb.Helper()
	p, err := h.Publish(key, "", []byte(data))
	if err != nil {
		tb.Fatalf("Publish(%q): %v", key, err)
	}
	return p
}

// follow subscribes a new recorder to key.
func follow(tb testing.TB, h *hub.Hub, key string, since uint64, epoch string, resume bool) (*recorder, *hub.Subscription) {
	tb.Helper()
	r := &recorder{}
	s := h.Subscribe(r)
	tb.Cleanup(s.Close)
	if err := s.Follow(key, since, epoch, resume); err != nil {
		tb.Fatalf("Follow(%q): %v", key, err)
	}
	return r, s
}

// seqs renders events compactly for comparisons.
func seqs(ev []event) []string {
	out := make([]string, len(ev))
	for i, e := range ev {
		out[i] = fmt.Sprintf("%s:%d", e.kind, e.seq)
	}
	return out
}

func checkInvariants(tb testing.TB, h *hub.Hub) {
	tb.Helper()
	if err := h.CheckInvariants(); err != nil {
		tb.Fatal(err)
	}
}
