package redis

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/internal/redistest"
)

// follower records what a hub hands one connection.
type follower struct {
	mu      sync.Mutex
	msgs    []*hub.Message
	notices []hub.Notice
	closed  hub.Reason
	changed chan struct{}
}

func newFollower() *follower { return &follower{changed: make(chan struct{}, 1)} }

func (f *follower) nudge() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *follower) Deliver(m *hub.Message) bool {
	f.mu.Lock()
	f.msgs = append(f.msgs, m)
	f.mu.Unlock()
	f.nudge()
	return true
}

func (f *follower) Notify(n hub.Notice) bool {
	f.mu.Lock()
	f.notices = append(f.notices, n)
	f.mu.Unlock()
	f.nudge()
	return true
}

func (f *follower) Close(r hub.Reason) {
	f.mu.Lock()
	f.closed = r
	f.mu.Unlock()
	f.nudge()
}

// waitMsgs waits until f holds n messages.
func (f *follower) waitMsgs(tb testing.TB, n int) []*hub.Message {
	tb.Helper()
	ok := f.wait(func() bool { return len(f.msgs) >= n })
	f.mu.Lock()
	defer f.mu.Unlock()
	if !ok {
		var seqs []uint64
		for _, m := range f.msgs {
			seqs = append(seqs, m.Seq)
		}
		tb.Fatalf("follower has %d messages, want %d; notices %+v; seqs %v", len(f.msgs), n, f.notices, seqs)
	}
	return f.msgs
}

// waitNotices waits until f holds n notices.
func (f *follower) waitNotices(tb testing.TB, n int) {
	tb.Helper()
	if !f.wait(func() bool { return len(f.notices) >= n }) {
		f.mu.Lock()
		defer f.mu.Unlock()
		tb.Fatalf("follower has %d notices, want %d", len(f.notices), n)
	}
}

// wait waits until cond, called with f locked, holds; false if waitTimeout
// runs out first.
func (f *follower) wait(cond func() bool) bool {
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-f.changed:
		case <-deadline.C:
			return false
		}
	}
}

// newNode is a hub in cluster mode on url: one gateway node.
func newNode(tb testing.TB, url string) *hub.Hub {
	tb.Helper()
	b, err := New(Options{URL: url, HistorySize: 1000, HistoryTTL: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	h := hub.New(hub.WithBroker(b), hub.WithHistorySize(1000), hub.WithHistoryTTL(time.Minute))
	tb.Cleanup(func() {
		h.Close()
		b.Close()
	})
	return h
}

// TestHubsShareKeys runs two hubs on one Redis: concurrent publishers on
// both, with the pub/sub connections killed meanwhile, and a follower on
// each sees one order, 1..n, with no gap and no duplicate.
func TestHubsShareKeys(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := newNode(t, srv.URL()), newNode(t, srv.URL())
	const key = "shared"
	fa, fb := newFollower(), newFollower()
	for _, x := range []struct {
		h *hub.Hub
		f *follower
	}{{a, fa}, {b, fb}} {
		if err := x.h.Subscribe(x.f).Follow(key, 0, "", false); err != nil {
			t.Fatal(err)
		}
	}
	// Registration completes when the node's first Sync arrives.
	for _, f := range []*follower{fa, fb} {
		f.waitNotices(t, 1)
	}
	const perNode = 150
	var wg sync.WaitGroup
	for i, h := range []*hub.Hub{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perNode {
				if _, err := h.Publish(key, "update", fmt.Appendf(nil, `"%d-%d"`, i, j)); err != nil {
					t.Errorf("node %d publish %d: %v", i, j, err)
					return
				}
				if j%40 == 39 && i == 0 {
					if _, err := srv.Try("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
						t.Errorf("CLIENT KILL: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	var first []*hub.Message
	for name, f := range map[string]*follower{"a": fa, "b": fb} {
		msgs := f.waitMsgs(t, 2*perNode)
		for i, m := range msgs {
			if m.Seq != uint64(i+1) {
				t.Fatalf("follower %s: message %d has seq %d", name, i, m.Seq)
			}
		}
		if first == nil {
			first = msgs
			continue
		}
		for i := range msgs {
			if string(msgs[i].Data) != string(first[i].Data) || msgs[i].Epoch != first[i].Epoch {
				t.Fatalf("seq %d: %s on one node, %s on the other", i+1, msgs[i].Data, first[i].Data)
			}
		}
	}
	for name, f := range map[string]*follower{"a": fa, "b": fb} {
		for _, n := range f.notices {
			if n.Kind == hub.NoticeResync {
				t.Fatalf("follower %s got a resync: %+v", name, n)
			}
		}
	}
}

// TestHubsOutage: with Redis down a hub's publish fails with
// ErrUnavailable and followers stay; when Redis comes back empty, followers
// get a resync to the new epoch and then its messages.
func TestHubsOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := newNode(t, srv.URL()), newNode(t, srv.URL())
	const key = "outage"
	f := newFollower()
	if err := a.Subscribe(f).Follow(key, 0, "", false); err != nil {
		t.Fatal(err)
	}
	f.waitNotices(t, 1)
	if _, err := b.Publish(key, "update", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	old := f.waitMsgs(t, 1)[0].Epoch

	srv.Kill(t)
	if _, err := b.Publish(key, "update", []byte(`2`)); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("publish with Redis down: %v", err)
	}
	srv.Restart(t)
	f.waitNotices(t, 2)
	f.mu.Lock()
	n, closed := f.notices[1], f.closed
	f.mu.Unlock()
	if n.Kind != hub.NoticeResync || n.Epoch == old || n.Seq != 0 || closed != 0 {
		t.Fatalf("notice after restart %+v (closed %d), want resync to a new epoch at 0", n, closed)
	}
	if _, err := b.Publish(key, "update", []byte(`3`)); err != nil {
		t.Fatal(err)
	}
	if m := f.waitMsgs(t, 2)[1]; m.Epoch != n.Epoch || m.Seq != 1 || string(m.Data) != "3" {
		t.Fatalf("message after restart %+v", m)
	}
}
