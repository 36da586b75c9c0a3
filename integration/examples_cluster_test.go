package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestClusterExamples adapts and starts the two nodes of
// caddyfile-examples/cluster on one real redis-server, as its README says,
// and makes the round trip the example promises: a follower on node A gets
// what node B's admin API publishes, and both nodes list each other.
// (TestExamples starts every single-node example; these need Redis.)
func TestClusterExamples(t *testing.T) {
	dir := filepath.Join(examplesDir, "cluster")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	srv := redistest.Start(t)
	start := func(name string) *Node {
		return startNode(t, nodeSpec{
			config:    read(name),
			adapter:   "json",
			env:       map[string]string{"REDIS_URL": srv.URL()},
			waitPorts: func(n *Node) []int { return []int{n.Port} },
			prepare:   adaptExample,
		})
	}
	a, b := start("node-a.Caddyfile"), start("node-b.Caddyfile")

	key := testKey(t, "k")
	c := Dial(t, a.WSURL(route))
	c.Register(t, key)
	b.PublishOK(t, key, "", `{"example":true}`)
	if m := c.ExpectMessage(t, key, 1); string(m.Data) != `{"example":true}` {
		t.Fatalf("data %s", m.Data)
	}
	waitListed(t, a, "node-a", "node-b")
	waitListed(t, b, "node-a", "node-b")
}
