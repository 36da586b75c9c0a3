package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushgateway/push_gateway/hub"
)

// testEngine serves an Engine on an httptest server (no Caddy: the
// integration tests cover the real binary) and returns its ws:// URL.
func testEngine(t testing.TB, set RouteSettings) (*Engine, string) {
	t.Helper()
	e, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	route := e.Route("test")
	route.Set(set)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = e.ServeHTTP(w, r, route)
	}))
	t.Cleanup(func() { srv.Close(); e.Shutdown() })
	return e, "ws" + strings.TrimPrefix(srv.URL, "http")
}

type client struct {
	t  testing.TB
	nc net.Conn
}

func dialWS(t testing.TB, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if br != nil {
		// Frames the server sent right behind its handshake response.
		nc = bufferedConn{nc, br}
	}
	return &client{t: t, nc: nc}
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *client) send(s string) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.nc, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next text message as a map, or the close code.
func (c *client) next() (map[string]any, ws.StatusCode) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		msgs, err := wsutil.ReadServerMessage(c.nc, nil)
		if err != nil {
			var ce wsutil.ClosedError
			if ok := asClosed(err, &ce); ok {
				return nil, ce.Code
			}
			c.t.Fatalf("read: %v", err)
		}
		for _, m := range msgs {
			switch m.OpCode {
			case ws.OpText:
				var v map[string]any
				if err := json.Unmarshal(m.Payload, &v); err != nil {
					c.t.Fatalf("bad JSON %q: %v", m.Payload, err)
				}
				return v, 0
			case ws.OpClose:
				code, _ := ws.ParseCloseFrameData(m.Payload)
				return nil, code
			}
		}
	}
}

func asClosed(err error, ce *wsutil.ClosedError) bool {
	c, ok := err.(wsutil.ClosedError)
	if ok {
		*ce = c
	}
	return ok
}

func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	m, code := c.next()
	if m == nil || m["type"] != typ {
		c.t.Fatalf("got %v (close %d), want a %q message", m, code, typ)
	}
	return m
}

func (c *client) expectClose(want ws.StatusCode) {
	c.t.Helper()
	for {
		m, code := c.next()
		if m == nil {
			if code != want {
				c.t.Fatalf("closed with %d, want %d", code, want)
			}
			return
		}
	}
}

func TestRegisterPublishResume(t *testing.T) {
	e, url := testEngine(t, RouteSettings{})
	c := dialWS(t, url+"?sdk_key=k1")
	reg := c.expect("registered")
	if reg["sdk_key"] != "k1" || reg["seq"].(float64) != 0 {
		t.Fatalf("registered = %v", reg)
	}
	epoch := reg["epoch"].(string)
	for i := 1; i <= 3; i++ {
		if _, err := e.Hub().Publish("k1", "", []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		m := c.expect("message")
		if m["seq"].(float64) != float64(i) || m["event"] != "update" || m["epoch"] != epoch {
			t.Fatalf("message %d = %v", i, m)
		}
	}
	// A second client resumes after seq 1 and gets 2 and 3, then live 4.
	r := dialWS(t, url)
	r.send(`{"type":"register","sdk_key":"k1","since":1,"epoch":"` + epoch + `"}`)
	r.expect("registered")
	for _, want := range []float64{2, 3} {
		if m := r.expect("message"); m["seq"].(float64) != want {
			t.Fatalf("replay = %v, want seq %v", m, want)
		}
	}
	e.Hub().Publish("k1", "flip", []byte(`true`))
	if m := r.expect("message"); m["seq"].(float64) != 4 || m["event"] != "flip" || m["data"] != true {
		t.Fatalf("live = %v", m)
	}
	// Another epoch: resync.
	x := dialWS(t, url+"?sdk_key=k1&since=2&epoch=nope")
	x.expect("registered")
	if m := x.expect("resync"); m["seq"].(float64) != 4 {
		t.Fatalf("resync = %v", m)
	}
	r.send(`{"type":"ping"}`)
	r.expect("pong")
}

func TestCloseCodes(t *testing.T) {
	tests := []struct {
		name string
		send func(c *client)
		want ws.StatusCode
	}{
		{"malformed JSON", func(c *client) { c.send(`{"type":`) }, 4400},
		{"unknown type", func(c *client) { c.send(`{"type":"dance"}`) }, 4400},
		{"bad UTF-8", func(c *client) { wsutil.WriteClientText(c.nc, []byte{'"', 0xff, '"'}) }, 1007},
		{"too large", func(c *client) { c.send(`"` + strings.Repeat("a", 2000) + `"`) }, 1009},
		{"unmasked", func(c *client) {
			c.nc.Write(ws.MustCompileFrame(ws.NewTextFrame([]byte(`{"type":"ping"}`))))
		}, 1002},
		{"binary", func(c *client) { wsutil.WriteClientBinary(c.nc, []byte("x")) }, 4400},
		{"normal close", func(c *client) {
			c.nc.Write(ws.MustCompileFrame(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "")))))
		}, 1000},
	}
	_, url := testEngine(t, RouteSettings{MaxMessageSize: 1024})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialWS(t, url)
			tt.send(c)
			c.expectClose(tt.want)
		})
	}
}

func TestIdleTimeoutAndHeartbeat(t *testing.T) {
	_, url := testEngine(t, RouteSettings{Heartbeat: 100 * time.Millisecond, IdleTimeout: 400 * time.Millisecond})
	c := dialWS(t, url)
	// A silent client is pinged, then closed with 4408. (ReadServerMessage
	// answers nothing on its own, so the client stays silent.)
	pings := 0
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		h, err := ws.ReadHeader(c.nc)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, h.Length)
		if _, err := readFull(c.nc, p); err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpPing {
			pings++
			continue
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(p)
			if code != 4408 || pings == 0 {
				t.Fatalf("close %d after %d pings, want 4408 after ≥1", code, pings)
			}
			return
		}
	}
}

func readFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := c.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// A reload that shortens the heartbeat reaches live connections at once,
// not after the old period.
func TestSetRetimesLiveConnections(t *testing.T) {
	e, url := testEngine(t, RouteSettings{Heartbeat: time.Hour, IdleTimeout: 2 * time.Hour})
	c := dialWS(t, url+"?sdk_key=k")
	c.expect("registered")
	e.Route("test").Set(RouteSettings{Heartbeat: 50 * time.Millisecond, IdleTimeout: time.Hour})
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(c.nc)
	if err != nil || h.OpCode != ws.OpPing {
		t.Fatalf("got %+v, %v; want a ping", h, err)
	}
}

// A client that floods pings and reads none of the answers is closed as a
// slow consumer instead of growing its queue without bound.
func TestPingFloodIsASlowConsumer(t *testing.T) {
	e, url := testEngine(t, RouteSettings{QueueSize: 8})
	c := dialWS(t, url)
	ping := ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte(`{"type":"ping"}`))))
	flood := make(chan struct{})
	go func() {
		defer close(flood)
		for range 200000 {
			if _, err := c.nc.Write(ping); err != nil {
				return
			}
		}
	}()
	<-flood
	c.expectClose(4429)
	if n := e.Stats().SlowConsumerCloses; n != 1 {
		t.Fatalf("slow_consumer_closes = %d, want 1", n)
	}
}

// A reload that drops a global option brings its default back.
func TestConfigureRestoresDefaults(t *testing.T) {
	e, _ := testEngine(t, RouteSettings{})
	e.Configure(Config{HistorySize: 2})
	for range 5 {
		e.Hub().Publish("k", "", []byte("1"))
	}
	if info, _, _ := e.Hub().KeyInfo("k"); info.History != 2 {
		t.Fatalf("history %d, want 2", info.History)
	}
	e.Configure(Config{})
	for range 5 {
		e.Hub().Publish("k", "", []byte("1"))
	}
	if info, _, _ := e.Hub().KeyInfo("k"); info.History != 7 {
		t.Fatalf("history %d after dropping history_size, want 7 (default %d)", info.History, hub.DefaultHistorySize)
	}
}

// A resume that replays a whole history is not a slow consumer, however
// small the live queue.
func TestFullReplayIsNotASlowConsumer(t *testing.T) {
	e, url := testEngine(t, RouteSettings{QueueSize: 4})
	e.Configure(Config{HistorySize: 300})
	var epoch string
	for range 300 {
		p, _ := e.Hub().Publish("k", "", []byte(`1`))
		epoch = p.Epoch
	}
	c := dialWS(t, url+"?sdk_key=k&since=0&epoch="+epoch)
	c.expect("registered")
	for i := 1; i <= 300; i++ {
		if m := c.expect("message"); m["seq"].(float64) != float64(i) {
			t.Fatalf("replay %d = %v", i, m)
		}
	}
	if n := e.Stats().SlowConsumerCloses; n != 0 {
		t.Fatalf("%d slow-consumer closes", n)
	}
}
