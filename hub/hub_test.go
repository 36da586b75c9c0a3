package hub_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

func TestPublishSeqAndEpoch(t *testing.T) {
	h := newHub(t)
	p1 := publish(t, h, "a", `1`)
	p2 := publish(t, h, "a", `2`)
	p3 := publish(t, h, "a", `3`)
	q1 := publish(t, h, "b", `1`)
	if p1.Seq != 1 || p2.Seq != 2 || p3.Seq != 3 {
		t.Fatalf("seqs %d %d %d, want 1 2 3", p1.Seq, p2.Seq, p3.Seq)
	}
	if p1.Epoch == "" || p1.Epoch != p2.Epoch || p2.Epoch != p3.Epoch {
		t.Fatalf("epochs %q %q %q, want one non-empty epoch", p1.Epoch, p2.Epoch, p3.Epoch)
	}
	if q1.Seq != 1 || q1.Epoch == p1.Epoch {
		t.Fatalf("key b: seq %d epoch %q; want seq 1 and an epoch other than %q", q1.Seq, q1.Epoch, p1.Epoch)
	}
	if p1.Key != "a" || p1.LocalReceivers != 0 {
		t.Fatalf("published %+v", p1)
	}
	info, ok, _ := h.KeyInfo("a")
	want := hub.KeyInfo{Key: "a", Epoch: p1.Epoch, Seq: 3, History: 3}
	if !ok || info != want {
		t.Fatalf("KeyInfo(a) = %+v, %v; want %+v", info, ok, want)
	}
	if _, ok, _ := h.KeyInfo("nope"); ok {
		t.Fatal("KeyInfo of an unknown key reported ok")
	}
	st := h.Stats()
	if st.Keys != 2 || st.Published != 4 || st.HistoryMessages != 4 || st.HistoryBytes <= 0 {
		t.Fatalf("stats %+v", st)
	}
	// A second hub (a restarted process) never reuses an epoch.
	h2 := newHub(t)
	if p := publish(t, h2, "a", `1`); p.Epoch == p1.Epoch {
		t.Fatalf("two hubs made the same epoch %q", p.Epoch)
	}
}

func TestPublishValidation(t *testing.T) {
	h := newHub(t)
	tests := []struct {
		name  string
		key   string
		event string
		want  error
	}{
		{name: "ok", key: "server-key_1", event: "update"},
		{name: "default event", key: "k", event: ""},
		{name: "unicode key", key: "ключ", event: "ändern"},
		{name: "max key", key: strings.Repeat("k", hub.MaxKeyLen), event: "e"},
		{name: "empty key", key: "", want: hub.ErrBadKey},
		{name: "long key", key: strings.Repeat("k", hub.MaxKeyLen+1), want: hub.ErrBadKey},
		{name: "newline in key", key: "a\nb", want: hub.ErrBadKey},
		{name: "nul in key", key: "a\x00", want: hub.ErrBadKey},
		{name: "del in key", key: "a\x7f", want: hub.ErrBadKey},
		{name: "c1 control in key", key: "a\u0085", want: hub.ErrBadKey},
		{name: "invalid utf8 key", key: "a\xff", want: hub.ErrBadKey},
		{name: "long event", key: "k", event: strings.Repeat("e", hub.MaxEventLen+1), want: hub.ErrBadEvent},
		{name: "newline in event", key: "k", event: "up\ndate", want: hub.ErrBadEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := follow(t, h, "k", 0, "", false)
			r.take()
			_, err := h.Publish(tt.key, tt.event, []byte(`{}`))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Publish error %v, want %v", err, tt.want)
			}
			if tt.want == nil && tt.key == "k" {
				ev := r.take()
				if len(ev) != 1 {
					t.Fatalf("follower got %v, want one message", ev)
				}
			}
			if tt.key != "" {
				if err := hub.ValidKey(tt.key); (err != nil) != errors.Is(tt.want, hub.ErrBadKey) {
					t.Fatalf("ValidKey(%q) = %v", tt.key, err)
				}
			}
		})
	}
	t.Run("default event name", func(t *testing.T) {
		var got string
		f := &funcFollower{deliver: func(m *hub.Message) bool { got = m.Event; return true }}
		s := h.Subscribe(f)
		defer s.Close()
		if err := s.Follow("ev", 0, "", false); err != nil {
			t.Fatal(err)
		}
		publish(t, h, "ev", `1`)
		if got != hub.DefaultEvent {
			t.Fatalf("event %q, want %q", got, hub.DefaultEvent)
		}
	})
}

// funcFollower adapts functions to hub.Follower.
type funcFollower struct {
	deliver func(*hub.Message) bool
}

func (f *funcFollower) Deliver(m *hub.Message) bool { return f.deliver(m) }
func (f *funcFollower) Notify(hub.Notice) bool      { return true }
func (f *funcFollower) Close(hub.Reason)            {}

func TestFollowAndResume(t *testing.T) {
	h := newHub(t, hub.WithHistorySize(4))
	var epoch string
	for i := 0; i < 6; i++ { // seqs 1..6, history holds 3..6
		epoch = publish(t, h, "k", "x").Epoch
	}
	tests := []struct {
		name   string
		since  uint64
		epoch  string
		resume bool
		want   []string
	}{
		{name: "no resume", since: 2, epoch: epoch, want: []string{"registered:6"}},
		{name: "replay from inside window", since: 3, epoch: epoch, resume: true,
			want: []string{"registered:6", "message:4", "message:5", "message:6"}},
		{name: "oldest held is since+1", since: 2, epoch: epoch, resume: true,
			want: []string{"registered:6", "message:3", "message:4", "message:5", "message:6"}},
		{name: "up to date", since: 6, epoch: epoch, resume: true, want: []string{"registered:6"}},
		{name: "since too old", since: 1, epoch: epoch, resume: true, want: []string{"registered:6", "resync:6"}},
		{name: "since zero but history lost start", since: 0, epoch: "", resume: true, want: []string{"registered:6", "resync:6"}},
		{name: "wrong epoch", since: 4, epoch: "other", resume: true, want: []string{"registered:6", "resync:6"}},
		{name: "empty epoch", since: 4, epoch: "", resume: true, want: []string{"registered:6", "resync:6"}},
		{name: "since in the future", since: 7, epoch: epoch, resume: true, want: []string{"registered:6", "resync:6"}},
		{name: "since zero from another epoch", since: 0, epoch: "other", resume: true, want: []string{"registered:6", "resync:6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, s := follow(t, h, "k", tt.since, tt.epoch, tt.resume)
			if got := seqs(r.take()); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			s.Close()
		})
	}
	t.Run("since zero replays everything", func(t *testing.T) {
		p := publish(t, h, "fresh", "1")
		publish(t, h, "fresh", "2")
		r, _ := follow(t, h, "fresh", 0, "", true)
		want := []string{"registered:2", "message:1", "message:2"}
		if got := seqs(r.take()); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		r2, _ := follow(t, h, "fresh", 0, p.Epoch, true)
		if got := seqs(r2.take()); !slices.Equal(got, want) {
			t.Fatalf("with epoch: got %v, want %v", got, want)
		}
	})
	t.Run("since zero from a lost epoch", func(t *testing.T) {
		// The key's history expired and its state was forgotten: a client of
		// the old epoch that had seen nothing must still hear of the loss.
		old := publish(t, h, "lost", "1")
		if _, ok, _ := h.DropKey("lost"); !ok {
			t.Fatal("drop")
		}
		publish(t, h, "lost", "new")
		r, _ := follow(t, h, "lost", 0, old.Epoch, true)
		if got, want := seqs(r.take()), []string{"registered:1", "resync:1"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("unknown key is created", func(t *testing.T) {
		r, _ := follow(t, h, "new", 5, "gone", true)
		ev := r.take()
		if got, want := seqs(ev), []string{"registered:0", "resync:0"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if ev[0].epoch == "" || ev[0].epoch == "gone" {
			t.Fatalf("new key epoch %q", ev[0].epoch)
		}
		p := publish(t, h, "new", "1")
		if p.Seq != 1 || p.Epoch != ev[0].epoch || p.LocalReceivers != 1 {
			t.Fatalf("publish after follow: %+v, registered epoch %q", p, ev[0].epoch)
		}
	})
	t.Run("live after replay", func(t *testing.T) {
		r, _ := follow(t, h, "k", 5, epoch, true)
		p := publish(t, h, "k", "live")
		want := []string{"registered:6", "message:6", "message:7"}
		if got := seqs(r.take()); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if p.LocalReceivers != 1 {
			t.Fatalf("local receivers %d, want 1", p.LocalReceivers)
		}
	})
}

func TestHistoryTTL(t *testing.T) {
	clock := newFakeClock()
	h := newHub(t, hub.WithHistoryTTL(10*time.Second), hub.WithClock(clock.Now))
	p1 := publish(t, h, "k", "old")
	clock.Advance(5 * time.Second)
	publish(t, h, "k", "new")
	if ts := p1; ts.Seq != 1 {
		t.Fatalf("seq %d", ts.Seq)
	}
	clock.Advance(6 * time.Second) // first is 11s old, second 6s
	h.SweepNow()
	checkInvariants(t, h)
	info, ok, _ := h.KeyInfo("k")
	if !ok || info.History != 1 || info.Seq != 2 {
		t.Fatalf("after expiry: %+v %v; want one message held, seq 2", info, ok)
	}
	r, s := follow(t, h, "k", 0, p1.Epoch, true)
	if got, want := seqs(r.take()), []string{"registered:2", "resync:2"}; !slices.Equal(got, want) {
		t.Fatalf("since 0: got %v, want %v", got, want)
	}
	s.Close()
	r, s = follow(t, h, "k", 1, p1.Epoch, true)
	if got, want := seqs(r.take()), []string{"registered:2", "message:2"}; !slices.Equal(got, want) {
		t.Fatalf("since 1: got %v, want %v", got, want)
	}
	s.Close()

	clock.Advance(10 * time.Second)
	h.SweepNow()
	checkInvariants(t, h)
	if info, ok, _ := h.KeyInfo("k"); ok {
		t.Fatalf("expired key without followers still known: %+v", info)
	}
	if n := h.Stats().Keys; n != 0 {
		t.Fatalf("keys %d, want 0", n)
	}
	// The key's history is gone: a new epoch tells resuming clients so.
	p := publish(t, h, "k", "again")
	if p.Seq != 1 || p.Epoch == p1.Epoch {
		t.Fatalf("after total expiry: %+v, old epoch %q", p, p1.Epoch)
	}
	if ev := h.Stats().HistoryEvicted; ev != 2 {
		t.Fatalf("evicted %d, want 2", ev)
	}
}

func TestMessageTimestamp(t *testing.T) {
	clock := newFakeClock()
	h := newHub(t, hub.WithClock(clock.Now))
	var got int64
	f := &funcFollower{deliver: func(m *hub.Message) bool { got = m.TS; return true }}
	s := h.Subscribe(f)
	defer s.Close()
	if err := s.Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	publish(t, h, "k", "1")
	if want := clock.Now().UnixMilli(); got != want {
		t.Fatalf("ts %d, want %d", got, want)
	}
}

func TestGlobalCapEvictsOldestFirst(t *testing.T) {
	data := strings.Repeat("d", 100)
	per := hub.MessageOverhead + int64(len("key-0")+len(hub.DefaultEvent)+len(data))
	h := newHub(t, hub.WithHistoryMaxBytes(10*per))
	keys := []string{"key-0", "key-1", "key-2", "key-3", "key-4"}
	epochs := map[string]string{}
	// 4 rounds over 5 keys: 20 messages, the cap holds 10.
	for round := 0; round < 4; round++ {
		for _, k := range keys {
			epochs[k] = publish(t, h, k, data).Epoch
			checkInvariants(t, h)
		}
	}
	st := h.Stats()
	if st.HistoryBytes > 10*per || st.HistoryMessages != 10 || st.HistoryEvicted != 10 {
		t.Fatalf("stats %+v, want 10 messages within %d bytes and 10 evicted", st, 10*per)
	}
	// The two newest rounds survive: every key holds seqs 3 and 4.
	for _, k := range keys {
		info, ok, _ := h.KeyInfo(k)
		if !ok || info.History != 2 || info.Seq != 4 {
			t.Fatalf("%s: %+v %v, want history 2, seq 4", k, info, ok)
		}
		r, s := follow(t, h, k, 1, epochs[k], true)
		if got, want := seqs(r.take()), []string{"registered:4", "resync:4"}; !slices.Equal(got, want) {
			t.Fatalf("%s since 1: got %v, want %v", k, got, want)
		}
		s.Close()
		r, s = follow(t, h, k, 2, epochs[k], true)
		if got, want := seqs(r.take()), []string{"registered:4", "message:3", "message:4"}; !slices.Equal(got, want) {
			t.Fatalf("%s since 2: got %v, want %v", k, got, want)
		}
		s.Close()
	}

	t.Run("many keys stay bounded", func(t *testing.T) {
		for i := 0; i < 5000; i++ {
			publish(t, h, "many-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+itoa(i), data)
		}
		checkInvariants(t, h)
		st := h.Stats()
		if st.HistoryBytes > 10*per+per || st.HistoryMessages > 11 {
			t.Fatalf("stats %+v, cap %d", st, 10*per)
		}
		// Keys whose whole history was evicted and that nobody follows are
		// deleted, so key states are bounded too.
		if st.Keys > 11 {
			t.Fatalf("%d key states left, want at most 11", st.Keys)
		}
	})
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

func TestGlobalCapKeepsFollowedKeyEpoch(t *testing.T) {
	data := strings.Repeat("d", 100)
	per := hub.MessageOverhead + int64(len("hot")+len(hub.DefaultEvent)+len(data))
	h := newHub(t, hub.WithHistoryMaxBytes(3*per))
	r, _ := follow(t, h, "hot", 0, "", false)
	p := publish(t, h, "hot", data)
	for i := 0; i < 9; i++ {
		publish(t, h, "cold", data)
	}
	// hot's only message was evicted, but the key is followed: its seq and
	// epoch stay, and a since inside the lost range gets resync.
	info, ok, _ := h.KeyInfo("hot")
	if !ok || info.History != 0 || info.Seq != 1 || info.Epoch != p.Epoch || info.Followers != 1 {
		t.Fatalf("hot: %+v %v", info, ok)
	}
	r.take()
	r2, _ := follow(t, h, "hot", 0, p.Epoch, true)
	if got, want := seqs(r2.take()), []string{"registered:1", "resync:1"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if p2 := publish(t, h, "hot", data); p2.Seq != 2 || p2.Epoch != p.Epoch {
		t.Fatalf("next publish %+v", p2)
	}
}

func TestRefollow(t *testing.T) {
	h := newHub(t)
	p := publish(t, h, "k", "1")
	r, s := follow(t, h, "k", 0, "", false)
	if err := s.Follow("k", 0, p.Epoch, true); err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(r.take()), []string{"registered:1", "registered:1", "message:1"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if info, _, _ := h.KeyInfo("k"); info.Followers != 1 {
		t.Fatalf("followers %d, want 1", info.Followers)
	}
	if p := publish(t, h, "k", "2"); p.LocalReceivers != 1 {
		t.Fatalf("local receivers %d, want 1", p.LocalReceivers)
	}
	if got := seqs(r.take()); !slices.Equal(got, []string{"message:2"}) {
		t.Fatalf("got %v", got)
	}
	if n := s.NumKeys(); n != 1 {
		t.Fatalf("NumKeys %d", n)
	}
}

func TestUnfollowAndClose(t *testing.T) {
	clock := newFakeClock()
	h := newHub(t, hub.WithHistorySize(0), hub.WithClock(clock.Now))
	r := &recorder{}
	s := h.Subscribe(r)
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Follow(k, 0, "", false); err != nil {
			t.Fatal(err)
		}
	}
	if keys := s.Keys(); len(keys) != 3 {
		t.Fatalf("keys %v", keys)
	}
	if !s.Unfollow("b") {
		t.Fatal("Unfollow(b) = false")
	}
	if s.Unfollow("b") || s.Unfollow("zzz") {
		t.Fatal("Unfollow of a key not followed = true")
	}
	r.take()
	if p := publish(t, h, "b", "x"); p.LocalReceivers != 0 {
		t.Fatalf("unfollowed key delivered to %d", p.LocalReceivers)
	}
	publish(t, h, "a", "x")
	if got := seqs(r.take()); !slices.Equal(got, []string{"message:1"}) {
		t.Fatalf("got %v", got)
	}
	s.Close()
	s.Close()
	if p := publish(t, h, "a", "x"); p.LocalReceivers != 0 {
		t.Fatalf("closed subscription delivered to")
	}
	if err := s.Follow("a", 0, "", false); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Follow after Close: %v", err)
	}
	if len(r.take()) != 0 {
		t.Fatal("closed subscription got events")
	}
	h.SweepNow()
	// "c" never saw a message: its epoch is kept for a grace period, so a
	// long-poll client between two requests does not see it change.
	if n := h.Stats().Keys; n != 1 {
		t.Fatalf("%d key states after the sweep, want 1 (c, in its grace)", n)
	}
	clock.Advance(3 * time.Minute)
	h.SweepNow()
	if n := h.Stats().Keys; n != 0 {
		t.Fatalf("%d key states left without history or followers", n)
	}
	if rs := r.closeReasons(); len(rs) != 0 {
		t.Fatalf("Subscription.Close called Follower.Close: %v", rs)
	}
}

func TestDropKey(t *testing.T) {
	h := newHub(t)
	p := publish(t, h, "k", "1")
	publish(t, h, "k", "2")
	r1, s1 := follow(t, h, "k", 0, "", false)
	if err := s1.Follow("other", 0, "", false); err != nil {
		t.Fatal(err)
	}
	r2, s2 := follow(t, h, "k", 0, "", false)

	info, ok, _ := h.DropKey("k")
	want := hub.KeyInfo{Key: "k", Epoch: p.Epoch, Seq: 2, History: 2, Followers: 2}
	if !ok || info != want {
		t.Fatalf("DropKey = %+v %v, want %+v", info, ok, want)
	}
	for i, r := range []*recorder{r1, r2} {
		if got := r.closeReasons(); !slices.Equal(got, []hub.Reason{hub.ReasonKeyDropped}) {
			t.Fatalf("follower %d closes %v", i, got)
		}
	}
	if keys := s1.Keys(); !slices.Equal(keys, []string{"other"}) {
		t.Fatalf("s1 keys after drop %v", keys)
	}
	if n := s2.NumKeys(); n != 0 {
		t.Fatalf("s2 keys after drop %d", n)
	}
	r1.take()
	r2.take()
	p2 := publish(t, h, "k", "3")
	if p2.Seq != 1 || p2.Epoch == p.Epoch || p2.LocalReceivers != 0 {
		t.Fatalf("after drop: %+v", p2)
	}
	if len(r1.take())+len(r2.take()) != 0 {
		t.Fatal("dropped followers got a message")
	}
	if _, ok, _ := h.DropKey("unknown"); ok {
		t.Fatal("DropKey(unknown) = true")
	}
	if _, ok, _ := h.DropKey(""); ok {
		t.Fatal("DropKey(\"\") = true")
	}
	// Closed by the hub: further Follow calls fail.
	if err := s2.Follow("k", 0, "", false); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Follow after drop close: %v", err)
	}
}

func TestSlowConsumer(t *testing.T) {
	h := newHub(t)
	slow := &recorder{limit: 2} // registered for a and b, then full
	s := h.Subscribe(slow)
	defer s.Close()
	for _, k := range []string{"a", "b"} {
		if err := s.Follow(k, 0, "", false); err != nil {
			t.Fatal(err)
		}
	}
	fast, _ := follow(t, h, "a", 0, "", false)

	if p := publish(t, h, "a", "1"); p.LocalReceivers != 1 {
		t.Fatalf("local receivers %d, want 1 (the fast one)", p.LocalReceivers)
	}
	publish(t, h, "a", "2")
	publish(t, h, "b", "1")
	if got := slow.closeReasons(); !slices.Equal(got, []hub.Reason{hub.ReasonSlowConsumer}) {
		t.Fatalf("slow follower closes %v, want one slow-consumer close", got)
	}
	slow.mu.Lock()
	attempts := slow.attempts
	slow.mu.Unlock()
	if attempts != 3 { // 2 notices, 1 failed delivery, nothing after
		t.Fatalf("slow follower saw %d calls, want 3", attempts)
	}
	if got := seqs(fast.take()); !slices.Equal(got, []string{"registered:0", "message:1", "message:2"}) {
		t.Fatalf("fast follower %v", got)
	}
	st := h.Stats()
	if st.Dropped != 1 || st.SlowConsumerCloses != 1 || st.Delivered != 2 {
		t.Fatalf("stats %+v, want dropped 1, slow closes 1, delivered 2", st)
	}
	if err := s.Follow("c", 0, "", false); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Follow on a slow subscription: %v", err)
	}

	t.Run("overflow during replay", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			publish(t, h, "r", "x")
		}
		r := &recorder{limit: 3}
		s := h.Subscribe(r)
		defer s.Close()
		if err := s.Follow("r", 0, "", true); err != nil {
			t.Fatal(err)
		}
		if got := r.closeReasons(); !slices.Equal(got, []hub.Reason{hub.ReasonSlowConsumer}) {
			t.Fatalf("closes %v", got)
		}
		if p := publish(t, h, "r", "x"); p.LocalReceivers != 0 {
			t.Fatalf("overflowed follower still receives")
		}
	})
}

func TestConfigure(t *testing.T) {
	clock := newFakeClock()
	h := newHub(t, hub.WithHistorySize(10), hub.WithClock(clock.Now), hub.WithHistoryTTL(time.Hour))
	for i := 0; i < 10; i++ {
		publish(t, h, "k", "x")
		clock.Advance(time.Minute)
	}
	h.Configure(hub.WithHistorySize(4))
	checkInvariants(t, h)
	if info, _, _ := h.KeyInfo("k"); info.History != 4 {
		t.Fatalf("history %d after shrinking to 4", info.History)
	}
	// 10 messages published at minutes 0..9, now is minute 10: a 5m TTL
	// keeps minutes 6..9 (all 4 held), 3m keeps 7..9.
	h.Configure(hub.WithHistoryTTL(3*time.Minute + time.Second))
	if info, _, _ := h.KeyInfo("k"); info.History != 3 {
		t.Fatalf("history %d after TTL 3m, want 3", info.History)
	}
	h.Configure(hub.WithHistoryMaxBytes(1))
	if st := h.Stats(); st.HistoryMessages != 0 || st.HistoryBytes != 0 {
		t.Fatalf("stats after cap 1: %+v", st)
	}
	h.Configure(hub.WithHistoryMaxBytes(0), hub.WithHistorySize(2))
	for i := 0; i < 5; i++ {
		publish(t, h, "k", "x")
	}
	if info, _, _ := h.KeyInfo("k"); info.History != 2 {
		t.Fatalf("history %d, want 2", info.History)
	}
	checkInvariants(t, h)
}

func TestMaxKeysPerConn(t *testing.T) {
	h := newHub(t, hub.WithMaxKeysPerConn(2))
	r := &recorder{}
	s := h.Subscribe(r)
	defer s.Close()
	tests := []struct {
		name string
		key  string
		want error
	}{
		{name: "first", key: "a"},
		{name: "second", key: "b"},
		{name: "third refused", key: "c", want: hub.ErrTooManyKeys},
		{name: "refollow allowed", key: "a"},
		{name: "bad key", key: "", want: hub.ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Follow(tt.key, 0, "", false); !errors.Is(err, tt.want) {
				t.Fatalf("Follow(%q) = %v, want %v", tt.key, err, tt.want)
			}
		})
	}
	s.SetMaxKeys(3)
	if err := s.Follow("c", 0, "", false); err != nil {
		t.Fatalf("after SetMaxKeys(3): %v", err)
	}
	s.SetMaxKeys(-1)
	for _, k := range []string{"d", "e", "f"} {
		if err := s.Follow(k, 0, "", false); err != nil {
			t.Fatalf("unlimited: %v", err)
		}
	}
	if _, ok, _ := h.KeyInfo("c"); !ok {
		t.Fatal("followed key c unknown")
	}
}

func TestClose(t *testing.T) {
	h := hub.New(hub.WithSweepInterval(time.Millisecond))
	r1 := &recorder{}
	s1 := h.Subscribe(r1)
	if err := s1.Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	r2 := &recorder{} // subscribed, following nothing: still closed
	h.Subscribe(r2)
	r3 := &recorder{} // already closed itself
	h.Subscribe(r3).Close()

	h.Close()
	h.Close()
	if got := r1.closeReasons(); !slices.Equal(got, []hub.Reason{hub.ReasonShutdown}) {
		t.Fatalf("r1 closes %v", got)
	}
	if got := r2.closeReasons(); !slices.Equal(got, []hub.Reason{hub.ReasonShutdown}) {
		t.Fatalf("r2 closes %v", got)
	}
	if got := r3.closeReasons(); len(got) != 0 {
		t.Fatalf("r3 closes %v", got)
	}
	if _, err := h.Publish("k", "", []byte("1")); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if err := h.Subscribe(&recorder{}).Follow("k", 0, "", false); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Follow after Close: %v", err)
	}
	s1.Close()
}

func TestSweeperRuns(t *testing.T) {
	clock := newFakeClock()
	h := hub.New(hub.WithSweepInterval(time.Millisecond), hub.WithClock(clock.Now), hub.WithHistoryTTL(time.Second))
	defer h.Close()
	publish(t, h, "k", "x")
	clock.Advance(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().HistoryMessages != 0 {
		if time.Now().After(deadline) {
			t.Fatal("sweeper did not expire history within 5s")
		}
		time.Sleep(time.Millisecond) // polling a condition, not synchronising
	}
}

func TestEncodedOncePerFormat(t *testing.T) {
	calls := 0
	f := hub.NewFormat("test", func(m *hub.Message) []byte {
		calls++
		return []byte(m.Key + ":" + string(m.Data))
	})
	if f.Name() != "test" {
		t.Fatalf("name %q", f.Name())
	}
	h := newHub(t)
	var got [][]byte
	ff := &funcFollower{deliver: func(m *hub.Message) bool { got = append(got, m.Encoded(f)); return true }}
	for i := 0; i < 3; i++ {
		s := h.Subscribe(ff)
		defer s.Close()
		if err := s.Follow("k", 0, "", false); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, h, "k", "v")
	if calls != 1 || len(got) != 3 {
		t.Fatalf("encode called %d times for %d followers", calls, len(got))
	}
	for _, b := range got {
		if string(b) != "k:v" || &b[0] != &got[0][0] {
			t.Fatalf("followers got different encodings: %q", got)
		}
	}
}

// closingFollower closes its own subscription from Close, synchronously,
// as a careless transport might: the hub must hold no lock then.
type closingFollower struct {
	recorder
	sub *hub.Subscription
}

func (f *closingFollower) Close(r hub.Reason) {
	f.recorder.Close(r)
	f.sub.Close()
}

func TestFollowerCloseMayCloseSubscription(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		resume bool
		act    func(h *hub.Hub)
		want   hub.Reason
	}{
		{name: "slow during follow", limit: 1, resume: true, act: func(*hub.Hub) {}, want: hub.ReasonSlowConsumer},
		{name: "slow during publish", limit: 1, act: func(h *hub.Hub) { h.Publish("k", "", []byte("1")) }, want: hub.ReasonSlowConsumer},
		{name: "key dropped", act: func(h *hub.Hub) { h.DropKey("k") }, want: hub.ReasonKeyDropped},
		{name: "shutdown", act: func(h *hub.Hub) { h.Close() }, want: hub.ReasonShutdown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(t)
			publish(t, h, "k", "0")
			f := &closingFollower{recorder: recorder{limit: tt.limit}}
			f.sub = h.Subscribe(f)
			if err := f.sub.Follow("k", 0, "", tt.resume); err != nil {
				t.Fatal(err)
			}
			tt.act(h)
			if got := f.closeReasons(); !slices.Equal(got, []hub.Reason{tt.want}) {
				t.Fatalf("closes %v, want [%v]", got, tt.want)
			}
			if n := f.sub.NumKeys(); n != 0 {
				t.Fatalf("subscription still follows %d keys", n)
			}
		})
	}
}
