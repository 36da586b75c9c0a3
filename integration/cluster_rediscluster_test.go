package integration

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestClusterOnRedisCluster: two gateway nodes on a 3-master Redis Cluster.
// Twenty keys, whose slots spread over every master, followed on node A and
// published to on node B: each key's messages arrive in order on every
// follower, and a client resumes a key on node B with exactly what it
// missed.
func TestClusterOnRedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t, 3)
	nodes := startCluster(t, 2, rc.URL())
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.LeakSlack(0, 3, "the Redis Cluster client dials each master the first time a key of its slots is used, and keeps the connection")
	}
	const keyCount, rounds = 20, 5
	keys := make([]string, keyCount)
	for i := range keys {
		keys[i] = testKey(t, "k"+strconv.Itoa(i))
	}

	var followers []*Client
	for range 2 {
		f := Dial(t, a.WSURL(route))
		for _, k := range keys {
			f.Register(t, k)
		}
		followers = append(followers, f)
	}

	// Round-robin over the keys, so that every key's messages interleave
	// with the others'.
	epochs := map[string]string{}
	for r := 1; r <= rounds; r++ {
		for _, k := range keys {
			p := b.PublishOK(t, k, "", strconv.Itoa(r))
			if p.Seq != uint64(r) || (epochs[k] != "" && p.Epoch != epochs[k]) {
				t.Fatalf("publish %d of %s: %+v", r, k, p)
			}
			epochs[k] = p.Epoch
		}
	}
	inParallel(t, len(followers), len(followers), func(i int) error {
		next := map[string]uint64{}
		for range keyCount * rounds {
			m, err := followers[i].NextMsg(msgTimeout)
			if err != nil {
				return fmt.Errorf("follower %d: %w (so far %v)", i, err, next)
			}
			want := next[m.SDKKey] + 1
			if m.Type != "message" || epochs[m.SDKKey] == "" || m.Seq != want || m.Epoch != epochs[m.SDKKey] || string(m.Data) != strconv.FormatUint(want, 10) {
				return fmt.Errorf("follower %d: got %s, want seq %d of its key", i, truncate(m.Raw, 200), want)
			}
			next[m.SDKKey] = want
		}
		return nil
	})

	// Every master holds some of the keys' state.
	for i, n := range rc.Nodes {
		if size := n.Do(t, "DBSIZE"); size == "0" {
			t.Fatalf("Redis Cluster master %d (%s) holds no key: the keys did not spread over the slots", i, n.Addr)
		}
	}

	k := keys[3]
	r := Dial(t, b.WSURL(route))
	if m := registerSince(t, r, k, 2, epochs[k]); m.Epoch != epochs[k] || m.Seq != rounds {
		t.Fatalf("registered %s, want epoch %s seq %d", m.Raw, epochs[k], rounds)
	}
	if err := readRun(r, k, epochs[k], 3, rounds, false); err != nil {
		t.Fatal(err)
	}
	publishRange(t, a.Node, k, rounds+1, rounds+1)
	for i, f := range append([]*Client{r}, followers...) {
		if err := readRun(f, k, epochs[k], rounds+1, rounds+1, false); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
}
