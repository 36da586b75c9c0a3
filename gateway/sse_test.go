package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

const sseWait = 5 * time.Second // bounds one expected read

// sseServer serves an Engine route on an httptest server behind a stand-in
// for other Caddy middleware, which sets a header of its own and a
// hop-by-hop one the stream must not carry. With h2 it serves TLS with
// HTTP/2 enabled.
func sseServer(t testing.TB, set RouteSettings, h2 bool) (*Engine, *httptest.Server) {
	t.Helper()
	e, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	route := e.Route("test")
	route.Set(set)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Middleware", "yes")
		w.Header().Set("Keep-Alive", "timeout=5")
		_ = e.ServeHTTP(w, r, route)
	}))
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() { srv.Close(); e.Shutdown() })
	return e, srv
}

// sseConn is a raw HTTP/1.1 SSE client: it sees the stream byte for byte.
type sseConn struct {
	t    testing.TB
	nc   net.Conn
	resp *http.Response
	br   *bufio.Reader
}

func dialSSE(t testing.TB, srv *httptest.Server, query string, header map[string]string) *sseConn {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var req strings.Builder
	fmt.Fprintf(&req, "GET /?%s HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n", query)
	for k, v := range header {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	req.WriteString("\r\n")
	_ = nc.SetDeadline(time.Now().Add(sseWait))
	if _, err := io.WriteString(nc, req.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &sseConn{t: t, nc: nc, resp: resp, br: bufio.NewReader(resp.Body)}
}

// expectBytes reads exactly len(want) bytes and compares them.
func (c *sseConn) expectBytes(want string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(sseWait))
	got := make([]byte, len(want))
	if n, err := io.ReadFull(c.br, got); err != nil {
		c.t.Fatalf("read %q then %v; want %q", got[:n], err, want)
	}
	if string(got) != want {
		c.t.Fatalf("stream got\n%q\nwant\n%q", got, want)
	}
}

// line reads one line, without its "\n".
func (c *sseConn) line() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(sseWait))
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read line: %q, %v", l, err)
	}
	return strings.TrimSuffix(l, "\n")
}

// untilEOF reads the rest of the stream.
func (c *sseConn) untilEOF() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(sseWait))
	b, err := io.ReadAll(c.br)
	if err != nil {
		c.t.Fatalf("read until EOF: %v after %d bytes", err, len(b))
	}
	return string(b)
}

const prelude = ": push_gateway\nretry: 2000\n\n"

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(sseWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestSSEEventFormat(t *testing.T) {
	e, srv := sseServer(t, RouteSettings{}, false)
	c := dialSSE(t, srv, "sdk_key=k1", nil)

	h := c.resp.Header
	if c.resp.StatusCode != http.StatusOK || c.resp.ProtoMajor != 1 {
		t.Fatalf("status %s %s", c.resp.Proto, c.resp.Status)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
		"X-Middleware": "yes", "Keep-Alive": "", "Content-Length": "", "Transfer-Encoding": "",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if !c.resp.Close {
		t.Error("no Connection: close")
	}
	if len(c.resp.TransferEncoding) != 0 || c.resp.ContentLength != -1 {
		t.Errorf("body framing: transfer-encoding %v, length %d; want neither", c.resp.TransferEncoding, c.resp.ContentLength)
	}

	c.expectBytes(prelude)
	pos := c.line() // id: <epoch>:0, the stream's position
	epoch, ok := strings.CutPrefix(pos, "id: ")
	if !ok || !strings.HasSuffix(epoch, ":0") {
		t.Fatalf("first event %q, want an id-only position at seq 0", pos)
	}
	epoch = strings.TrimSuffix(epoch, ":0")
	c.expectBytes("\n")
	if got := e.Stats().Connections.SSE; got != 1 {
		t.Fatalf("sse connections %d, want 1", got)
	}

	pub := []struct{ event, data string }{
		{"", `{"a":1}`},
		{"kill", `"x"`},
		{"update", "{\n\"raw\":true\r\n}"},
	}
	var want strings.Builder
	for i, p := range pub {
		if _, err := e.Hub().Publish("k1", p.event, []byte(p.data)); err != nil {
			t.Fatal(err)
		}
		ev := p.event
		if ev == "" {
			ev = "update"
		}
		fmt.Fprintf(&want, "id: %s:%d\nevent: %s\n", epoch, i+1, ev)
		for l := range strings.Lines(strings.ReplaceAll(p.data, "\r\n", "\n")) {
			fmt.Fprintf(&want, "data: %s\n", strings.TrimSuffix(l, "\n"))
		}
		want.WriteString("\n")
	}
	c.expectBytes(want.String())

	c.nc.Close()
	waitFor(t, "the stream to be counted gone", func() bool { return e.Stats().Connections.SSE == 0 })
}

// publishN publishes n messages {"n":i} to key and returns the epoch.
func publishN(t testing.TB, e *Engine, key string, n int) string {
	t.Helper()
	var epoch string
	for i := 1; i <= n; i++ {
		p, err := e.Hub().Publish(key, "", fmt.Appendf(nil, `{"n":%d}`, i))
		if err != nil {
			t.Fatal(err)
		}
		epoch = p.Epoch
	}
	return epoch
}

func eventBytes(epoch string, seq int) string {
	return fmt.Sprintf("id: %s:%d\nevent: update\ndata: {\"n\":%d}\n\n", epoch, seq, seq)
}

func TestSSEResume(t *testing.T) {
	e, srv := sseServer(t, RouteSettings{}, false)
	tests := []struct {
		name   string
		query  func(epoch string) string
		header func(epoch string) map[string]string
		from   int // first seq replayed
	}{
		{
			name:   "Last-Event-ID",
			query:  func(string) string { return "" },
			header: func(ep string) map[string]string { return map[string]string{"Last-Event-ID": ep + ":1"} },
			from:   2,
		},
		{
			name:   "since and epoch",
			query:  func(ep string) string { return "&since=1&epoch=" + url.QueryEscape(ep) },
			header: func(string) map[string]string { return nil },
			from:   2,
		},
		{
			name:   "since 0 without epoch",
			query:  func(string) string { return "&since=0" },
			header: func(string) map[string]string { return nil },
			from:   1,
		},
		{
			name:   "Last-Event-ID wins over the query",
			query:  func(ep string) string { return "&since=0&epoch=" + url.QueryEscape(ep) },
			header: func(ep string) map[string]string { return map[string]string{"Last-Event-ID": ep + ":2"} },
			from:   3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "resume-" + strings.ReplaceAll(tt.name, " ", "-")
			epoch := publishN(t, e, key, 3)
			c := dialSSE(t, srv, "sdk_key="+key+tt.query(epoch), tt.header(epoch))
			// A resuming stream gets no position event: its replay comes
			// right after the prelude.
			var want strings.Builder
			want.WriteString(prelude)
			for s := tt.from; s <= 3; s++ {
				want.WriteString(eventBytes(epoch, s))
			}
			c.expectBytes(want.String())
			if _, err := e.Hub().Publish(key, "", []byte(`{"n":4}`)); err != nil {
				t.Fatal(err)
			}
			c.expectBytes(eventBytes(epoch, 4))
		})
	}
}

func TestSSEResync(t *testing.T) {
	e, srv := sseServer(t, RouteSettings{}, false)
	tests := []struct {
		name   string
		query  string
		header map[string]string
	}{
		{"other epoch by header", "", map[string]string{"Last-Event-ID": "gone-1:2"}},
		{"malformed Last-Event-ID", "", map[string]string{"Last-Event-ID": "not an id"}},
		{"other epoch by query", "&since=2&epoch=gone-1", nil},
		{"since ahead of the key", "&since=99", nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("resync-%d", i)
			epoch := publishN(t, e, key, 3)
			c := dialSSE(t, srv, "sdk_key="+key+tt.query, tt.header)
			c.expectBytes(prelude + fmt.Sprintf("id: %s:3\nevent: resync\ndata: {\"epoch\":%q,\"seq\":3}\n\n", epoch, epoch))
			if _, err := e.Hub().Publish(key, "", []byte(`{"n":4}`)); err != nil {
				t.Fatal(err)
			}
			c.expectBytes(eventBytes(epoch, 4))
		})
	}
}

func TestSSEHeartbeat(t *testing.T) {
	_, srv := sseServer(t, RouteSettings{Heartbeat: 50 * time.Millisecond}, false)
	c := dialSSE(t, srv, "sdk_key=hb", nil)
	c.expectBytes(prelude)
	if l := c.line(); !strings.HasPrefix(l, "id: ") {
		t.Fatalf("want the position event, got %q", l)
	}
	c.expectBytes("\n")
	for range 3 {
		if l := c.line(); l != ": hb" {
			t.Fatalf("want a heartbeat comment, got %q", l)
		}
	}
}

func TestSSEBadRequest(t *testing.T) {
	e, srv := sseServer(t, RouteSettings{}, false)
	tests := []struct {
		name, query, want string
	}{
		{"no key", "", "sdk_key is required"},
		{"two keys", "sdk_key=a&sdk_key=b", "one key per SSE stream"},
		{"bad key", "sdk_key=a%01b", "invalid sdk_key"},
		{"since not a number", "sdk_key=a&since=x", "since must be"},
		{"negative since", "sdk_key=a&since=-1", "since must be"},
		{"epoch without since", "sdk_key=a&epoch=E", "epoch needs since"},
		{"two cids", "sdk_key=a&cid=1&cid=2", "at most one cid"},
		{"bad cid", "sdk_key=a&cid=%7F", "invalid cid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/?"+tt.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", "text/event-stream")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json" ||
				!strings.Contains(body.Error, tt.want) {
				t.Fatalf("%d %s %q; want 400 JSON with %q", resp.StatusCode, resp.Header.Get("Content-Type"), body.Error, tt.want)
			}
		})
	}
	if n := e.Stats().Connections.SSE; n != 0 {
		t.Fatalf("sse connections %d after refused requests", n)
	}
}

// TestSSESlowConsumer: a client that stops reading is closed once its queue
// is full; the stream ends with a comment saying why, and other streams of
// the key are unaffected.
func TestSSESlowConsumer(t *testing.T) {
	e, srv := sseServer(t, RouteSettings{QueueSize: 4}, false)
	slow := dialSSE(t, srv, "sdk_key=slow", nil)
	fast := dialSSE(t, srv, "sdk_key=slow", nil)
	fast.expectBytes(prelude)
	fast.line()
	fast.expectBytes("\n")
	waitFor(t, "both streams", func() bool { return e.Stats().Connections.SSE == 2 })

	// The fast reader reads in the background and reports each event, so
	// the next message is published only once it has the previous one: a
	// burst would overflow any queue of 4, reader or not.
	events := make(chan struct{}, 1)
	go func() {
		defer close(events)
		for {
			l, err := fast.br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(l, "id: ") {
				events <- struct{}{}
			}
		}
	}()

	data := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	for i := 0; i < 1000 && e.Stats().SlowConsumerCloses == 0; i++ {
		_ = fast.nc.SetReadDeadline(time.Now().Add(sseWait))
		if _, err := e.Hub().Publish("slow", "", data); err != nil {
			t.Fatal(err)
		}
		if _, ok := <-events; !ok {
			t.Fatalf("the reading stream ended after %d messages", i)
		}
	}
	if e.Stats().SlowConsumerCloses == 0 {
		t.Fatal("no slow consumer close after 1000 messages of 64 KiB")
	}
	rest := slow.untilEOF()
	if !strings.HasSuffix(rest, ": slow_consumer\n\n") {
		t.Fatalf("slow stream ends with %q, want the slow_consumer comment", rest[max(0, len(rest)-80):])
	}
	slow.nc.Close()
	waitFor(t, "one stream left", func() bool { return e.Stats().Connections.SSE == 1 })
	fast.nc.Close()
	for range events { // until the reader is gone
	}
}

// TestSSEShutdown: streams end with a comment when the engine shuts down.
func TestSSEShutdown(t *testing.T) {
	e, srv := sseServer(t, RouteSettings{}, false)
	c := dialSSE(t, srv, "sdk_key=bye", nil)
	c.expectBytes(prelude)
	c.line()
	c.expectBytes("\n")
	done := make(chan struct{})
	go func() { e.Shutdown(); close(done) }() // it waits for the client to close
	if rest := c.untilEOF(); rest != ": shutdown\n\n" {
		t.Fatalf("after shutdown got %q", rest)
	}
	c.nc.Close()
	<-done
}

// TestSSEAckByResume: a client with a cid that reconnects past a seq
// acknowledges it, which completes a publish waiting for confirmation.
func TestSSEAckByResume(t *testing.T) {
	e, srv := sseServer(t, RouteSettings{}, false)
	c := dialSSE(t, srv, "sdk_key=ack&cid=client-1", nil)
	c.expectBytes(prelude)
	c.line()
	c.expectBytes("\n")
	p, conf, err := e.Hub().PublishConfirm("ack", "", []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	c.expectBytes(eventBytes(p.Epoch, 1))
	c.nc.Close()
	waitFor(t, "the first stream gone", func() bool { return e.Stats().Connections.SSE == 0 })

	again := dialSSE(t, srv, "sdk_key=ack&cid=client-1", map[string]string{"Last-Event-ID": fmt.Sprintf("%s:%d", p.Epoch, p.Seq)})
	again.expectBytes(prelude)
	if acked, written := conf.Wait(sseWait); acked != 1 || written != 1 {
		t.Fatalf("acked %d of %d, want 1 of 1", acked, written)
	}
}

// TestSSEHTTP2: over HTTP/2 the stream is served by its handler goroutine
// and gets the same bytes, heartbeats included.
func TestSSEHTTP2(t *testing.T) {
	e, srv := sseServer(t, RouteSettings{Heartbeat: 50 * time.Millisecond}, true)
	client := srv.Client()
	client.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	ctx, cancel := context.WithTimeout(context.Background(), 3*sseWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/?sdk_key=h2", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s %s %q", resp.Proto, resp.Status, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	next := func() string {
		t.Helper()
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %q %v", l, err)
		}
		return l
	}
	// Heartbeats may come between events: skip them.
	event := func() string {
		t.Helper()
		var b strings.Builder
		for {
			l := next()
			if l == ": hb\n" && b.Len() == 0 {
				continue
			}
			b.WriteString(l)
			if l == "\n" {
				return b.String()
			}
		}
	}
	if got := event(); got != prelude {
		t.Fatalf("prelude %q", got)
	}
	pos := event()
	if !strings.HasPrefix(pos, "id: ") || !strings.HasSuffix(pos, ":0\n\n") {
		t.Fatalf("position %q", pos)
	}
	p, err := e.Hub().Publish("h2", "", []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := event(); got != eventBytes(p.Epoch, 1) {
		t.Fatalf("event %q", got)
	}
	for seen := 0; seen < 2; {
		if next() == ": hb\n" {
			seen++
		}
	}
	if n := e.Stats().Connections.SSE; n != 1 {
		t.Fatalf("sse connections %d, want 1", n)
	}
	// Shutdown ends the stream with a comment saying so.
	done := make(chan struct{})
	go func() { e.Shutdown(); close(done) }()
	for l := next(); l != ": shutdown\n"; l = next() {
		if l != ": hb\n" {
			t.Fatalf("before the shutdown comment: %q", l)
		}
	}
	if l, err := br.ReadString('\n'); l != "\n" || err != nil {
		t.Fatalf("after the shutdown comment: %q, %v", l, err)
	}
	if l, err := br.ReadString('\n'); err != io.EOF {
		t.Fatalf("after the shutdown comment: %q, %v; want EOF", l, err)
	}
	<-done
	waitFor(t, "the h2 stream gone", func() bool { return e.Stats().Connections.SSE == 0 })
}

// TestSSEStreamQueue covers the goroutine-served stream's follower side:
// a bounded queue, and a slow consumer's backlog dropped on Close.
func TestSSEStreamQueue(t *testing.T) {
	e, _ := sseServer(t, RouteSettings{QueueSize: 2}, false)
	s := &sseStream{e: e, route: e.Route("test"), wake: make(chan struct{}, 1)}
	if !s.Notify(hub.Notice{Kind: hub.NoticeRegistered, Epoch: "E", Seq: 0}) || !s.push([]byte("a"), 2) {
		t.Fatal("refused below the limit")
	}
	if s.push([]byte("b"), 2) {
		t.Fatal("accepted over the limit")
	}
	select {
	case <-s.wake:
	default:
		t.Fatal("push did not wake the handler")
	}
	s.Close(hub.ReasonSlowConsumer)
	if !s.push([]byte("c"), 2) {
		t.Fatal("a closed stream must not report another slow consumer")
	}
	batch, reason := s.take(nil)
	if len(batch) != 0 || reason != hub.ReasonSlowConsumer {
		t.Fatalf("after a slow close: %q, reason %d", batch, reason)
	}
	s.Close(hub.ReasonShutdown)
	if _, reason := s.take(nil); reason != hub.ReasonSlowConsumer {
		t.Fatalf("the first reason must stay, got %d", reason)
	}
}
