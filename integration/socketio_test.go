package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Socket.IO tests with a Go client speaking raw Engine.IO v4 over the
// harness's WebSocket client (the npm-based tests are in featureprobe_test.go).

// sioCaddyfile enables socketio on the test route (/realtime*), which holds
// the /realtime and /realtime/ Engine.IO paths.
func sioCaddyfile(opts ...string) string {
	return caddyfile(nil, append([]string{"transports websocket socketio"}, opts...))
}

// sioDial opens an Engine.IO WebSocket on path and checks the open packet.
func sioDial(t testing.TB, n *Node, path string) *Client {
	t.Helper()
	c := Dial(t, n.WSURL(path+"?EIO=4&transport=websocket"))
	if open := sioNext(t, c); !strings.HasPrefix(open, `0{"sid":"`) || !strings.Contains(open, `"pingInterval":`) {
		t.Fatalf("first packet %q, want the Engine.IO open packet", open)
	}
	return c
}

// sioNext returns the next text message, skipping Engine.IO pings.
func sioNext(t testing.TB, c *Client) string {
	t.Helper()
	s, err := sioTryNext(c, msgTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sioTryNext(c *Client, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		e, ok := c.Next(time.Until(deadline))
		switch {
		case !ok:
			return "", fmt.Errorf("no message within %v", timeout)
		case e.Err != nil:
			return "", fmt.Errorf("connection ended: %w", e.Err)
		case e.Op == opClose:
			return "", fmt.Errorf("closed with %d", e.Code)
		case e.Op == opText && string(e.Data) != "2":
			return string(e.Data), nil
		}
	}
}

func sioExpect(t testing.TB, c *Client, want string) {
	t.Helper()
	if got := sioNext(t, c); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestSocketIOGoClient(t *testing.T) {
	n := startCaddy(t, sioCaddyfile())
	tests := []struct {
		name, path, ns, field string
		oneWrite              bool // register in the same TCP write as CONNECT, as FeatureProbe's Go SDK may
	}{
		{name: "server sdk, /realtime/", path: "/realtime/", ns: "/realtime", field: "key"},
		{name: "go sdk, /realtime, register before connect", path: "/realtime", ns: "/realtime", field: "key", oneWrite: true},
		{name: "client sdk, root namespace", path: "/realtime/", ns: "/", field: "sdk_key"},
		{name: "prefixed namespace", path: "/realtime", ns: "/fp/realtime", field: "sdk_key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(t, "k")
			// The previous case's connection closes asynchronously: count
			// from zero once it is gone.
			for deadline := time.Now().Add(msgTimeout); n.Stats(t).Connections.SocketIO != 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the previous case's socket.io connection is still open")
				}
			}
			const base = 0
			c := sioDial(t, n, tc.path)
			nsp := tc.ns + ","
			if tc.ns == "/" {
				nsp = ""
			}
			register := fmt.Sprintf(`42%s["register",{%q:%q}]`, nsp, tc.field, key)
			if tc.oneWrite {
				frames := append(encodeFrame(true, opText, []byte("40"+nsp), true), encodeFrame(true, opText, []byte(register), true)...)
				if err := c.WriteRaw(frames); err != nil {
					t.Fatal(err)
				}
				// CONNECT answer, then update "": the register may be handled
				// before or after the namespace's connect is acknowledged.
				got := []string{sioNext(t, c), sioNext(t, c)}
				if !strings.HasPrefix(got[0], "40"+nsp+`{"sid":`) || got[1] != "42"+nsp+`["update",""]` {
					t.Fatalf("got %q", got)
				}
			} else {
				c.Send(t, "40"+nsp)
				if got := sioNext(t, c); !strings.HasPrefix(got, "40"+nsp+`{"sid":`) {
					t.Fatalf("connect answer %q", got)
				}
				c.Send(t, register)
				sioExpect(t, c, "42"+nsp+`["update",""]`)
			}
			if got := n.Stats(t).Connections.SocketIO; got != base+1 {
				t.Fatalf("stats: %d socketio connections, want %d", got, base+1)
			}
			if p := n.PublishOK(t, key, "", `""`); p.LocalReceivers != 1 {
				t.Fatalf("local_receivers %d, want 1", p.LocalReceivers)
			}
			sioExpect(t, c, "42"+nsp+`["update",""]`)
			n.PublishOK(t, key, "flags", `{"on":true}`)
			sioExpect(t, c, "42"+nsp+`["flags",{"on":true}]`)
		})
	}
}

func TestSocketIOBadPacketClosesOnlyItsConnection(t *testing.T) {
	n := startCaddy(t, sioCaddyfile())
	key := testKey(t, "k")
	good := sioDial(t, n, "/realtime/")
	good.Send(t, `42/realtime,["register",{"key":"`+key+`"}]`)
	sioExpect(t, good, `42/realtime,["update",""]`)
	for _, bad := range []string{`42/realtime,["register",`, "9", `451-["x",{"_placeholder":true,"num":0}]`} {
		c := sioDial(t, n, "/realtime/")
		c.Send(t, bad)
		if _, err := sioTryNext(c, msgTimeout); err == nil || !strings.Contains(err.Error(), "closed with") {
			t.Fatalf("%q: want a close, got %v", bad, err)
		}
	}
	n.PublishOK(t, key, "", `1`)
	sioExpect(t, good, `42/realtime,["update",1]`)
}

// TestSocketIOIdleGoroutines: 2,000 idle Socket.IO connections, each
// registered, cost no goroutine (ARCHITECTURE I4) and count as followers.
func TestSocketIOIdleGoroutines(t *testing.T) {
	skipShort(t)
	const count = 2000
	n := startCaddy(t, sioCaddyfile())
	keyBase := testKey(t, "k")
	warm := sioDial(t, n, "/realtime/")
	warm.Send(t, `42/realtime,["register",{"key":"`+keyBase+`-warm"}]`)
	sioExpect(t, warm, `42/realtime,["update",""]`)
	base := n.Stats(t)

	start := time.Now()
	clients := dialMany(t, count, func(int) string {
		return n.WSURL("/realtime/?EIO=4&transport=websocket")
	}, DialOpts{}, false)
	inParallel(t, count, dialLimit, func(i int) error {
		c := clients[i]
		if open, err := sioTryNext(c, 30*time.Second); err != nil || !strings.HasPrefix(open, "0{") {
			return fmt.Errorf("client %d: open %q %v", i, open, err)
		}
		key := fmt.Sprintf("%s-%d", keyBase, i%50)
		if err := c.WriteFrame(true, opText, []byte("40/realtime,"), true); err != nil {
			return err
		}
		if err := c.WriteFrame(true, opText, []byte(`42/realtime,["register",{"sdk_key":"`+key+`"}]`), true); err != nil {
			return err
		}
		for _, want := range []string{`40/realtime,{"sid":`, `42/realtime,["update",""]`} {
			if got, err := sioTryNext(c, 30*time.Second); err != nil || !strings.HasPrefix(got, want) {
				return fmt.Errorf("client %d: got %q %v, want %s…", i, got, err, want)
			}
		}
		return nil
	})
	t.Logf("%d socket.io connections registered in %v", count, time.Since(start))
	var last Stats
	eventually(t, 60*time.Second, func() (bool, string) {
		last = n.Stats(t)
		return last.Connections.SocketIO == base.Connections.SocketIO+count && last.Goroutines-base.Goroutines < 50,
			fmt.Sprintf("socketio connections %d (base %d), goroutines %d (base %d)",
				last.Connections.SocketIO, base.Connections.SocketIO, last.Goroutines, base.Goroutines)
	})
	t.Logf("%d idle socket.io connections: goroutines %d -> %d", count, base.Goroutines, last.Goroutines)

	p := n.PublishOK(t, keyBase+"-0", "", `"hello"`)
	if want := count / 50; p.LocalReceivers != want {
		t.Fatalf("local_receivers %d, want %d", p.LocalReceivers, want)
	}
	for i := 0; i < count; i += 50 {
		sioExpect(t, clients[i], `42/realtime,["update","hello"]`)
	}
	closeAll(clients)
	eventually(t, 60*time.Second, func() (bool, string) {
		s := n.Stats(t)
		return s.Connections.SocketIO == base.Connections.SocketIO,
			fmt.Sprintf("%d socketio connections after closing, base %d", s.Connections.SocketIO, base.Connections.SocketIO)
	})
}
