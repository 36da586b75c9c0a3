package integration

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestClusterNodeKilled: a node dies (SIGKILL). Its clients pick another
// gateway from a surviving node's <route>/nodes, trying the next entry when
// one does not answer (the dead node stays listed until its TTL runs out),
// and resume with since/epoch: every message published before, during and
// after the failover arrives exactly once, in order. The dead node then
// leaves the list.
func TestClusterNodeKilled(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, 3, redis.URL())
	victim, b, c := nodes[0], nodes[1], nodes[2]
	key := testKey(t, "k")

	clients := follow(t, key, 3, victim)
	// Load the survivors so that the victim is the least loaded: listed
	// first, a reconnecting client meets it before a live node.
	for _, n := range []*clusterNode{b, c} {
		for range 5 {
			Dial(t, n.WSURL(route))
		}
	}
	eventually(t, 2*clusterNodeTTL+5*time.Second, func() (bool, string) {
		ns := publicNodes(t, b.Node)
		return len(ns) == 3 && ns[0].ID == victim.ID && ns[0].Connections == 3,
			fmt.Sprintf("list %+v, want %s first with 3 connections", ns, victim.ID)
	})

	p := publishRange(t, b.Node, key, 1, 10)
	epoch := p.Epoch
	for i, f := range clients {
		if err := readRun(f, key, epoch, 1, 10, false); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}

	victim.Kill()
	for i, f := range clients {
		e, ok := f.Next(msgTimeout)
		if !ok || e.Err == nil {
			t.Fatalf("client %d: want the end of the connection, got %v (%v)", i, e, ok)
		}
	}
	publishRange(t, b.Node, key, 11, 20)

	for i := range clients {
		ns := publicNodes(t, b.Node)
		var r *Client
		var via string
		var skipped []string
		for _, l := range ns {
			cl, _, err := TryDial(t, l.Address, DialOpts{})
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("%s (%v)", l.ID, err))
				continue
			}
			r, via = cl, l.ID
			break
		}
		if r == nil {
			t.Fatalf("client %d: no gateway of %+v answered", i, ns)
		}
		if via == victim.ID {
			t.Fatalf("client %d reconnected to the killed node", i)
		}
		t.Logf("client %d reconnected to %s, skipping %v", i, via, skipped)
		if m := registerSince(t, r, key, 10, epoch); m.Epoch != epoch || m.Seq != 20 {
			t.Fatalf("client %d: registered %s, want epoch %s seq 20", i, m.Raw, epoch)
		}
		if err := readRun(r, key, epoch, 11, 20, false); err != nil {
			t.Fatalf("client %d on %s: %v", i, via, err)
		}
		clients[i] = r
	}
	publishRange(t, c.Node, key, 21, 30)
	for i, r := range clients {
		if err := readRun(r, key, epoch, 21, 30, false); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		r.ExpectQuiet(t, 50*time.Millisecond)
	}

	killed := time.Now()
	waitListed(t, b.Node, b.ID, c.ID)
	waitListed(t, c.Node, b.ID, c.ID)
	t.Logf("the killed node left the list %v after the failover (node_ttl %v)", time.Since(killed).Round(time.Millisecond), clusterNodeTTL)
}

// TestClusterGracefulStop: a node stopped with `caddy stop` or SIGTERM
// leaves the discovery list before its clients get 1001: the other node's
// list, read as soon as the 1001 arrives, no longer names it.
func TestClusterGracefulStop(t *testing.T) {
	redis := redistest.Start(t)
	other := startClusterNodes(t, redis.URL(), "gw-stays")[0]
	tests := []struct {
		name string
		stop func(t testing.TB, n *clusterNode) error
	}{
		{
			name: "caddy stop",
			stop: func(t testing.TB, n *clusterNode) error {
				out, err := n.CaddyCmd(t, "stop", "--address", fmt.Sprintf("127.0.0.1:%d", n.AdminPort))
				if err != nil {
					return fmt.Errorf("caddy stop: %w\n%s", err, out)
				}
				return nil
			},
		},
		{
			name: "SIGTERM",
			stop: func(_ testing.TB, n *clusterNode) error { return n.cmd.Process.Signal(syscall.SIGTERM) },
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := startClusterNodes(t, redis.URL(), fmt.Sprintf("gw-stopping-%d", i))[0]
			waitListed(t, other.Node, n.ID, other.ID)
			key := testKey(t, "k")
			cs := follow(t, key, 2, n)
			stopped := make(chan error, 1)
			start := time.Now()
			go func() { stopped <- tc.stop(t, n) }()

			// The first 1001, then the list at once.
			cs[0].ExpectClose(t, 1001, stopTimeout)
			closedAt := time.Now()
			ns, err := tryPublicNodes(other.Node)
			readAt := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			if listed(ns, n.ID) {
				t.Fatalf("%s still listed %v after its client got 1001 (list read %v later)", n.ID, nodeIDs(ns), readAt.Sub(closedAt))
			}
			t.Logf("1001 %v after the stop; list without %s read %v after it", closedAt.Sub(start).Round(time.Millisecond), n.ID, readAt.Sub(closedAt))
			if _, adm := adminNodes(t, other.Node); listed(adm, n.ID) {
				t.Fatalf("admin nodes on %s still list %s", other.ID, n.ID)
			}
			for _, c := range cs[1:] {
				c.ExpectClose(t, 1001, stopTimeout)
			}
			if err := <-stopped; err != nil {
				t.Fatal(err)
			}
			if !n.WaitExit(stopTimeout) {
				t.Fatal("caddy still running after stop")
			}
		})
	}
}
