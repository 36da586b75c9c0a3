package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ssePrelude is what every stream starts with.
const ssePrelude = ": push_gateway\nretry: 2000\n\n"

// sseEvent is one event of a stream. An id-only event (the position a fresh
// stream starts at) has only ID.
type sseEvent struct {
	ID, Event, Data string
}

// sseLine is one line read by an sseClient's reader, or the end of the
// stream.
type sseLine struct {
	text string
	err  error
}

// sseClient is an SSE client on plain net/http: a reader goroutine splits
// the body into lines, so reads can time out.
type sseClient struct {
	resp   *http.Response
	cancel context.CancelFunc
	lines  chan sseLine
}

// sseHTTP1 talks HTTP/1.1 only, over TLS too (no ALPN h2).
var sseHTTP1 = &http.Client{Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
}}

// sseHTTP2 negotiates HTTP/2 with a TLS site.
var sseHTTP2 = &http.Client{Transport: &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
	ForceAttemptHTTP2: true,
}}

// trySSE opens a stream; a status other than 200 is returned with the body.
func trySSE(client *http.Client, rawURL string, header map[string]string) (*sseClient, int, []byte, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		cancel()
		return nil, 0, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, body, nil
	}
	c := &sseClient{resp: resp, cancel: cancel, lines: make(chan sseLine, 64)}
	go func() {
		br := bufio.NewReader(resp.Body)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				c.lines <- sseLine{err: err}
				close(c.lines)
				return
			}
			c.lines <- sseLine{text: strings.TrimSuffix(l, "\n")}
		}
	}()
	return c, resp.StatusCode, nil, nil
}

func openSSE(t testing.TB, client *http.Client, rawURL string, header map[string]string) *sseClient {
	t.Helper()
	c, status, body, err := trySSE(client, rawURL, header)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	if c == nil {
		t.Fatalf("GET %s: %d %s", rawURL, status, body)
	}
	t.Cleanup(c.Close)
	// Every stream starts with the prelude: a comment and the retry delay.
	if l := c.line(t); l != ": push_gateway" {
		t.Fatalf("first line %q", l)
	}
	if l := c.line(t); l != "retry: 2000" {
		t.Fatalf("second line %q", l)
	}
	if l := c.line(t); l != "" {
		t.Fatalf("third line %q", l)
	}
	return c
}

func (c *sseClient) Close() {
	c.cancel()
	c.resp.Body.Close()
}

func (c *sseClient) line(t testing.TB) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok || l.err != nil {
			t.Fatalf("stream ended: %v", l.err)
		}
		return l.text
	case <-time.After(msgTimeout):
		t.Fatalf("no line within %v", msgTimeout)
	}
	return ""
}

// event reads the next event, skipping comments.
func (c *sseClient) event(t testing.TB) sseEvent {
	t.Helper()
	var ev sseEvent
	var data []string
	started := false
	for {
		l := c.line(t)
		switch {
		case l == "":
			if started {
				ev.Data = strings.Join(data, "\n")
				return ev
			}
		case strings.HasPrefix(l, ":"):
		case strings.HasPrefix(l, "id: "):
			ev.ID, started = l[4:], true
		case strings.HasPrefix(l, "event: "):
			ev.Event, started = l[7:], true
		case strings.HasPrefix(l, "data: "):
			data, started = append(data, l[6:]), true
		default:
			t.Fatalf("unexpected line %q", l)
		}
	}
}

// expectEvent reads the next event and checks it is seq of epoch with data.
func (c *sseClient) expectEvent(t testing.TB, epoch string, seq uint64, data string) {
	t.Helper()
	want := sseEvent{ID: fmt.Sprintf("%s:%d", epoch, seq), Event: "update", Data: data}
	if ev := c.event(t); ev != want {
		t.Fatalf("event %+v, want %+v", ev, want)
	}
}

func sseURL(base, key, extra string) string {
	return base + route + "?sdk_key=" + key + extra
}

func TestSSE(t *testing.T) {
	n := startCaddy(t, caddyfile(nil, []string{"heartbeat 200ms"}))

	t.Run("publish reaches the stream", func(t *testing.T) {
		key := testKey(t, "k")
		c := openSSE(t, sseHTTP1, sseURL(n.HTTP, key, ""), nil)
		pos := c.event(t)
		if pos.Event != "" || pos.Data != "" || !strings.HasSuffix(pos.ID, ":0") {
			t.Fatalf("first event %+v, want the position <epoch>:0", pos)
		}
		p := n.PublishOK(t, key, "", `{"on":true}`)
		c.expectEvent(t, p.Epoch, 1, `{"on":true}`)
		if pos.ID != p.Epoch+":0" {
			t.Fatalf("position %q, publish epoch %q", pos.ID, p.Epoch)
		}
		p = n.PublishOK(t, key, "kill", `"now"`)
		if ev := c.event(t); ev != (sseEvent{ID: p.Epoch + ":2", Event: "kill", Data: `"now"`}) {
			t.Fatalf("event %+v", ev)
		}
	})

	t.Run("resume via Last-Event-ID gets exactly the missed", func(t *testing.T) {
		key := testKey(t, "k")
		c := openSSE(t, sseHTTP1, sseURL(n.HTTP, key, ""), nil)
		c.event(t) // position
		p := n.PublishOK(t, key, "", `1`)
		c.expectEvent(t, p.Epoch, 1, `1`)
		c.Close()
		for i := 2; i <= 4; i++ {
			n.PublishOK(t, key, "", strconv.Itoa(i))
		}
		c = openSSE(t, sseHTTP1, sseURL(n.HTTP, key, ""), map[string]string{"Last-Event-ID": p.Epoch + ":1"})
		for i := 2; i <= 4; i++ {
			c.expectEvent(t, p.Epoch, uint64(i), strconv.Itoa(i))
		}
		// Then live, with nothing in between.
		n.PublishOK(t, key, "", `5`)
		c.expectEvent(t, p.Epoch, 5, `5`)
	})

	t.Run("resync", func(t *testing.T) {
		key := testKey(t, "k")
		p := n.PublishOK(t, key, "", `1`)
		c := openSSE(t, sseHTTP1, sseURL(n.HTTP, key, ""), map[string]string{"Last-Event-ID": "gone-epoch:7"})
		ev := c.event(t)
		var data struct {
			Epoch string `json:"epoch"`
			Seq   uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
			t.Fatalf("resync data %q: %v", ev.Data, err)
		}
		if ev.Event != "resync" || ev.ID != p.Epoch+":1" || data.Epoch != p.Epoch || data.Seq != 1 {
			t.Fatalf("event %+v, want resync to %s:1", ev, p.Epoch)
		}
		n.PublishOK(t, key, "", `2`)
		c.expectEvent(t, p.Epoch, 2, `2`)
	})

	t.Run("heartbeat comment", func(t *testing.T) {
		c := openSSE(t, sseHTTP1, sseURL(n.HTTP, testKey(t, "k"), ""), nil)
		c.event(t) // position
		start := time.Now()
		for beats := 0; beats < 2; {
			if l := c.line(t); l == ": hb" {
				beats++
			} else if l != "" {
				t.Fatalf("idle stream sent %q", l)
			}
		}
		t.Logf("two heartbeats in %v", time.Since(start))
	})

	t.Run("bad requests are 400 JSON", func(t *testing.T) {
		for _, q := range []string{"?sdk_key=a&sdk_key=b", "?sdk_key=a&since=x", "?since=1"} {
			_, status, body, err := trySSE(sseHTTP1, n.HTTP+route+q, nil)
			if err != nil {
				t.Fatal(err)
			}
			var e struct{ Error string }
			if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error == "" {
				t.Fatalf("%s: %d %s, want 400 JSON", q, status, body)
			}
		}
	})

	t.Run("stream is counted", func(t *testing.T) {
		base := n.Stats(t).Connections.SSE
		c := openSSE(t, sseHTTP1, sseURL(n.HTTP, testKey(t, "k"), ""), nil)
		eventually(t, msgTimeout, func() (bool, string) {
			s := n.Stats(t).Connections.SSE
			return s == base+1, fmt.Sprintf("sse %d, base %d", s, base)
		})
		c.Close()
		eventually(t, msgTimeout, func() (bool, string) {
			s := n.Stats(t).Connections.SSE
			return s == base, fmt.Sprintf("sse %d after close, base %d", s, base)
		})
	})
}

// TestSSETLS: on a `tls internal` site, HTTP/2 streams (served by their
// handler goroutine) and HTTP/1.1 streams (hijacked TLS on the poller) both
// get events and heartbeats.
func TestSSETLS(t *testing.T) {
	n := startNode(t, nodeSpec{config: tlsCaddyfile([]string{"heartbeat 200ms"}), adapter: "caddyfile", waitTLS: true})
	base := fmt.Sprintf("https://127.0.0.1:%d", n.HTTPSPort)
	for _, tc := range []struct {
		name   string
		client *http.Client
		proto  int
	}{
		{"h2", sseHTTP2, 2},
		{"http/1.1 over tls", sseHTTP1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(t, "k")
			c := openSSE(t, tc.client, sseURL(base, key, ""), nil)
			if c.resp.ProtoMajor != tc.proto {
				t.Fatalf("stream over %s, want HTTP/%d", c.resp.Proto, tc.proto)
			}
			c.event(t) // position
			p := n.PublishOK(t, key, "", `{"tls":true}`)
			c.expectEvent(t, p.Epoch, 1, `{"tls":true}`)
			for beats := 0; beats < 2; {
				if c.line(t) == ": hb" {
					beats++
				}
			}
			c.Close()
			// Resume over the same protocol.
			n.PublishOK(t, key, "", `2`)
			c = openSSE(t, tc.client, sseURL(base, key, ""), map[string]string{"Last-Event-ID": p.Epoch + ":1"})
			c.expectEvent(t, p.Epoch, 2, `2`)
		})
	}
}

// vmRSS reads the resident set size of pid, in bytes.
func vmRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading status of %d: %v", pid, err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// openRawSSE opens count HTTP/1.1 streams on raw sockets (no goroutine in
// this process per stream), at most 64 at a time, and waits for each one's
// prelude.
func openRawSSE(t testing.TB, addr string, count int, pathFor func(i int) string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, count)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	inParallel(t, count, dialLimit, func(i int) error {
		nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		conns[i] = nc
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		req := "GET " + pathFor(i) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
		if _, err := io.WriteString(nc, req); err != nil {
			return err
		}
		// Read the head and the prelude (the position event may follow).
		br := bufio.NewReaderSize(nc, 512)
		var seen strings.Builder
		for !strings.Contains(seen.String(), ssePrelude) {
			l, err := br.ReadString('\n')
			seen.WriteString(l)
			if err != nil {
				return fmt.Errorf("stream %d: %q: %w", i, seen.String(), err)
			}
		}
		if !strings.HasPrefix(seen.String(), "HTTP/1.1 200 ") {
			return fmt.Errorf("stream %d: %q", i, seen.String())
		}
		_ = nc.SetDeadline(time.Time{})
		return nil
	})
	return conns
}

// TestSSEIdleScale: 1,000 idle HTTP/1.1 streams cost no goroutine each
// (I4). It logs the RSS each idle stream costs, next to an idle WebSocket
// and an idle HTTP/2 stream (which does hold its handler goroutine).
func TestSSEIdleScale(t *testing.T) {
	skipShort(t)
	const count = 1000
	tests := []struct {
		name string
		tls  bool // the node serves `tls internal` (for h2) instead of plain HTTP
		open func(t *testing.T, n *Node, key string)
		// maxGoroutines bounds the goroutine growth for count streams.
		maxGoroutines int
		count         func(s Stats) int64
	}{
		{
			name: "sse",
			open: func(t *testing.T, n *Node, key string) {
				openRawSSE(t, fmt.Sprintf("127.0.0.1:%d", n.Port), count, func(i int) string {
					return fmt.Sprintf("%s?sdk_key=%s-%d", route, key, i%50)
				})
			},
			maxGoroutines: 50,
			count:         func(s Stats) int64 { return s.Connections.SSE },
		},
		{
			name: "websocket",
			open: func(t *testing.T, n *Node, key string) {
				cs := dialMany(t, count, func(i int) string {
					return n.WSURL(fmt.Sprintf("%s?sdk_key=%s-%d", route, key, i%50))
				}, DialOpts{}, true)
				t.Cleanup(func() { closeAll(cs) })
			},
			maxGoroutines: 50,
			count:         func(s Stats) int64 { return s.Connections.WebSocket },
		},
		{
			name: "sse h2",
			tls:  true,
			open: func(t *testing.T, n *Node, key string) {
				base := fmt.Sprintf("https://127.0.0.1:%d", n.HTTPSPort)
				// IdleConnTimeout: a connection whose last stream is still
				// closing when the Cleanup below runs is not idle yet, and
				// would stay open in caddy past the leak check.
				tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true, IdleConnTimeout: time.Second}
				t.Cleanup(tr.CloseIdleConnections)
				client := &http.Client{Transport: tr}
				inParallel(t, count, dialLimit, func(i int) error {
					c, status, body, err := trySSE(client, sseURL(base, fmt.Sprintf("%s-%d", key, i%50), ""), nil)
					if err != nil || c == nil {
						return fmt.Errorf("stream %d: %d %s %v", i, status, body, err)
					}
					t.Cleanup(c.Close)
					if c.resp.ProtoMajor != 2 {
						return fmt.Errorf("stream %d over %s", i, c.resp.Proto)
					}
					return nil
				})
			},
			maxGoroutines: 2 * count, // measured, not a goal: one handler goroutine each
			count:         func(s Stats) int64 { return s.Connections.SSE },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n *Node
			var warmURL string
			if tc.tls {
				n = startTLSNode(t)
				warmURL = fmt.Sprintf("https://127.0.0.1:%d", n.HTTPSPort)
			} else {
				n = startCaddy(t, caddyfile(nil, nil))
				warmURL = n.HTTP
			}
			key := testKey(t, "k")
			// One stream first, so that lazily started pools run before the
			// baseline is read.
			warm := openSSE(t, sseHTTP1, sseURL(warmURL, key+"-warm", ""), nil)
			warm.event(t)
			pid := n.cmd.Process.Pid
			base, baseRSS := n.Stats(t), vmRSS(t, pid)

			tc.open(t, n, key)
			var last Stats
			// Wait for every stream and for the goroutines to settle: a
			// stream is counted as soon as it is hijacked, while the HTTP
			// server's goroutine that served its request is still returning.
			eventually(t, 60*time.Second, func() (bool, string) {
				last = n.Stats(t)
				return tc.count(last) >= tc.count(base)+count && last.Goroutines-base.Goroutines < tc.maxGoroutines,
					fmt.Sprintf("%d connections, base %d; goroutines %d, base %d",
						tc.count(last), tc.count(base), last.Goroutines, base.Goroutines)
			})
			rss := vmRSS(t, pid)
			grew := last.Goroutines - base.Goroutines
			t.Logf("%d idle %s streams: goroutines %d -> %d (%+.2f each), RSS %.1f -> %.1f MiB (%.1f KiB each)",
				count, tc.name, base.Goroutines, last.Goroutines, float64(grew)/count,
				float64(baseRSS)/(1<<20), float64(rss)/(1<<20), float64(rss-baseRSS)/count/1024)
			if grew >= tc.maxGoroutines {
				t.Fatalf("%d idle %s streams added %d goroutines, want < %d", count, tc.name, grew, tc.maxGoroutines)
			}

			// They are alive: one key's followers all get a publish.
			p := n.PublishOK(t, key+"-0", "", `"hello"`)
			if want := count / 50; p.LocalReceivers != want {
				t.Fatalf("local_receivers %d, want %d", p.LocalReceivers, want)
			}
		})
	}
}
