package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pollClient speaks raw Engine.IO v4 long-polling, so the tests see every
// packet the gateway sends.
type pollClient struct {
	t    testing.TB
	base string // http://host/path?EIO=4&transport=polling
	sid  string
	e    *Engine
}

// openPolling opens a polling session on path and checks the open packet.
func openPolling(t testing.TB, e *Engine, wsURL, path string) *pollClient {
	t.Helper()
	c := &pollClient{t: t, e: e, base: "http" + strings.TrimPrefix(wsURL, "ws") + path + "?EIO=4&transport=polling"}
	status, body := c.do(http.MethodGet, c.base+"&t=open", "")
	if status != http.StatusOK || !strings.HasPrefix(body, "0{") {
		t.Fatalf("open: %d %q", status, body)
	}
	var o struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int      `json:"pingInterval"`
		PingTimeout  int      `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}
	if err := json.Unmarshal([]byte(body[1:]), &o); err != nil || len(o.SID) != 20 ||
		len(o.Upgrades) != 1 || o.Upgrades[0] != "websocket" || o.PingInterval <= 0 || o.PingTimeout <= 0 || o.MaxPayload <= 0 {
		t.Fatalf("open packet %q: %+v %v", body, o, err)
	}
	c.sid = o.SID
	return c
}

// do sends one request and returns its status and body.
func (c *pollClient) do(method, url, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (c *pollClient) url() string { return c.base + "&sid=" + c.sid }

// get polls once and returns the packets.
func (c *pollClient) get() []string {
	c.t.Helper()
	status, body := c.do(http.MethodGet, c.url(), "")
	if status != http.StatusOK {
		c.t.Fatalf("poll: %d %q", status, body)
	}
	return strings.Split(body, "\x1e")
}

// post sends packets in one body and wants "ok".
func (c *pollClient) post(pkts ...string) {
	c.t.Helper()
	status, body := c.do(http.MethodPost, c.url(), strings.Join(pkts, "\x1e"))
	if status != http.StatusOK || body != "ok" {
		c.t.Fatalf("post: %d %q", status, body)
	}
}

// expect polls until it has len(want) packets other than pings and noops,
// and wants them to be want (a "…" suffix matches any rest).
func (c *pollClient) expect(want ...string) {
	c.t.Helper()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		for _, p := range c.get() {
			if p != "2" && p != "6" {
				got = append(got, p)
			}
		}
	}
	if len(got) != len(want) {
		c.t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if w, ok := strings.CutSuffix(want[i], "…"); ok && strings.HasPrefix(got[i], w) || got[i] == want[i] {
			continue
		}
		c.t.Fatalf("packet %d: got %q, want %q", i, got[i], want[i])
	}
}

func sioConns(e *Engine) func() int64 { return func() int64 { return e.Stats().Connections.SocketIO } }

func TestSocketIOPollingRegisterAndPublish(t *testing.T) {
	tests := []struct {
		name string
		ns   string // namespace prefix of packets
	}{
		{"realtime", "/realtime,"},
		{"root", ""},
		{"other namespace", "/acme/realtime,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, url := sioEngine(t, RouteSettings{})
			c := openPolling(t, e, url, "/realtime/")
			key := "poll-" + strings.ReplaceAll(tt.name, " ", "-")
			// CONNECT and register in one body, as a client flushing its buffer.
			c.post("40"+tt.ns, `42`+tt.ns+`["register",{"sdk_key":"`+key+`"}]`)
			c.expect("40"+tt.ns+`{"sid":"…`, `42`+tt.ns+`["update",""]`)
			if n := sioConns(e)(); n != 1 {
				t.Fatalf("%d socket.io connections in stats, want 1", n)
			}
			// A held poll is answered by the publish.
			got := make(chan []string, 1)
			go func() { got <- c.get() }()
			waitFor(t, "a held poll", func() bool {
				s := sioLookup(e, c.sid)
				s.pl.mu.Lock()
				defer s.pl.mu.Unlock()
				return s.pl.getting
			})
			if p, err := e.Hub().Publish(key, "", []byte(`{"v":1}`)); err != nil || p.LocalReceivers != 1 {
				t.Fatalf("publish: %+v %v", p, err)
			}
			if pk := <-got; len(pk) != 1 || pk[0] != `42`+tt.ns+`["update",{"v":1}]` {
				t.Fatalf("held poll got %q", pk)
			}
			// Packets queued between polls come in one body.
			e.Hub().Publish(key, "a", []byte(`1`))
			e.Hub().Publish(key, "b", []byte(`2`))
			if pk := c.get(); len(pk) != 2 || pk[0] != `42`+tt.ns+`["a",1]` || pk[1] != `42`+tt.ns+`["b",2]` {
				t.Fatalf("poll got %q, want two events", pk)
			}
			// Close: the followers go, the sid is unknown.
			c.post("1")
			waitFor(t, "the session released", func() bool { return sioConns(e)() == 0 })
			if status, _ := c.do(http.MethodGet, c.url(), ""); status != http.StatusBadRequest {
				t.Fatalf("poll after close: %d, want 400", status)
			}
		})
	}
}

func TestSocketIOPollingPingPongAndExpiry(t *testing.T) {
	e, url := sioEngine(t, RouteSettings{Heartbeat: 150 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	c := openPolling(t, e, url, "/socket.io/")
	c.post("40")
	c.expect(`40{"sid":"…`)
	// The server pings; answering keeps the session alive past its timeout.
	start := time.Now()
	for pings := 0; pings < 3; {
		for _, p := range c.get() {
			if p == "2" {
				pings++
				c.post("3")
			}
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("fewer than 3 pings in 5s")
		}
	}
	if sioLookup(e, c.sid) == nil {
		t.Fatal("session ended although it answered every ping")
	}
	// Silence: the session expires after a ping and the ping timeout.
	waitFor(t, "the silent session to expire", func() bool { return sioConns(e)() == 0 })
	if status, _ := c.do(http.MethodGet, c.url(), ""); status != http.StatusBadRequest {
		t.Fatalf("poll after expiry: %d, want 400", status)
	}
}

func TestSocketIOPollingErrors(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, c *pollClient)
	}{
		{"two GETs", func(t *testing.T, c *pollClient) {
			first := make(chan []string, 1)
			go func() { first <- c.get() }()
			waitFor(t, "a held poll", func() bool {
				s := sioLookup(c.e, c.sid)
				s.pl.mu.Lock()
				defer s.pl.mu.Unlock()
				return s.pl.getting
			})
			if status, body := c.do(http.MethodGet, c.url(), ""); status != http.StatusBadRequest || !strings.Contains(body, "second GET") {
				t.Fatalf("second GET: %d %q, want 400", status, body)
			}
			if pk := <-first; pk[len(pk)-1] != "1" {
				t.Fatalf("the held GET got %q, want a close packet", pk)
			}
		}},
		{"maxPayload", func(t *testing.T, c *pollClient) {
			body := `42["x","` + strings.Repeat("a", 2000) + `"]`
			if status, _ := c.do(http.MethodPost, c.url(), body); status != http.StatusRequestEntityTooLarge {
				t.Fatalf("oversized POST: %d, want 413", status)
			}
		}},
		{"bad packet", func(t *testing.T, c *pollClient) {
			c.post("4garbage")
		}},
		{"binary packet", func(t *testing.T, c *pollClient) {
			c.post("bAQID")
		}},
		{"PUT", func(t *testing.T, c *pollClient) {
			if status, _ := c.do(http.MethodPut, c.url(), ""); status != http.StatusMethodNotAllowed {
				t.Fatalf("PUT: %d, want 405", status)
			}
			c.post("1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, url := sioEngine(t, RouteSettings{MaxMessageSize: 1024})
			c := openPolling(t, e, url, "/socket.io/")
			tt.run(t, c)
			waitFor(t, "the session closed", func() bool { return sioConns(e)() == 0 })
			if status, _ := c.do(http.MethodGet, c.url(), ""); status != http.StatusBadRequest {
				t.Fatalf("poll after the error: %d, want 400", status)
			}
		})
	}
}

func TestSocketIOPollingSlowConsumer(t *testing.T) {
	e, url := sioEngine(t, RouteSettings{QueueSize: 1})
	c := openPolling(t, e, url, "/realtime")
	c.post(`40/realtime,`, `42/realtime,["register",{"key":"slow"}]`)
	for i := range e.queueLimit(e.Route("test").get()) + 1 {
		e.Hub().Publish("slow", "", fmt.Appendf(nil, "%d", i))
	}
	waitFor(t, "the slow session closed", func() bool { return sioConns(e)() == 0 })
	if status, _ := c.do(http.MethodGet, c.url(), ""); status != http.StatusBadRequest {
		t.Fatalf("poll of the dropped session: %d, want 400", status)
	}
}

// TestSocketIOPollingUpgrade upgrades to WebSocket while messages are being
// published: every message arrives once, in order, over poll then WebSocket.
func TestSocketIOPollingUpgrade(t *testing.T) {
	const n = 300
	e, url := sioEngine(t, RouteSettings{QueueSize: 2 * n})
	c := openPolling(t, e, url, "/realtime/")
	c.post(`40/realtime,`, `42/realtime,["register",{"sdk_key":"up"}]`)
	c.expect(`40/realtime,{"sid":"…`, `42/realtime,["update",""]`)

	var got []string // events, in arrival order
	event := func(p string) {
		if s, ok := strings.CutPrefix(p, `42/realtime,["update",`); ok {
			got = append(got, strings.TrimSuffix(s, "]"))
		}
	}
	// The client polls until paused, as socket.io-client does.
	var paused atomic.Bool
	polled := make(chan []string, 1)
	go func() {
		var pk []string
		for !paused.Load() {
			pk = append(pk, c.get()...)
		}
		polled <- pk
	}()
	// A third of the messages before the probe, a third between the probe
	// and the upgrade, a third racing the upgrade.
	probed, upgrading, published := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(published)
		for i := range n {
			switch i {
			case n / 3:
				<-probed
			case 2 * n / 3:
				<-upgrading
			}
			e.Hub().Publish("up", "", strconv.AppendInt(nil, int64(i), 10))
		}
	}()

	w := &sioClient{dialWS(t, url+"/realtime/?EIO=4&transport=websocket&sid="+c.sid)}
	w.send("2probe")
	w.expect("3probe")
	close(probed)
	paused.Store(true)
	for _, p := range <-polled {
		event(p)
	}
	w.send("5")
	close(upgrading)
	<-published
	for deadline := time.Now().Add(5 * time.Second); len(got) < n && time.Now().Before(deadline); {
		event(w.read())
	}
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("event %d is %s: %d events %v", i, v, len(got), got)
		}
	}
	if len(got) != n {
		t.Fatalf("%d events, want %d", len(got), n)
	}
	// The session lives on over WebSocket: out of the polling table, one
	// connection, one follower.
	if sioLookup(e, c.sid) != nil {
		t.Fatal("the upgraded session is still in the polling table")
	}
	if status, _ := c.do(http.MethodGet, c.url(), ""); status != http.StatusBadRequest {
		t.Fatalf("poll after the upgrade: %d, want 400", status)
	}
	if p, _ := e.Hub().Publish("up", "", []byte(`"after"`)); p.LocalReceivers != 1 {
		t.Fatalf("publish after the upgrade reached %d, want 1", p.LocalReceivers)
	}
	w.expect(`42/realtime,["update","after"]`)
	if n := sioConns(e)(); n != 1 {
		t.Fatalf("%d socket.io connections, want 1", n)
	}
	w.send("1")
	waitFor(t, "the upgraded session released", func() bool { return sioConns(e)() == 0 })
}

// TestSocketIOPollingProbeFails keeps a session polling when its probe
// WebSocket goes away without upgrading.
func TestSocketIOPollingProbeFails(t *testing.T) {
	e, url := sioEngine(t, RouteSettings{})
	c := openPolling(t, e, url, "/realtime/")
	c.post(`40/realtime,`, `42/realtime,["register",{"sdk_key":"pf"}]`)
	c.expect(`40/realtime,{"sid":"…`, `42/realtime,["update",""]`)
	w := &sioClient{dialWS(t, url+"/realtime/?EIO=4&transport=websocket&sid="+c.sid)}
	w.send("2probe")
	w.expect("3probe")
	w.nc.Close()
	waitFor(t, "the probe forgotten", func() bool {
		s := sioLookup(e, c.sid)
		s.pl.mu.Lock()
		defer s.pl.mu.Unlock()
		return s.pl.probe == nil
	})
	e.Hub().Publish("pf", "", []byte(`"still polling"`))
	c.expect(`42/realtime,["update","still polling"]`)
	c.post("1")
	waitFor(t, "the session released", func() bool { return sioConns(e)() == 0 })
}
