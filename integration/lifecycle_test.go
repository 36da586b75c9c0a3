package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReloadKeepsConnections: a reload (admin POST /load, then the `caddy
// reload` command) keeps live connections, they keep receiving, and the new
// route settings apply to them (ARCHITECTURE I8).
func TestReloadKeepsConnections(t *testing.T) {
	slow := caddyfile([]string{"history_size 64"}, []string{"heartbeat 3s", "idle_timeout 5m"})
	fast := caddyfile([]string{"history_size 64"}, []string{"heartbeat 200ms", "idle_timeout 1m"})
	n := startCaddy(t, slow)
	key := testKey(t, "k")
	c := Dial(t, n.WSURL(route))
	c.Register(t, key)
	n.PublishOK(t, key, "", `1`)
	c.ExpectMessage(t, key, 1)
	conns := n.Stats(t).Connections.WebSocket

	n.Reload(t, fast)
	// The 200ms heartbeat reaches the connection opened under the 3s one:
	// once its next timer fires, at the latest after 3s. In 15s the old
	// heartbeat makes 5 pings, the new one about 60.
	pingsAtReload := c.Pings()
	eventually(t, 15*time.Second, func() (bool, string) {
		got := c.Pings() - pingsAtReload
		return got >= 10, fmt.Sprintf("%d pings since the reload to heartbeat 200ms", got)
	})
	if got := n.Stats(t).Connections.WebSocket; got != conns {
		t.Fatalf("websocket connections %d after reload, %d before", got, conns)
	}
	p := n.PublishOK(t, key, "", `2`)
	c.ExpectMessage(t, key, 2)

	// A new connection after the reload shares the hub: same epoch, same seqs.
	c2 := Dial(t, n.WSURL(route))
	if m := c2.Register(t, key); m.Seq != 2 || m.Epoch != p.Epoch {
		t.Fatalf("after reload registered %s, want seq 2 epoch %s", m.Raw, p.Epoch)
	}

	// Reload with the CLI, back to the slow heartbeat.
	path := filepath.Join(n.Dir, "Caddyfile.slow")
	if err := os.WriteFile(path, []byte(slow), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := n.CaddyCmd(t, "reload", "--config", path, "--adapter", "caddyfile",
		"--address", fmt.Sprintf("127.0.0.1:%d", n.AdminPort))
	if err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
	n.PublishOK(t, key, "", `3`)
	c.ExpectMessage(t, key, 3)
	c2.ExpectMessage(t, key, 3)
	if n.Exited() {
		t.Fatal("caddy exited")
	}
}

// TestStopClosesWith1001: a real stop closes every connection with 1001.
func TestStopClosesWith1001(t *testing.T) {
	tests := []struct {
		name string
		stop func(t testing.TB, n *Node)
	}{
		{
			name: "caddy stop",
			stop: func(t testing.TB, n *Node) {
				out, err := n.CaddyCmd(t, "stop", "--address", fmt.Sprintf("127.0.0.1:%d", n.AdminPort))
				if err != nil {
					t.Fatalf("caddy stop: %v\n%s", err, out)
				}
			},
		},
		{
			name: "SIGTERM",
			stop: func(t testing.TB, n *Node) {
				if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := startCaddy(t, caddyfile(nil, nil))
			key := testKey(t, "k")
			var cs []*Client
			for range 3 {
				c := Dial(t, n.WSURL(route))
				c.Register(t, key)
				cs = append(cs, c)
			}
			idle := Dial(t, n.WSURL(route)) // follows nothing
			cs = append(cs, idle)
			tc.stop(t, n)
			for _, c := range cs {
				c.ExpectClose(t, 1001, stopTimeout)
			}
			if !n.WaitExit(stopTimeout) {
				t.Fatal("caddy still running after stop")
			}
		})
	}
}

// TestRestartChangesEpoch: in single-node mode a restart loses history, so
// the epoch changes and a resuming client is told to resync.
func TestRestartChangesEpoch(t *testing.T) {
	cfg := caddyfile(nil, nil)
	key := testKey(t, "k")
	n1 := startCaddy(t, cfg)
	var old Published
	for range 2 {
		old = n1.PublishOK(t, key, "", `1`)
	}
	n1.Stop()

	n2 := startCaddy(t, cfg)
	c := Dial(t, n2.WSURL(route))
	c.Send(t, map[string]any{"type": "register", "sdk_key": key, "since": old.Seq, "epoch": old.Epoch})
	reg := c.ReadMsg(t, msgTimeout)
	if reg.Type != "registered" || reg.Epoch == old.Epoch || reg.Seq != 0 {
		t.Fatalf("after restart registered %s: want a new epoch (old %s) and seq 0", reg.Raw, old.Epoch)
	}
	if m := c.ReadMsg(t, msgTimeout); m.Type != "resync" || m.Epoch != reg.Epoch {
		t.Fatalf("want resync, got %s", m.Raw)
	}
}
