package redistest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// clusterTimeout bounds creating a cluster and waiting for it to be ok.
const clusterTimeout = 60 * time.Second

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Server
}

// StartCluster runs masters redis-server nodes with cluster mode on, joins
// them with redis-cli --cluster create (slots spread evenly, no replicas)
// and waits until every node says cluster_state:ok. Options apply to every
// node.
func StartCluster(tb testing.TB, masters int, opts ...Option) *Cluster {
	tb.Helper()
	if masters < 3 {
		tb.Fatalf("redistest: redis-cli --cluster create needs at least 3 masters, not %d", masters)
	}
	cfg := newConfig(opts)
	c := &Cluster{}
	for range masters {
		c.Nodes = append(c.Nodes, start(tb, cfg, tb.TempDir(), nil, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
			// Keys of a slot whose node is down stay readable elsewhere:
			// tests that kill one node see the others keep working.
			"--cluster-require-full-coverage", "no",
		}))
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if cfg.password != "" {
		args = append([]string{"-a", cfg.password, "--no-auth-warning"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, cliBin, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: %s %s: %v\n%s", cliBin, strings.Join(args, " "), err, out)
	}
	c.WaitOK(tb)
	return c
}

// WaitOK waits until every running node says cluster_state:ok, e.g. after
// a node's Restart.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for _, n := range c.Nodes {
		if !n.Alive() {
			continue
		}
		for {
			info, err := n.Try("CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: node %s not ok within %v: %v\n%s", n.Addr, clusterTimeout, err, info)
			}
			time.Sleep(50 * time.Millisecond) // polling the cluster's gossip: nothing to wait on
		}
	}
}

// URL is the cluster's address for broker/redis:
// redis-cluster://[:password@]h1:p1,h2:p2,...
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return "redis-cluster://" + c.Nodes[0].userinfo() + strings.Join(addrs, ",")
}

// Addrs lists the nodes' host:port.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}
