package hub_test

import (
	"errors"
	"testing"

	"github.com/pushgateway/push_gateway/hub"
)

func TestMaxFollowersPerKey(t *testing.T) {
	h := newHub(t, hub.WithMaxFollowersPerKey(2))
	subs := make([]*hub.Subscription, 4)
	for i := range subs {
		subs[i] = h.Subscribe(&recorder{})
		t.Cleanup(subs[i].Close)
	}
	tests := []struct {
		name string
		sub  int
		key  string
		want error
		full bool // FollowersFull(key) afterwards
	}{
		{name: "first", sub: 0, key: "k"},
		{name: "second fills the key", sub: 1, key: "k", full: true},
		{name: "third refused", sub: 2, key: "k", want: hub.ErrTooManyFollowers, full: true},
		{name: "refollow by a follower allowed", sub: 0, key: "k", full: true},
		{name: "another key unaffected", sub: 2, key: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := subs[tt.sub].Follow(tt.key, 0, "", false); !errors.Is(err, tt.want) {
				t.Fatalf("Follow(%q) = %v, want %v", tt.key, err, tt.want)
			}
			if got := h.FollowersFull(tt.key); got != tt.full {
				t.Fatalf("FollowersFull(%q) = %v, want %v", tt.key, got, tt.full)
			}
		})
	}
	if info, _, _ := h.KeyInfo("k"); info.Followers != 2 {
		t.Fatalf("followers %d, want 2", info.Followers)
	}
	// A follower leaving makes room.
	subs[1].Close()
	if err := subs[2].Follow("k", 0, "", false); err != nil {
		t.Fatalf("after one left: %v", err)
	}
	// Lowering the cap keeps the followers there; raising it admits more.
	h.Configure(hub.WithMaxFollowersPerKey(1))
	if info, _, _ := h.KeyInfo("k"); info.Followers != 2 {
		t.Fatalf("after lowering: followers %d, want 2", info.Followers)
	}
	if err := subs[3].Follow("k", 0, "", false); !errors.Is(err, hub.ErrTooManyFollowers) {
		t.Fatalf("over the lowered cap: %v", err)
	}
	h.Configure(hub.WithMaxFollowersPerKey(0))
	if h.FollowersFull("k") {
		t.Fatal("unlimited, yet full")
	}
	if err := subs[3].Follow("k", 0, "", false); err != nil {
		t.Fatalf("unlimited: %v", err)
	}
	checkInvariants(t, h)
}
