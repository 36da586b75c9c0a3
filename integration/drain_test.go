package integration

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestDrainSpreadsCloses: a stop with drain_window 2s closes 200 clients
// with 1001 spread over about the window, not in one burst; meanwhile new
// connections are refused and, in cluster mode, the node has already left
// the list the other nodes serve.
func TestDrainSpreadsCloses(t *testing.T) {
	skipShort(t)
	const clients, window = 200, 2 * time.Second
	tests := []struct {
		name    string
		cluster bool
	}{
		{name: "single node"},
		{name: "cluster", cluster: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := []string{"drain_window " + window.String()}
			var other *clusterNode
			const id = "gw-draining"
			if tc.cluster {
				redis := redistest.Start(t)
				other = startClusterNodes(t, redis.URL(), "gw-stays")[0]
				opts = append(opts, "broker redis "+redis.URL(), "node_id "+id,
					"node_address ws://127.0.0.1:{$PORT}"+route, "node_ttl "+clusterNodeTTL.String())
			}
			n := startCaddy(t, caddyfile(opts, nil))
			if other != nil {
				waitListed(t, other.Node, id, other.ID)
			}
			key := testKey(t, "k")
			cs := dialMany(t, clients, func(int) string { return n.WSURL(route + "?sdk_key=" + key) }, DialOpts{}, true)

			// Each client notes when its close frame arrived, and which.
			arrived := make([]time.Time, clients)
			codes := make([]int, clients)
			firstClose := make(chan struct{}) // closed when the first close frame arrives
			var firstOnce sync.Once
			var wg sync.WaitGroup
			for i, c := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					deadline := time.Now().Add(stopTimeout)
					for {
						e, ok := c.Next(time.Until(deadline))
						if !ok || e.Err != nil {
							return
						}
						if e.Op == opClose {
							arrived[i], codes[i] = time.Now(), e.Code
							firstOnce.Do(func() { close(firstClose) })
							return
						}
					}
				}()
			}

			start := time.Now()
			if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// Mid-drain: the first clients have their 1001, most do not yet.
			// A new connection is refused: 503 from the gateway, or no
			// listener when Caddy's HTTP app stopped first.
			refusal := ""
			eventually(t, stopTimeout, func() (bool, string) {
				status, err := tryWSStatus(n)
				refusal = fmt.Sprintf("status %d, %v", status, err)
				return (err == nil && status == 503) || errors.Is(err, syscall.ECONNREFUSED),
					"a new connection during the drain: " + refusal + "; want 503 or refused"
			})
			refusedAt := time.Now()
			if other != nil {
				// The node leaves the list before its first 1001. (A refused
				// connection alone proves nothing: Caddy may stop its HTTP
				// app, closing the listener, before the gateway's drain.)
				select {
				case <-firstClose:
				case <-time.After(stopTimeout):
					t.Fatal("no client got a close frame")
				}
				ns, err := tryPublicNodes(other.Node)
				if err != nil {
					t.Fatal(err)
				}
				if listed(ns, id) {
					t.Fatalf("%s still listed %v during its drain", id, nodeIDs(ns))
				}
			}
			wg.Wait()
			if !n.WaitExit(stopTimeout) {
				t.Fatal("caddy still running after the drain")
			}
			stopped := time.Since(start)

			var times []time.Time
			for i := range cs {
				if codes[i] != 1001 {
					t.Fatalf("client %d: close %d, want 1001", i, codes[i])
				}
				times = append(times, arrived[i])
			}
			slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
			first, last := times[0], times[len(times)-1]
			// Clients per half second of the drain, to show the spread.
			var hist []int
			for _, at := range times {
				slot := int(at.Sub(first) / (window / 4))
				for len(hist) <= slot {
					hist = append(hist, 0)
				}
				hist[slot]++
			}
			t.Logf("%d closes from %v to %v after SIGTERM (spread %v, per %v: %v); new connection refused (%s) %v after SIGTERM; exited after %v",
				clients, first.Sub(start).Round(time.Millisecond), last.Sub(start).Round(time.Millisecond),
				last.Sub(first).Round(time.Millisecond), window/4, hist, refusal, refusedAt.Sub(start).Round(time.Millisecond), stopped.Round(time.Millisecond))
			if spread := last.Sub(first); spread < time.Second || spread > window+time.Second {
				t.Fatalf("closes spread over %v, want about the %v window (at least 1s)", spread, window)
			}
			if stopped > window+stopTimeout/2 {
				t.Fatalf("the stop took %v", stopped)
			}
		})
	}
}

// tryWSStatus tries a WebSocket handshake without a testing.TB and returns
// its status; 0 with the dial error when no answer came.
func tryWSStatus(n *Node) (int, error) {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	hs := "GET " + route + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(hs)); err != nil {
		return 0, err
	}
	var buf [64]byte
	m, err := conn.Read(buf[:])
	var status int
	if _, serr := fmt.Sscanf(string(buf[:m]), "HTTP/1.1 %d", &status); serr != nil {
		return 0, fmt.Errorf("reading the answer: %w (%v)", serr, err)
	}
	return status, nil
}
