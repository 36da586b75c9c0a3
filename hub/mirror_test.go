package hub_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

// store is an in-memory stand-in for the shared store behind a Broker, so
// that hub tests can run several hubs ("nodes") against one store and make
// its transport lose messages on purpose. The real store (Redis) is tested
// in broker/redis and in the integration tests.
type store struct {
	mu    sync.Mutex
	keys  map[string]*storeKey
	nodes []*storeNode
	size  int // history kept per key
	gen   int // epochs handed out
	down  bool
}

type storeKey struct {
	epoch string
	seq   uint64
	hist  []hub.Entry
}

func newStore(size int) *store { return &store{keys: map[string]*storeKey{}, size: size} }

// node returns a Broker for one more hub on the store.
func (s *store) node() *storeNode {
	n := &storeNode{s: s, tracked: map[string]bool{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	s.mu.Lock()
	s.nodes = append(s.nodes, n)
	s.mu.Unlock()
	return n
}

// keyLocked returns key's state, creating its epoch.
func (s *store) keyLocked(key string) *storeKey {
	k := s.keys[key]
	if k == nil {
		s.gen++
		k = &storeKey{epoch: "s" + strconv.Itoa(s.gen)}
		s.keys[key] = k
	}
	return k
}

// reset loses every key's history, as a store restarted without
// persistence does; tracking nodes resync.
func (s *store) reset() {
	s.mu.Lock()
	s.keys = map[string]*storeKey{}
	nodes := slices.Clone(s.nodes)
	s.mu.Unlock()
	for _, n := range nodes {
		n.mu.Lock()
		for key := range n.tracked {
			n.queue = append(n.queue, call{kind: "sync", key: key})
		}
		n.mu.Unlock()
		n.kick()
	}
}

// storeNode is one hub's Broker. Calls into the sink are made in order by
// one goroutine, as a real broker's receive loop makes them.
type storeNode struct {
	s       *store
	sink    hub.Sink
	mu      sync.Mutex
	tracked map[string]bool
	queue   []call
	lose    atomic.Int64 // the next n messages to this node are lost
	wake    chan struct{}
	stop    chan struct{}
	refills atomic.Int64
}

type call struct {
	kind  string // "apply", "sync", "drop"
	key   string
	entry hub.Entry
	epoch string
	after uint64
	full  bool
}

func (n *storeNode) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *storeNode) Start(s hub.Sink) {
	n.sink = s
	go n.loop()
}

func (n *storeNode) close() { close(n.stop) }

func (n *storeNode) loop() {
	for {
		select {
		case <-n.stop:
			return
		case <-n.wake:
		}
		for {
			n.mu.Lock()
			if len(n.queue) == 0 {
				n.mu.Unlock()
				break
			}
			c := n.queue[0]
			n.queue = n.queue[1:]
			n.mu.Unlock()
			switch c.kind {
			case "apply":
				n.sink.Apply(c.entry)
			case "drop":
				n.sink.Drop(c.key, c.epoch)
			case "sync":
				n.sink.Sync(c.key, n.s.snapshot(c.key, c.epoch, c.after, c.full))
			}
		}
	}
}

func (s *store) snapshot(key, epoch string, after uint64, full bool) hub.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keyLocked(key)
	snap := hub.Snapshot{Epoch: k.epoch, Seq: k.seq, Held: len(k.hist)}
	for _, e := range k.hist {
		if full || epoch != k.epoch || e.Seq > after {
			snap.History = append(snap.History, e)
		}
	}
	return snap
}

func (n *storeNode) Publish(_ context.Context, key, event string, data []byte) (hub.Entry, error) {
	s := n.s
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		return hub.Entry{}, fmt.Errorf("store down: %w", hub.ErrUnavailable)
	}
	k := s.keyLocked(key)
	k.seq++
	e := hub.Entry{Key: key, Epoch: k.epoch, Seq: k.seq, Event: event, Data: data, TS: time.Now().UnixMilli()}
	k.hist = append(k.hist, e)
	if len(k.hist) > s.size {
		k.hist = k.hist[len(k.hist)-s.size:]
	}
	nodes := slices.Clone(s.nodes)
	// Hand the message to every tracking node while holding the store's
	// lock: store order is seq order.
	for _, o := range nodes {
		o.mu.Lock()
		if o.tracked[key] {
			if o.lose.Load() > 0 {
				o.lose.Add(-1)
			} else {
				o.queue = append(o.queue, call{kind: "apply", entry: e})
			}
		}
		o.mu.Unlock()
		o.kick()
	}
	s.mu.Unlock()
	return e, nil
}

func (n *storeNode) Track(key string) {
	// The store's lock orders the subscription against publishes: nothing
	// published after it is missed, and the sync reads after it.
	n.mu.Lock()
	n.tracked[key] = true
	n.queue = append(n.queue, call{kind: "sync", key: key, full: true})
	n.mu.Unlock()
	n.kick()
}

func (n *storeNode) Untrack(key string) {
	n.mu.Lock()
	delete(n.tracked, key)
	n.mu.Unlock()
}

func (n *storeNode) Refill(key, epoch string, seq uint64) {
	n.refills.Add(1)
	n.mu.Lock()
	n.queue = append(n.queue, call{kind: "sync", key: key, epoch: epoch, after: seq})
	n.mu.Unlock()
	n.kick()
}

func (n *storeNode) State(_ context.Context, key string) (hub.Snapshot, bool, error) {
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[key]
	if k == nil {
		return hub.Snapshot{}, false, nil
	}
	return hub.Snapshot{Epoch: k.epoch, Seq: k.seq, Held: len(k.hist)}, true, nil
}

func (n *storeNode) Drop(_ context.Context, key string) (hub.Snapshot, bool, error) {
	s := n.s
	s.mu.Lock()
	k := s.keys[key]
	delete(s.keys, key)
	var epoch string
	if k != nil {
		epoch = k.epoch
	}
	nodes := slices.Clone(s.nodes)
	for _, o := range nodes {
		o.mu.Lock()
		if o.tracked[key] {
			o.queue = append(o.queue, call{kind: "drop", key: key, epoch: epoch})
		}
		o.mu.Unlock()
		o.kick()
	}
	s.mu.Unlock()
	if k == nil {
		return hub.Snapshot{}, false, nil
	}
	return hub.Snapshot{Epoch: k.epoch, Seq: k.seq, Held: len(k.hist)}, true, nil
}

var _ hub.Broker = (*storeNode)(nil)

// cluster starts n hubs on one store.
func cluster(t *testing.T, n, size int) (*store, []*hub.Hub, []*storeNode) {
	t.Helper()
	s := newStore(size)
	var hubs []*hub.Hub
	var nodes []*storeNode
	for range n {
		b := s.node()
		h := hub.New(hub.WithBroker(b), hub.WithHistorySize(size), hub.WithSweepInterval(-1))
		t.Cleanup(func() { h.Close(); b.close() })
		hubs = append(hubs, h)
		nodes = append(nodes, b)
	}
	return s, hubs, nodes
}

// waitEvents waits until r holds want events and returns them.
func waitEvents(t *testing.T, r *recorder, want int) []event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev := r.snapshot()
		if len(ev) >= want {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d events, want %d: %v", len(ev), want, ev)
		}
		time.Sleep(time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// checkSeqs asserts that the messages in ev are exactly from..to in order.
func checkSeqs(t *testing.T, ev []event, from, to uint64) {
	t.Helper()
	next := from
	for _, e := range ev {
		if e.kind != "message" {
			continue
		}
		if e.seq != next {
			t.Fatalf("message seq %d, want %d: %v", e.seq, next, ev)
		}
		next++
	}
	if next != to+1 {
		t.Fatalf("messages up to %d, want %d: %v", next-1, to, ev)
	}
}

func TestMirrorFollowOnOneNodePublishOnAnother(t *testing.T) {
	_, hubs, _ := cluster(t, 2, 16)
	a, b := hubs[0], hubs[1]
	r := &recorder{}
	sub := a.Subscribe(r)
	if err := sub.Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	ev := waitEvents(t, r, 1)
	if ev[0].kind != "registered" || ev[0].seq != 0 || ev[0].epoch == "" {
		t.Fatalf("first event %v, want registered at 0 with the store's epoch", ev[0])
	}
	for i := 1; i <= 5; i++ {
		p, err := b.Publish("k", "", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if p.Seq != uint64(i) || p.Epoch != ev[0].epoch || p.LocalReceivers != 0 {
			t.Fatalf("publish on b = %+v", p)
		}
	}
	checkSeqs(t, waitEvents(t, r, 6)[1:], 1, 5)

	// A publish on the follower's own node answers once it reached it.
	p, err := a.Publish("k", "", []byte("6"))
	if err != nil || p.Seq != 6 || p.LocalReceivers != 1 {
		t.Fatalf("publish on a = %+v, %v; want seq 6 with 1 local receiver", p, err)
	}
	checkSeqs(t, waitEvents(t, r, 7)[1:], 1, 6)
}

func TestMirrorResumeOnAnotherNode(t *testing.T) {
	_, hubs, _ := cluster(t, 3, 16)
	for i := 1; i <= 8; i++ {
		if _, err := hubs[1].Publish("k", "", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	info, ok, err := hubs[0].KeyInfo("k")
	if err != nil || !ok || info.Seq != 8 || info.History != 8 {
		t.Fatalf("KeyInfo on a node without followers = %+v, %v, %v", info, ok, err)
	}
	tests := []struct {
		name  string
		since uint64
		epoch string
		want  []string // kinds after registered
		first uint64
	}{
		{name: "same epoch", since: 5, epoch: info.Epoch, want: []string{"message", "message", "message"}, first: 6},
		{name: "other epoch", since: 5, epoch: "elsewhere", want: []string{"resync"}},
		{name: "up to date", since: 8, epoch: info.Epoch, want: nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hubs[2-i%2]
			r := &recorder{}
			sub := h.Subscribe(r)
			defer sub.Close()
			if err := sub.Follow("k", tc.since, tc.epoch, true); err != nil {
				t.Fatal(err)
			}
			ev := waitEvents(t, r, 1+len(tc.want))
			if ev[0].kind != "registered" || ev[0].seq != 8 {
				t.Fatalf("events %v", ev)
			}
			for j, k := range tc.want {
				if ev[1+j].kind != k {
					t.Fatalf("events %v, want %v after registered", ev, tc.want)
				}
			}
			if tc.first > 0 {
				checkSeqs(t, ev[1:], tc.first, 8)
			}
		})
	}
}

func TestMirrorFillsLostMessages(t *testing.T) {
	_, hubs, nodes := cluster(t, 2, 64)
	r := &recorder{}
	sub := hubs[0].Subscribe(r)
	if err := sub.Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, r, 1)
	for i := 1; i <= 30; i++ {
		if i%7 == 0 {
			nodes[0].lose.Store(2) // the transport drops two messages
		}
		if _, err := hubs[1].Publish("k", "", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	checkSeqs(t, waitEvents(t, r, 31)[1:], 1, 30)
	if nodes[0].refills.Load() == 0 {
		t.Fatal("no refill asked for")
	}
	if err := hubs[0].CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestMirrorLostLastMessageFoundByPublisher(t *testing.T) {
	// The node's own publish is lost on the way back and nothing follows
	// it: the publisher's wait runs out and refills the mirror.
	_, hubs, nodes := cluster(t, 1, 16)
	r := &recorder{}
	sub := hubs[0].Subscribe(r)
	if err := sub.Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, r, 1)
	nodes[0].lose.Store(1)
	p, err := hubs[0].Publish("k", "", []byte("x"))
	if err != nil || p.Seq != 1 {
		t.Fatalf("publish = %+v, %v", p, err)
	}
	checkSeqs(t, waitEvents(t, r, 2)[1:], 1, 1)
}

func TestMirrorHistoryLostResyncs(t *testing.T) {
	s, hubs, _ := cluster(t, 2, 16)
	r := &recorder{}
	sub := hubs[0].Subscribe(r)
	if err := sub.Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, r, 1)
	for range 3 {
		if _, err := hubs[1].Publish("k", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	waitEvents(t, r, 4)
	old := r.snapshot()[0].epoch
	s.reset()
	p, err := hubs[1].Publish("k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Epoch == old || p.Seq != 1 {
		t.Fatalf("publish after reset = %+v, want a new epoch at seq 1", p)
	}
	// The reset's sync brings the new epoch at seq 0 (resync), then seq 1
	// arrives live; or the publish overtook the sync: resync at 1.
	ev := waitEvents(t, r, 5)
	resync := ev[4]
	if resync.kind != "resync" || resync.epoch != p.Epoch {
		t.Fatalf("events %v: want a resync to epoch %s", ev, p.Epoch)
	}
	if resync.seq == 0 {
		ev = waitEvents(t, r, 6)
		if m := ev[5]; m.kind != "message" || m.epoch != p.Epoch || m.seq != 1 {
			t.Fatalf("events %v: want seq 1 of the new epoch after the resync", ev)
		}
	}
}

func TestMirrorConcurrentPublishersOneOrder(t *testing.T) {
	const perNode, nodes = 100, 3
	_, hubs, _ := cluster(t, nodes, 512)
	var recs []*recorder
	for _, h := range hubs {
		for range 2 {
			r := &recorder{}
			if err := h.Subscribe(r).Follow("k", 0, "", false); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
	}
	for _, r := range recs {
		waitEvents(t, r, 1)
	}
	var wg sync.WaitGroup
	seqs := make(chan uint64, perNode*nodes)
	for _, h := range hubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perNode {
				p, err := h.Publish("k", "", []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- p.Seq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	var got []uint64
	for s := range seqs {
		got = append(got, s)
	}
	slices.Sort(got)
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("publish seqs are not 1..%d: %v", perNode*nodes, got)
		}
	}
	for _, r := range recs {
		checkSeqs(t, waitEvents(t, r, 1+perNode*nodes)[1:], 1, perNode*nodes)
	}
}

func TestMirrorConfirm(t *testing.T) {
	_, hubs, _ := cluster(t, 1, 16)
	h := hubs[0]
	r := &recorder{}
	sub := h.Subscribe(r)
	if err := sub.Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, r, 1)
	p, conf, err := h.PublishConfirm("k", "", []byte("x"))
	if err != nil || p.LocalReceivers != 1 {
		t.Fatalf("PublishConfirm = %+v, %v", p, err)
	}
	go sub.Ack("k", p.Seq)
	if acked, written := conf.Wait(5 * time.Second); acked != 1 || written != 1 {
		t.Fatalf("Wait = %d acked of %d written, want 1 of 1", acked, written)
	}
	// A key nobody follows here: nothing to wait for.
	_, conf, err = h.PublishConfirm("other", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if acked, written := conf.Wait(time.Second); acked != 0 || written != 0 {
		t.Fatalf("Wait = %d of %d, want 0 of 0", acked, written)
	}
}

func TestMirrorDropKey(t *testing.T) {
	_, hubs, _ := cluster(t, 2, 16)
	r := &recorder{}
	if err := hubs[0].Subscribe(r).Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, r, 1)
	first, err := hubs[1].Publish("k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	info, ok, err := hubs[1].DropKey("k")
	if err != nil || !ok || info.Seq != 1 {
		t.Fatalf("DropKey = %+v, %v, %v", info, ok, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(r.closeReasons()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("follower on the other node not closed")
		}
		time.Sleep(time.Millisecond)
	}
	if got := r.closeReasons(); got[0] != hub.ReasonKeyDropped {
		t.Fatalf("closed with %v", got)
	}
	p, err := hubs[1].Publish("k", "", nil)
	if err != nil || p.Epoch == first.Epoch || p.Seq != 1 {
		t.Fatalf("publish after drop = %+v, %v; want a new epoch", p, err)
	}
}

func TestMirrorUnavailable(t *testing.T) {
	s, hubs, _ := cluster(t, 1, 16)
	s.mu.Lock()
	s.down = true
	s.mu.Unlock()
	if _, err := hubs[0].Publish("k", "", nil); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Publish with the store down = %v, want ErrUnavailable", err)
	}
}

func TestMirrorReadWaitsForSync(t *testing.T) {
	_, hubs, _ := cluster(t, 2, 16)
	for range 3 {
		if _, err := hubs[1].Publish("k", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	res, err := hubs[0].Read("k", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resync || res.Seq != 3 {
		t.Fatalf("Read(since 1, no epoch) = %+v, want resync at 3", res)
	}
	res, err = hubs[0].Read("k", 1, res.Epoch)
	if err != nil || len(res.Messages) != 2 || res.Messages[0].Seq != 2 {
		t.Fatalf("Read(since 1) = %+v, %v", res, err)
	}
}

// TestMirrorRaces runs publishers on three nodes, a transport that loses
// messages, and followers that come and go, and then checks what every
// follower saw: after registered or resync, each message is the next seq
// of that epoch. Run with -race.
func TestMirrorRaces(t *testing.T) {
	const (
		publishes = 300 // per node
		followers = 12  // per node, each following and re-following
	)
	_, hubs, nodes := cluster(t, 3, 32)
	keys := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for i, h := range hubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range publishes {
				if j%50 == 0 {
					nodes[(i+1)%3].lose.Store(1)
				}
				if _, err := h.Publish(keys[j%3], "", []byte("x")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var recs []*recorder
	var recMu sync.Mutex
	for i, h := range hubs {
		for f := range followers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range 3 {
					r := &recorder{}
					recMu.Lock()
					recs = append(recs, r)
					recMu.Unlock()
					sub := h.Subscribe(r)
					key := keys[(i+f+round)%3]
					if err := sub.Follow(key, 0, "", false); err != nil {
						t.Error(err)
						return
					}
					// Stay until a few messages came or the run ends.
					deadline := time.Now().Add(time.Second)
					for len(r.snapshot()) < 5 && time.Now().Before(deadline) {
						runtime.Gosched()
					}
					sub.Close()
				}
			}()
		}
	}
	wg.Wait()
	for _, r := range recs {
		var epoch string
		var next uint64
		for _, e := range r.snapshot() {
			switch e.kind {
			case "registered", "resync":
				epoch, next = e.epoch, e.seq+1
			case "message":
				if e.epoch != epoch || e.seq != next {
					t.Fatalf("follower saw %v after %s:%d: %v", e, epoch, next-1, r.snapshot())
				}
				next++
			}
		}
	}
	// Messages and refills to the other nodes may still be in flight after
	// the publishers return, and CheckInvariants counts shard by shard
	// before it reads the hub's counters: wait for a consistent reading
	// rather than take one mid-delivery. A real violation stays.
	for _, h := range hubs {
		deadline := time.Now().Add(5 * time.Second)
		for err := h.CheckInvariants(); err != nil; err = h.CheckInvariants() {
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond) // polling a condition, bounded by the deadline
		}
	}
}

func TestMirrorDropNoticeSparesNewerState(t *testing.T) {
	// A long poll woken by DELETE comes back at once and makes a new mirror
	// before this node hears of the drop: the notice, about the old epoch,
	// must not take the new mirror with it.
	_, hubs, _ := cluster(t, 1, 16)
	h := hubs[0]
	p, err := h.Publish("k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Read("k", 0, ""); err != nil { // tracks k
		t.Fatal(err)
	}
	h.Drop("k", p.Epoch)
	res, err := h.Read("k", 0, "") // a new mirror, synced to the store
	if err != nil {
		t.Fatal(err)
	}
	h.Drop("k", "some-older-epoch")
	if res2, err := h.Read("k", 0, ""); err != nil || res2.Epoch != res.Epoch {
		t.Fatalf("Read after a stale drop notice = %+v, %v; want epoch %s kept", res2, err, res.Epoch)
	}
}
