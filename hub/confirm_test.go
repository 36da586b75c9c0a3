package hub_test

import (
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

func TestConfirm(t *testing.T) {
	h := newHub(t)
	_, native := follow(t, h, "k", 0, "", false)
	r2 := &recorder{}
	sse := h.Subscribe(r2)
	sse.SetClientID("browser-1")
	if err := sse.Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	_, silent := follow(t, h, "k", 0, "", false)
	defer silent.Close()

	p, c, err := h.PublishConfirm("k", "", []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	native.Ack("k", p.Seq-1) // too early: does not count
	native.Ack("k", p.Seq)
	native.Ack("k", p.Seq) // twice: counts once
	h.AckClient("browser-1", "k", "other-epoch", p.Seq)
	h.AckClient("browser-1", "k", p.Epoch, p.Seq+5)
	acked, written := c.Wait(50 * time.Millisecond)
	if acked != 2 || written != 3 {
		t.Fatalf("acked %d of %d, want 2 of 3 (one follower never acks)", acked, written)
	}

	// Every follower acks: Wait returns before its timeout.
	silent.Close()
	p, c, _ = h.PublishConfirm("k", "", []byte(`2`))
	go func() {
		native.Ack("k", p.Seq)
		h.AckClient("browser-1", "k", p.Epoch, p.Seq)
	}()
	start := time.Now()
	acked, written = c.Wait(10 * time.Second)
	if acked != 2 || written != 2 || time.Since(start) > 5*time.Second {
		t.Fatalf("acked %d of %d after %v", acked, written, time.Since(start))
	}

	// Nobody follows: confirmed at once.
	_, c, _ = h.PublishConfirm("nobody", "", []byte(`3`))
	if acked, written := c.Wait(10 * time.Second); acked != 0 || written != 0 {
		t.Fatalf("acked %d of %d", acked, written)
	}
	checkInvariants(t, h)
}

func TestReadMatchesFollow(t *testing.T) {
	h := newHub(t, hub.WithHistorySize(3))
	first := publish(t, h, "k", "1")
	for _, d := range []string{"2", "3", "4"} {
		publish(t, h, "k", d)
	}
	tests := []struct {
		name   string
		since  uint64
		epoch  string
		want   int
		resync bool
	}{
		{name: "inside", since: 2, epoch: first.Epoch, want: 2},
		{name: "up to date", since: 4, epoch: first.Epoch, want: 0},
		{name: "too old", since: 0, epoch: first.Epoch, resync: true},
		{name: "other epoch", since: 3, epoch: "x", resync: true},
		{name: "future", since: 9, epoch: first.Epoch, resync: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := h.Read("k", tt.since, tt.epoch)
			if err != nil {
				t.Fatal(err)
			}
			if r.Resync != tt.resync || len(r.Messages) != tt.want || r.Seq != 4 || r.Epoch != first.Epoch {
				t.Fatalf("got %+v", r)
			}
			for i, m := range r.Messages {
				if m.Seq != tt.since+uint64(i)+1 {
					t.Fatalf("message %d has seq %d", i, m.Seq)
				}
			}
		})
	}
	// An unknown key gets an epoch that holds while nobody follows it.
	a, _ := h.Read("quiet", 0, "")
	h.SweepNow()
	b, _ := h.Read("quiet", 0, a.Epoch)
	if a.Epoch == "" || b.Epoch != a.Epoch || b.Resync {
		t.Fatalf("quiet key: %+v then %+v", a, b)
	}
}
