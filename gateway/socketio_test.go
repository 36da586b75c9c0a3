package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// sioClient speaks raw Engine.IO v4 over a gobwas WebSocket, so the tests
// see every packet the gateway sends.
type sioClient struct{ *client }

// dialSIO opens an Engine.IO WebSocket on path and checks the open packet.
func dialSIO(t testing.TB, url, path string) *sioClient {
	t.Helper()
	c := &sioClient{dialWS(t, url+path+"?EIO=4&transport=websocket")}
	open := c.read()
	if !strings.HasPrefix(open, "0{") {
		t.Fatalf("first packet %q, want the open packet", open)
	}
	var o struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int      `json:"pingInterval"`
		PingTimeout  int      `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}
	if err := json.Unmarshal([]byte(open[1:]), &o); err != nil || len(o.SID) != 20 || o.Upgrades == nil ||
		o.PingInterval <= 0 || o.PingTimeout <= 0 || o.MaxPayload <= 0 {
		t.Fatalf("open packet %q: %+v %v", open, o, err)
	}
	return c
}

// read returns the next text message, failing on a close.
func (c *sioClient) read() string {
	c.t.Helper()
	s, code := c.readOrClose()
	if code != 0 {
		c.t.Fatalf("closed with %d, want a message", code)
	}
	return s
}

// readOrClose returns the next text message, or the close code.
func (c *sioClient) readOrClose() (string, ws.StatusCode) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		msgs, err := wsutil.ReadServerMessage(c.nc, nil)
		if err != nil {
			var ce wsutil.ClosedError
			if errors.As(err, &ce) {
				return "", ce.Code
			}
			c.t.Fatalf("read: %v", err)
		}
		for _, m := range msgs {
			switch m.OpCode {
			case ws.OpText:
				return string(m.Payload), 0
			case ws.OpClose:
				code, _ := ws.ParseCloseFrameData(m.Payload)
				return "", code
			}
		}
	}
}

// expect reads the next message, skipping Engine.IO pings, and wants it to
// be want.
func (c *sioClient) expect(want string) {
	c.t.Helper()
	for {
		got := c.read()
		if got == "2" && want != "2" {
			continue
		}
		if got != want {
			c.t.Fatalf("got %q, want %q", got, want)
		}
		return
	}
}

// expectConnect reads the namespace CONNECT answer.
func (c *sioClient) expectConnect(ns string) {
	c.t.Helper()
	prefix := "40"
	if ns != "/" {
		prefix += ns + ","
	}
	got := c.read()
	if !strings.HasPrefix(got, prefix+`{"sid":"`) || !strings.HasSuffix(got, `"}`) {
		c.t.Fatalf("got %q, want %s{\"sid\":…}", got, prefix)
	}
}

func (c *sioClient) expectClose(want ws.StatusCode) {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, code := c.readOrClose()
		if code != 0 {
			if code != want {
				c.t.Fatalf("closed with %d, want %d", code, want)
			}
			return
		}
	}
	c.t.Fatalf("not closed within 5s, want close %d", want)
}

func sioEngine(t testing.TB, set RouteSettings) (*Engine, string) {
	t.Helper()
	if set.Transports == nil {
		set.Transports = []string{TransportWebSocket, TransportSocketIO}
	}
	return testEngine(t, set)
}

func TestSocketIORegisterAndPublish(t *testing.T) {
	tests := []struct {
		name, path, ns, connect, register, prefix string
	}{
		{"client sdk on /realtime", "/server/realtime/", "/realtime", "40/realtime,", `42/realtime,["register",{"sdk_key":"K"}]`, "42/realtime,"},
		{"server sdk with ack", "/realtime/", "/realtime", "40/realtime,", `42/realtime,7["register",{"key":"K"}]`, "42/realtime,"},
		{"go sdk path, root namespace", "/realtime", "/", "40", `42["register",{"key":"K"}]`, "42"},
		{"prefixed namespace", "/socket.io/", "/p/realtime", `40/p/realtime,{"token":"x"}`, `42/p/realtime,["register",{"sdk_key":"K"}]`, "42/p/realtime,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, url := sioEngine(t, RouteSettings{})
			key := "K"
			c := dialSIO(t, url, tt.path)
			c.send(tt.connect)
			c.expectConnect(tt.ns)
			c.send(tt.register)
			if strings.Contains(tt.register, ",7[") {
				c.expect("43/realtime,7[]")
			}
			c.expect(tt.prefix + `["update",""]`)
			if p, err := e.Hub().Publish(key, "", []byte(`{"v":1}`)); err != nil || p.LocalReceivers != 1 {
				t.Fatalf("publish: %+v %v", p, err)
			}
			c.expect(tt.prefix + `["update",{"v":1}]`)
			e.Hub().Publish(key, "toggle_changed", []byte(`""`))
			c.expect(tt.prefix + `["toggle_changed",""]`)
			if st := e.Stats(); st.Connections.SocketIO != 1 {
				t.Fatalf("stats: %+v", st.Connections)
			}
		})
	}
}

func TestSocketIORegisterBeforeConnect(t *testing.T) {
	e, url := sioEngine(t, RouteSettings{})
	c := dialSIO(t, url, "/realtime")
	// FeatureProbe's Go SDK: register right behind CONNECT, in one write.
	c.send(`42/realtime,["register",{"key":"server-key"}]`)
	c.expect(`42/realtime,["update",""]`)
	c.send("40/realtime,")
	c.expectConnect("/realtime")
	e.Hub().Publish("server-key", "", []byte(`""`))
	c.expect(`42/realtime,["update",""]`)
}

func TestSocketIOTwoNamespacesAndDisconnect(t *testing.T) {
	e, url := sioEngine(t, RouteSettings{})
	c := dialSIO(t, url, "/socket.io/")
	c.send("40")
	c.expectConnect("/")
	c.send("40/realtime,")
	c.expectConnect("/realtime")
	c.send(`42["register",{"sdk_key":"a"}]`)
	c.expect(`42["update",""]`)
	c.send(`42/realtime,["register",{"sdk_key":"a"}]`)
	c.expect(`42/realtime,["update",""]`)
	if p, _ := e.Hub().Publish("a", "", []byte(`1`)); p.LocalReceivers != 2 {
		t.Fatalf("local_receivers %d, want 2", p.LocalReceivers)
	}
	got := []string{c.read(), c.read()}
	if !(got[0] == `42["update",1]` && got[1] == `42/realtime,["update",1]`) &&
		!(got[1] == `42["update",1]` && got[0] == `42/realtime,["update",1]`) {
		t.Fatalf("got %q", got)
	}
	c.send("41/realtime,")
	c.send(`42["other",{"x":1}]`) // other events are ignored
	c.send(`42["ping-me"]`)
	c.send(`42/,9["anything"]`)
	c.expect("439[]") // and their acks answered
	if p, _ := e.Hub().Publish("a", "", []byte(`2`)); p.LocalReceivers != 1 {
		t.Fatalf("after disconnect: local_receivers %d, want 1", p.LocalReceivers)
	}
	c.expect(`42["update",2]`)
}

func TestSocketIOPingPong(t *testing.T) {
	_, url := sioEngine(t, RouteSettings{Heartbeat: 100 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	c := dialSIO(t, url, "/realtime")
	// Answered pings keep the connection.
	for range 4 {
		c.expect("2")
		c.send("3")
	}
	c.send("2probe")
	c.expect("3probe")
	// An unanswered one closes it after pingTimeout.
	start := time.Now()
	c.expect("2")
	c.expectClose(4408)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v, before pingTimeout", d)
	}
}

func TestSocketIOBadInput(t *testing.T) {
	tests := []struct {
		name string
		send func(c *sioClient)
		want ws.StatusCode
	}{
		{"binary event", func(c *sioClient) { c.send(`451-/realtime,["register",{"_placeholder":true,"num":0}]`) }, 1003},
		{"binary ack", func(c *sioClient) { c.send(`461-/realtime,1[{"_placeholder":true,"num":0}]`) }, 1003},
		{"binary frame", func(c *sioClient) { wsutil.WriteClientBinary(c.nc, []byte{4, 1, 2}) }, 1003},
		{"unknown engine.io type", func(c *sioClient) { c.send("9") }, 4400},
		{"empty frame", func(c *sioClient) { c.send("") }, 4400},
		{"open from client", func(c *sioClient) { c.send(`0{"sid":"x"}`) }, 4400},
		{"bad socket.io type", func(c *sioClient) { c.send("48") }, 4400},
		{"event without array", func(c *sioClient) { c.send(`42/realtime,{"a":1}`) }, 4400},
		{"truncated JSON", func(c *sioClient) { c.send(`42/realtime,["register",{"key":`) }, 4400},
		{"register without object", func(c *sioClient) { c.send(`42/realtime,["register","K"]`) }, 4400},
		{"register with bad key", func(c *sioClient) { c.send(`42/realtime,["register",{"key":""}]`) }, 4400},
		{"bad UTF-8", func(c *sioClient) { wsutil.WriteClientText(c.nc, []byte{'4', '2', 0xff}) }, 1007},
		{"too large", func(c *sioClient) { c.send(`42["x","` + strings.Repeat("a", 2000) + `"]`) }, 1009},
		{"engine.io close", func(c *sioClient) { c.send("1") }, 1000},
	}
	e, url := sioEngine(t, RouteSettings{MaxMessageSize: 1024})
	other := dialSIO(t, url, "/realtime")
	other.send(`42/realtime,["register",{"key":"bystander"}]`)
	other.expect(`42/realtime,["update",""]`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialSIO(t, url, "/realtime")
			tt.send(c)
			c.expectClose(tt.want)
		})
	}
	// Bad packets closed their own connections only.
	e.Hub().Publish("bystander", "", []byte(`3`))
	other.expect(`42/realtime,["update",3]`)
}

func TestSocketIOTooManyNamespaces(t *testing.T) {
	_, url := sioEngine(t, RouteSettings{})
	c := dialSIO(t, url, "/realtime")
	for i := range sioMaxNamespaces {
		ns := "/n" + string(rune('a'+i))
		c.send("40" + ns + ",")
		c.expectConnect(ns)
	}
	c.send("40/one-more,")
	c.expect(`44/one-more,{"message":"too many namespaces on one connection"}`)
	c.send(`42/one-more,["register",{"key":"K"}]`)
	c.expectClose(4429)
}

func TestSocketIOHandshakeErrors(t *testing.T) {
	tests := []struct {
		name       string
		set        RouteSettings
		path       string
		upgrade    bool
		wantStatus int
		wantErr    string
	}{
		{"socketio not enabled", RouteSettings{}, "/realtime/?EIO=4&transport=websocket", true, 400, "not enabled"},
		{"path not listed", RouteSettings{Transports: []string{TransportSocketIO}}, "/elsewhere/?EIO=4&transport=websocket", true, 400, "no Engine.IO endpoint"},
		{"custom path only", RouteSettings{Transports: []string{TransportSocketIO}, SocketIOPaths: []string{"/x/"}}, "/realtime?EIO=4&transport=websocket", true, 400, "no Engine.IO endpoint"},
		{"EIO 3", RouteSettings{Transports: []string{TransportSocketIO}}, "/socket.io/?EIO=3&transport=websocket", true, 400, "EIO=4"},
		{"polling unknown sid", RouteSettings{Transports: []string{TransportSocketIO}}, "/socket.io/?EIO=4&transport=polling&sid=abc", false, 400, "unknown sid"},
		{"websocket without upgrade", RouteSettings{Transports: []string{TransportSocketIO}}, "/socket.io/?EIO=4&transport=websocket", false, 400, "needs a WebSocket upgrade"},
		{"unknown transport", RouteSettings{Transports: []string{TransportSocketIO}}, "/socket.io/?EIO=4&transport=carrier", false, 400, "unknown Engine.IO transport"},
		{"upgrade from polling", RouteSettings{Transports: []string{TransportSocketIO}}, "/socket.io/?EIO=4&transport=websocket&sid=abc", true, 400, "unknown sid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := testEngine(t, tt.set)
			req, _ := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(url, "ws")+tt.path, nil)
			if tt.upgrade {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Sec-WebSocket-Version", "13")
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error string }
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(body.Error, tt.wantErr) {
				t.Fatalf("got %d %q, want %d …%s…", resp.StatusCode, body.Error, tt.wantStatus, tt.wantErr)
			}
		})
	}
}

func TestSocketIOShutdownAndSlowConsumer(t *testing.T) {
	e, url := sioEngine(t, RouteSettings{QueueSize: 1})
	c := dialSIO(t, url, "/realtime")
	c.send(`42/realtime,["register",{"key":"slow"}]`)
	c.expect(`42/realtime,["update",""]`)
	// Stop reading and fill the socket buffers, then the queue.
	big := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 100000 && e.Stats().SlowConsumerCloses == 0 && time.Now().Before(deadline); i++ {
		e.Hub().Publish("slow", "", big)
	}
	if e.Stats().SlowConsumerCloses != 1 {
		t.Fatalf("no slow consumer close: %+v", e.Stats())
	}
	if p, _ := e.Hub().Publish("slow", "", big); p.LocalReceivers != 0 {
		t.Fatalf("the slow consumer still follows: %+v", p)
	}
	c.nc.Close() // else Shutdown waits for it to take its close
	d := dialSIO(t, url, "/realtime")
	e.Shutdown()
	d.expectClose(1001)
}

// BenchmarkSocketIODeliver measures a publish to 500 Socket.IO followers
// in /realtime (hub format) and in a namespace without one (shared cache):
// allocs/delivery is allocs/op divided by the followers, the publish's own
// allocations included.
func BenchmarkSocketIODeliver(b *testing.B) {
	for _, ns := range []string{"/realtime", "/prefix/realtime"} {
		b.Run(ns, func(b *testing.B) {
			e, url := sioEngine(b, RouteSettings{QueueSize: 1 << 16})
			const n = 500
			for range n {
				c := dialSIO(b, url, "/realtime")
				c.send("42" + ns + `,["register",{"key":"bench"}]`)
				c.expect("42" + ns + `,["update",""]`)
			}
			data := []byte(`{"v":1}`)
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for b.Loop() {
				if p, _ := e.Hub().Publish("bench", "", data); p.LocalReceivers != n {
					b.Fatalf("delivered to %d", p.LocalReceivers)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N*n), "allocs/delivery")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

func TestSocketIONamespaceCacheReleased(t *testing.T) {
	_, url := sioEngine(t, RouteSettings{})
	c := dialSIO(t, url, "/realtime")
	c.send(`42/cache-test,["register",{"key":"K"}]`)
	c.expect(`42/cache-test,["update",""]`)
	cached := func() bool {
		sioCaches.Lock()
		defer sioCaches.Unlock()
		return sioCaches.m["/cache-test"] != nil
	}
	if !cached() {
		t.Fatal("no cache for a joined namespace")
	}
	c.send("41/cache-test,")
	c.send("2probe") // answered after the disconnect was handled
	c.expect("3probe")
	if cached() {
		t.Fatal("the cache outlived the namespace's last follower")
	}
}
