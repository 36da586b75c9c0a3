package hub_test

import (
	"sync"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

// stampRecorder records the LiveStamp each Deliver sees.
type stampRecorder struct {
	mu     sync.Mutex
	stamps []int64
}

func (r *stampRecorder) Deliver(m *hub.Message) bool {
	r.mu.Lock()
	r.stamps = append(r.stamps, m.LiveStamp())
	r.mu.Unlock()
	return true
}
func (r *stampRecorder) Notify(hub.Notice) bool { return true }
func (r *stampRecorder) Close(hub.Reason)       {}

func (r *stampRecorder) take() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stamps
	r.stamps = nil
	return s
}

func TestLiveStampOnlyOnLiveDeliveries(t *testing.T) {
	h := hub.New()
	t.Cleanup(h.Close)
	live := new(stampRecorder)
	if err := h.Subscribe(live).Follow("k", 0, "", false); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixNano()
	p, err := h.Publish("k", "", []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	if _, err := h.Publish("k", "", []byte(`2`)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		got   func() []int64
		stamp bool // want every stamp set (else every stamp 0)
	}{
		{name: "live deliveries carry the fan-out time", got: live.take, stamp: true},
		{name: "a replay carries none", got: func() []int64 {
			r := new(stampRecorder)
			if err := h.Subscribe(r).Follow("k", 0, p.Epoch, true); err != nil {
				t.Fatal(err)
			}
			return r.take()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.got()
			if len(got) != 2 {
				t.Fatalf("%d deliveries, want 2", len(got))
			}
			for i, s := range got {
				switch {
				case !tt.stamp && s != 0:
					t.Fatalf("delivery %d: stamp %d, want 0", i, s)
				case tt.stamp && (s < before || (i == 0 && s > after)):
					t.Fatalf("delivery %d: stamp %d outside the publish [%d, %d]", i, s, before, after)
				}
			}
		})
	}
}

func TestStatsCountRegisters(t *testing.T) {
	h := hub.New(hub.WithMaxKeysPerConn(2))
	t.Cleanup(h.Close)
	sub := h.Subscribe(new(recorder))
	for _, key := range []string{"a", "b", "a", "c", ""} { // "a" again counts; "c" is over the limit; "" is invalid
		_ = sub.Follow(key, 0, "", false)
	}
	if got := h.Stats().Registers; got != 3 {
		t.Fatalf("Registers = %d, want 3 (a, b, a again)", got)
	}
}
