package redis

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/internal/redistest"
)

func TestPublishTrackSync(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, sink := newBroker(t, srv.URL(), 10, time.Minute)
	const key = "sdk-1"
	var first hub.Entry
	for i := 1; i <= 3; i++ {
		e := publish(t, b, key, fmt.Sprintf(`{"n":%d}`, i))
		if e.Seq != uint64(i) || e.Key != key || e.Event != "update" || e.TS == 0 || !strings.HasSuffix(e.Epoch, "-r") {
			t.Fatalf("publish %d: %+v", i, e)
		}
		if i == 1 {
			first = e
		} else if e.Epoch != first.Epoch {
			t.Fatalf("epoch changed: %q then %q", first.Epoch, e.Epoch)
		}
	}
	b.Track(key)
	snap := sink.waitSync(t, key, 1)
	if snap.Epoch != first.Epoch || snap.Seq != 3 || snap.Held != 3 || !slices.Equal(historySeqs(snap.History), seqs(1, 3)) {
		t.Fatalf("sync = %+v", snap)
	}
	if h := snap.History[0]; string(h.Data) != `{"n":1}` || h.Event != "update" || h.TS != first.TS || h.Key != key || h.Epoch != first.Epoch {
		t.Fatalf("history[0] = %+v, want like %+v", h, first)
	}
	e4 := publish(t, b, key, "four\nlines")
	sink.waitUntil(t, "apply of seq 4", func() bool { return len(sink.applies) == 1 })
	if got := sink.applies[0]; got.Seq != 4 || got.Epoch != first.Epoch || string(got.Data) != "four\nlines" || got.TS != e4.TS {
		t.Fatalf("apply = %+v, want %+v", got, e4)
	}
	if st := b.Status(); st.State != StateUp || st.TrackedKeys != 1 || st.Publishes != 4 || st.Mode != ModeSingle {
		t.Fatalf("status = %+v", st)
	}
}

func TestTrackCreatesEpoch(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, sink := newBroker(t, srv.URL(), 10, 0)
	b.Track("new")
	snap := sink.waitSync(t, "new", 1)
	if snap.Epoch == "" || snap.Seq != 0 || len(snap.History) != 0 {
		t.Fatalf("sync of a new key = %+v", snap)
	}
	if e := publish(t, b, "new", "x"); e.Epoch != snap.Epoch || e.Seq != 1 {
		t.Fatalf("publish after track = %+v, want epoch %q seq 1", e, snap.Epoch)
	}
}

func TestRefill(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, sink := newBroker(t, srv.URL(), 10, 0)
	const key = "refill"
	b.Track(key)
	epoch := sink.waitSync(t, key, 1).Epoch
	for i := 1; i <= 5; i++ {
		publish(t, b, key, "x")
	}
	sink.waitUntil(t, "5 applies", func() bool { return len(sink.applies) == 5 })

	tests := []struct {
		name  string
		epoch string
		seq   uint64
		want  []uint64
	}{
		{name: "after a gap", epoch: epoch, seq: 2, want: seqs(3, 5)},
		{name: "up to date", epoch: epoch, seq: 5, want: []uint64{}},
		{name: "other epoch", epoch: "old", seq: 4, want: seqs(1, 5)},
		{name: "ahead", epoch: epoch, seq: 9, want: []uint64{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.Refill(key, tt.epoch, tt.seq)
			snap := sink.waitSync(t, key, i+2)
			if snap.Epoch != epoch || snap.Seq != 5 || snap.Held != 5 || !slices.Equal(historySeqs(snap.History), tt.want) {
				t.Fatalf("sync = %+v, want history %v", snap, tt.want)
			}
		})
	}
}

func TestHistorySize(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, sink := newBroker(t, srv.URL(), 3, 0)
	const key = "size"
	for range 10 {
		publish(t, b, key, "x")
	}
	if s, ok, err := b.State(ctxT(t), key); err != nil || !ok || s.Seq != 10 || s.Held != 3 {
		t.Fatalf("State = %+v, %v, %v; want seq 10 held 3", s, ok, err)
	}
	b.Track(key)
	if snap := sink.waitSync(t, key, 1); !slices.Equal(historySeqs(snap.History), seqs(8, 10)) {
		t.Fatalf("sync history %v, want 8..10", historySeqs(snap.History))
	}
	b.Configure(2, 0)
	if s, _, _ := b.State(ctxT(t), key); s.Held != 2 {
		t.Fatalf("held %d after Configure(2), want 2", s.Held)
	}
	b.Configure(0, 0)
	publish(t, b, key, "x")
	if s, _, _ := b.State(ctxT(t), key); s.Held != 0 || s.Seq != 11 {
		t.Fatalf("State with no history = %+v, want seq 11 held 0", s)
	}
	if got := srv.Do(t, "EXISTS", "pg:{k:size}:h"); got != "0" {
		t.Fatalf("stream exists with history size 0")
	}
}

func TestHistoryTTL(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, _ := newBroker(t, srv.URL(), 10, 200*time.Millisecond)
	const key = "ttl"
	e := publish(t, b, key, "a")
	publish(t, b, key, "b")
	if ttl := srv.Do(t, "PTTL", "pg:{k:ttl}:m"); len(ttl) < 8 { // about 24h in ms
		t.Fatalf("meta PTTL %s, want about a day", ttl)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		s, ok, err := b.State(ctxT(t), key)
		if err != nil || !ok {
			t.Fatalf("State: %+v %v %v", s, ok, err)
		}
		if s.Held == 0 {
			if s.Seq != 2 || s.Epoch != e.Epoch {
				t.Fatalf("state after expiry %+v, want seq 2 epoch %q kept", s, e.Epoch)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history still held: %+v", s)
		}
		time.Sleep(20 * time.Millisecond) // waiting for Redis's clock: nothing to wait on
	}
	if e3 := publish(t, b, key, "c"); e3.Seq != 3 || e3.Epoch != e.Epoch {
		t.Fatalf("publish after expiry = %+v", e3)
	}
}

func TestStateUnknownKey(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, _ := newBroker(t, srv.URL(), 10, 0)
	if s, ok, err := b.State(ctxT(t), "nobody"); err != nil || ok || s.Epoch != "" {
		t.Fatalf("State = %+v, %v, %v; want not ok", s, ok, err)
	}
	if got := srv.Do(t, "DBSIZE"); got != "0" {
		t.Fatalf("State created %s keys", got)
	}
}

func TestDrop(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, sinkA := newBroker(t, srv.URL(), 10, 0)
	b, sinkB := newBroker(t, srv.URL(), 10, 0)
	const key = "drop"
	a.Track(key)
	b.Track(key)
	sinkA.waitSync(t, key, 1)
	sinkB.waitSync(t, key, 1)
	e := publish(t, a, key, "x")
	publish(t, a, key, "y")
	old, ok, err := a.Drop(ctxT(t), key)
	if err != nil || !ok || old.Epoch != e.Epoch || old.Seq != 2 || old.Held != 2 {
		t.Fatalf("Drop = %+v, %v, %v", old, ok, err)
	}
	for name, s := range map[string]*fakeSink{"a": sinkA, "b": sinkB} {
		s.waitUntil(t, "drop on "+name, func() bool { return slices.Contains(s.drops, key) })
	}
	if _, ok, err := b.State(ctxT(t), key); ok || err != nil {
		t.Fatalf("State after drop: ok %v, err %v", ok, err)
	}
	if e2 := publish(t, b, key, "z"); e2.Seq != 1 || e2.Epoch == e.Epoch {
		t.Fatalf("publish after drop = %+v, want seq 1 in a new epoch", e2)
	}
	if _, ok, err := a.Drop(ctxT(t), "never"); ok || err != nil {
		t.Fatalf("Drop of an unknown key: ok %v, err %v", ok, err)
	}
}

func TestUntrack(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, sink := newBroker(t, srv.URL(), 10, 0)
	b.Track("a")
	b.Track("b")
	sink.waitSync(t, "a", 1)
	sink.waitSync(t, "b", 1)
	b.Untrack("a")
	waitTracked(t, b, 1)
	publish(t, b, "a", "x")
	publish(t, b, "b", "y")
	sink.waitUntil(t, "apply of b", func() bool { return len(sink.applies) > 0 && sink.applies[len(sink.applies)-1].Key == "b" })
	for _, e := range sink.applies {
		if e.Key == "a" {
			t.Fatalf("apply of untracked key: %+v", e)
		}
	}
}

// TestKeyNames publishes and tracks keys holding the hash tag's and the
// prefix's characters.
func TestKeyNames(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, sink := newBroker(t, srv.URL(), 10, 0)
	keys := []string{"}", "}x", "{", "a{b}c", "pg:{k:x}:m", "nodes", "k:", "ünï cødé", strings.Repeat("k", hub.MaxKeyLen)}
	for _, k := range keys {
		b.Track(k)
	}
	for _, k := range keys {
		sink.waitSync(t, k, 1)
		publish(t, b, k, k)
	}
	sink.waitUntil(t, "every key's message", func() bool { return len(sink.applies) == len(keys) })
	for i, e := range sink.applies {
		if string(e.Data) != e.Key || e.Seq != 1 {
			t.Fatalf("apply %d = %+v", i, e)
		}
	}
}

func TestOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, sink := newBroker(t, srv.URL(), 10, 0)
	const key = "outage"
	b.Track(key)
	snap := sink.waitSync(t, key, 1)
	publish(t, b, key, "before")
	sink.waitUntil(t, "apply", func() bool { return len(sink.applies) == 1 })

	srv.Kill(t)
	start := time.Now()
	_, err := b.Publish(ctxT(t), key, "update", []byte("during"))
	if !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Publish during outage: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Publish took %v to fail", d)
	}
	if _, _, err := b.State(ctxT(t), key); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("State during outage: %v", err)
	}
	if st := waitStatus(t, b, StateDown); st.LastError == "" {
		t.Fatalf("down with no error: %+v", st)
	}

	srv.Restart(t) // empty: the history is lost
	resync := sink.waitSync(t, key, 2)
	if resync.Epoch == snap.Epoch || resync.Seq != 0 {
		t.Fatalf("sync after restart = %+v, want a new epoch (old %q) at seq 0", resync, snap.Epoch)
	}
	st := waitStatus(t, b, StateUp)
	if st.Reconnects == 0 {
		t.Fatalf("no reconnect counted: %+v", st)
	}
	e := publish(t, b, key, "after")
	if e.Epoch != resync.Epoch || e.Seq != 1 {
		t.Fatalf("publish after restart = %+v, want seq 1 in %q", e, resync.Epoch)
	}
	sink.waitUntil(t, "apply after restart", func() bool {
		last := sink.applies[len(sink.applies)-1]
		return last.Epoch == resync.Epoch && last.Seq == 1
	})
}

func TestStartDuringOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Kill(t)
	b, sink := newBroker(t, srv.URL(), 10, 0)
	b.Track("k")
	if _, err := b.Publish(ctxT(t), "k", "update", nil); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Publish with Redis down: %v", err)
	}
	waitStatus(t, b, StateDown)
	srv.Restart(t)
	snap := sink.waitSync(t, "k", 1)
	if e := publish(t, b, "k", "x"); e.Epoch != snap.Epoch || e.Seq != 1 {
		t.Fatalf("publish = %+v after sync %+v", e, snap)
	}
	waitStatus(t, b, StateUp)
}

// TestPubSubKilled kills the pub/sub connection again and again while
// another node publishes: messages sent while it was gone come through the
// sync that follows the resubscription, so every seq reaches the sink.
func TestPubSubKilled(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	pub, _ := newBroker(t, srv.URL(), 1000, 0)
	b, sink := newBroker(t, srv.URL(), 1000, 0)
	const key = "flaky"
	b.Track(key)
	epoch := sink.waitSync(t, key, 1).Epoch
	const total = 300
	for i := 1; i <= total; i++ {
		publish(t, pub, key, fmt.Sprint(i))
		if i%50 == 0 {
			srv.Do(t, "CLIENT", "KILL", "TYPE", "pubsub")
		}
	}
	sink.waitUntil(t, "every seq", func() bool { return len(sink.seenLocked(key, epoch)) == total })
	if got := sink.seen(key, epoch); !slices.Equal(got, seqs(1, total)) {
		t.Fatalf("seqs seen %v", got)
	}
	// Each handed-over message carries its data.
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, e := range sink.applies {
		if !bytes.Equal(e.Data, []byte(fmt.Sprint(e.Seq))) {
			t.Fatalf("apply %+v carries the wrong data", e)
		}
	}
	if b.Status().Reconnects == 0 {
		t.Fatal("no reconnect counted")
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, _ := newBroker(t, srv.URL(), 10, 0)
	ctx := ctxT(t)
	nodes := []hub.Node{
		{ID: "c", Address: "wss://c/rt", Zone: "z1", Connections: 5, Started: 1},
		{ID: "a", Address: "wss://a/rt", Zone: "z2", Connections: 9, Started: 2},
		{ID: "b", Address: "wss://b/rt", Connections: 5, Started: 3},
	}
	for _, n := range nodes {
		if err := b.Announce(ctx, n, time.Minute); err != nil {
			t.Fatalf("Announce(%s): %v", n.ID, err)
		}
	}
	if err := b.Announce(ctx, hub.Node{ID: "short"}, 150*time.Millisecond); err != nil {
		t.Fatalf("Announce(short): %v", err)
	}
	ids := func() []string {
		got, err := b.Nodes(ctx)
		if err != nil {
			t.Fatalf("Nodes: %v", err)
		}
		var out []string
		for _, n := range got {
			out = append(out, n.ID)
		}
		return out
	}
	if got := ids(); !slices.Equal(got, []string{"short", "b", "c", "a"}) {
		t.Fatalf("nodes %v", got)
	}
	got, _ := b.Nodes(ctx)
	if n := got[2]; n.Address != "wss://c/rt" || n.Zone != "z1" || n.Started != 1 || n.Updated == 0 {
		t.Fatalf("node c = %+v", n)
	}
	deadline := time.Now().Add(waitTimeout)
	for slices.Contains(ids(), "short") {
		if time.Now().After(deadline) {
			t.Fatal("expired node still listed")
		}
		time.Sleep(20 * time.Millisecond) // waiting for Redis's clock: nothing to wait on
	}
	if err := b.Leave(ctx, "b"); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	nodes[2].Connections = 0
	if err := b.Announce(ctx, hub.Node{ID: "a", Connections: 1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := ids(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("nodes after leave and update %v", got)
	}
	if err := b.Announce(ctx, hub.Node{}, time.Minute); !errors.Is(err, ErrBadNode) {
		t.Fatalf("Announce without id: %v", err)
	}
	if ttl := srv.Do(t, "PTTL", "pg:{nodes}:z"); ttl == "-1" {
		t.Fatal("registry never expires")
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	b, sink := newBroker(t, c.URL(), 10, time.Minute)
	if st := b.Status(); st.Mode != ModeCluster {
		t.Fatalf("mode %s", st.Mode)
	}
	var keys []string
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("key-%d", i))
	}
	keys = append(keys, "}", "a{b}c", "{")
	for _, k := range keys {
		publish(t, b, k, "1")
		b.Track(k)
	}
	for _, k := range keys {
		if snap := sink.waitSync(t, k, 1); snap.Seq != 1 || len(snap.History) != 1 {
			t.Fatalf("sync of %q = %+v", k, snap)
		}
		publish(t, b, k, "2")
	}
	// Seq 1 may come by Apply too: the cluster bus may carry a PUBLISH to
	// the node this broker subscribes on after the subscription.
	second := func() (n int) {
		for _, e := range sink.applies {
			if e.Seq == 2 && string(e.Data) == "2" {
				n++
			}
		}
		return n
	}
	sink.waitUntil(t, "seq 2 of every key", func() bool { return second() == len(keys) })
	// Keys live on every master.
	for _, n := range c.Nodes {
		if n.Do(t, "DBSIZE") == "0" {
			t.Fatalf("node %s holds no key", n.Addr)
		}
	}
	if err := b.Announce(ctxT(t), hub.Node{ID: "n1"}, time.Minute); err != nil {
		t.Fatalf("Announce on cluster: %v", err)
	}
	if nodes, err := b.Nodes(ctxT(t)); err != nil || len(nodes) != 1 {
		t.Fatalf("Nodes on cluster: %v, %v", nodes, err)
	}
	if _, ok, err := b.Drop(ctxT(t), "key-7"); !ok || err != nil {
		t.Fatalf("Drop on cluster: %v %v", ok, err)
	}
	sink.waitUntil(t, "drop", func() bool { return slices.Contains(sink.drops, "key-7") })
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	master := redistest.Start(t, redistest.WithPassword("pw"))
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	b, sink := newBroker(t, sentinel.URL(), 10, 0)
	if st := b.Status(); st.Mode != ModeSentinel || strings.Contains(st.URL, "pw@") {
		t.Fatalf("status %+v", st)
	}
	b.Track("s")
	sink.waitSync(t, "s", 1)
	e := publish(t, b, "s", "x")
	sink.waitUntil(t, "apply", func() bool { return len(sink.applies) == 1 })
	if got := master.Do(t, "HGET", "pg:{k:s}:m", "e"); got != e.Epoch {
		t.Fatalf("epoch on the master %q, want %q", got, e.Epoch)
	}
}

func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, err := New(Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	b.Start(newSink())
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Publish(ctxT(t), "k", "e", nil); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Publish after Close: %v", err)
	}
	// Never started: Close must not hang.
	b2, _ := New(Options{URL: srv.URL()})
	if err := b2.Close(); err != nil {
		t.Fatalf("Close unstarted: %v", err)
	}
}
