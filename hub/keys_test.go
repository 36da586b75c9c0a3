package hub_test

import (
	"slices"
	"testing"
)

// TestSubscriptionKeys walks a subscription's key list, which keeps its
// first key inline and the others aside, through follows and unfollows in
// every position, and checks that a client id set later keeps the keys.
func TestSubscriptionKeys(t *testing.T) {
	h := newHub(t)
	s := h.Subscribe(&recorder{})
	t.Cleanup(s.Close)
	steps := []struct {
		name   string
		follow string // followed when set
		drop   string // unfollowed when set
		cid    string // SetClientID when set
		want   []string
	}{
		{name: "first", follow: "a", want: []string{"a"}},
		{name: "second", follow: "b", want: []string{"a", "b"}},
		{name: "third", follow: "c", want: []string{"a", "b", "c"}},
		{name: "again", follow: "b", want: []string{"a", "b", "c"}},
		{name: "client id", cid: "client-1", want: []string{"a", "b", "c"}},
		{name: "drop first", drop: "a", want: []string{"b", "c"}},
		{name: "drop last", drop: "c", want: []string{"b"}},
		{name: "refollow", follow: "a", want: []string{"a", "b"}},
		{name: "drop middle of two", drop: "b", want: []string{"a"}},
		{name: "drop only", drop: "a", want: []string{}},
		{name: "follow after empty", follow: "d", want: []string{"d"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			switch {
			case st.follow != "":
				if err := s.Follow(st.follow, 0, "", false); err != nil {
					t.Fatalf("Follow(%q): %v", st.follow, err)
				}
			case st.drop != "":
				if !s.Unfollow(st.drop) {
					t.Fatalf("Unfollow(%q) = false", st.drop)
				}
			case st.cid != "":
				s.SetClientID(st.cid)
			}
			got := s.Keys()
			slices.Sort(got)
			if !slices.Equal(got, st.want) || s.NumKeys() != len(st.want) {
				t.Fatalf("Keys() = %v (NumKeys %d), want %v", got, s.NumKeys(), st.want)
			}
			for _, k := range []string{"a", "b", "c", "d"} {
				followed := slices.Contains(st.want, k)
				info, _, err := h.KeyInfo(k)
				if err != nil {
					t.Fatalf("KeyInfo(%q): %v", k, err)
				}
				if n := info.Followers; (n == 1) != followed {
					t.Fatalf("key %q has %d followers, followed: %v", k, n, followed)
				}
			}
		})
	}
}
