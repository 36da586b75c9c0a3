package integration

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestClusterAdmin: the admin routes in cluster mode. Key info on a node
// with no follower of the key reports the shared epoch, seq and history;
// DELETE on one node closes the key's followers on the other with 4401 and
// the key's next publish starts a new epoch, which a resuming client is
// told to resync to.
func TestClusterAdmin(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, 2, redis.URL())
	a, b := nodes[0], nodes[1]
	key, other := testKey(t, "k"), testKey(t, "other")

	for _, n := range nodes {
		if status, _, body := n.Key(t, key); status != http.StatusNotFound {
			t.Fatalf("unknown key on %s: %d %s, want 404", n.ID, status, body)
		}
	}
	p := publishRange(t, a.Node, key, 1, 3)
	for _, n := range nodes {
		status, info, body := n.Key(t, key)
		if status != http.StatusOK || info.SDKKey != key || info.Epoch != p.Epoch || info.Seq != 3 || info.History != 3 || info.Followers != 0 {
			t.Fatalf("key on %s (no follower there): %d %s, want epoch %s seq 3 history 3 followers 0", n.ID, status, body, p.Epoch)
		}
	}

	var followers []*Client
	for range 2 {
		f := Dial(t, b.WSURL(route))
		if m := f.Register(t, key); m.Epoch != p.Epoch || m.Seq != 3 {
			t.Fatalf("registered %s", m.Raw)
		}
		followers = append(followers, f)
	}
	bystander := Dial(t, b.WSURL(route))
	bystander.Register(t, other)
	if _, info, body := b.Key(t, key); info.Followers != 2 {
		t.Fatalf("key on %s: %s, want 2 followers", b.ID, body)
	}

	status, body := a.AdminDo(t, http.MethodDelete, "/push_gateway/keys/"+key, "", nil)
	if status != http.StatusOK {
		t.Fatalf("DELETE on %s: %d %s", a.ID, status, body)
	}
	for _, f := range followers {
		f.ExpectClose(t, 4401, msgTimeout)
	}
	for _, n := range nodes {
		eventually(t, msgTimeout, func() (bool, string) {
			status, _, body := n.Key(t, key)
			return status == http.StatusNotFound, fmt.Sprintf("key on %s after DELETE: %d %s", n.ID, status, body)
		})
	}
	// The other key is untouched.
	po := a.PublishOK(t, other, "", "1")
	if err := readRun(bystander, other, po.Epoch, 1, 1, false); err != nil {
		t.Fatalf("follower of another key: %v", err)
	}

	after := b.PublishOK(t, key, "", `"after"`)
	if after.Epoch == p.Epoch || after.Seq != 1 {
		t.Fatalf("publish after DELETE: %+v, want seq 1 in an epoch other than %s", after, p.Epoch)
	}
	c := Dial(t, a.WSURL(route))
	if m := registerSince(t, c, key, 2, p.Epoch); m.Epoch != after.Epoch || m.Seq != 1 {
		t.Fatalf("resume from the old epoch: registered %s, want epoch %s seq 1", m.Raw, after.Epoch)
	}
	if m := c.ReadMsg(t, msgTimeout); m.Type != "resync" || m.Epoch != after.Epoch || m.Seq != 1 {
		t.Fatalf("resume from the old epoch: %s, want resync", m.Raw)
	}
}
