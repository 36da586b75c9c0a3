package integration

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers of the hostile-input battery (hostile_test.go): the battery's
// node, case constructors by kind, and raw HTTP for the requests no library
// client would send.

// Battery settings: small, so that oversize and idle cases are cheap.
const (
	hostileMaxMsg     = 4096
	hostileIdle       = 2 * time.Second
	hostileHeartbeat  = time.Second
	hostileReadHeader = 2 * time.Second
)

// hostileCaddyfile is the battery's node: every transport on the test
// route, small limits, and a short read_header timeout so that a slowloris
// handshake costs a bounded time (Caddy's default is one minute).
func hostileCaddyfile() string {
	cf := caddyfile(nil, []string{
		"transports websocket sse poll socketio",
		"max_message_size " + strconv.Itoa(hostileMaxMsg),
		"idle_timeout " + hostileIdle.String(),
		"heartbeat " + hostileHeartbeat.String(),
		"max_keys_per_connection 3",
	})
	// Into the global options, after the harness's own lines.
	return strings.Replace(cf, globalOptions,
		globalOptions+"\tservers {\n\t\ttimeouts {\n\t\t\tread_header "+hostileReadHeader.String()+"\n\t\t}\n\t}\n", 1)
}

// hostileEnv is the state the whole table shares.
type hostileEnv struct {
	n         *Node
	bystander *Client
	byKey     string
	bySeq     uint64
}

// hostileCase is one bad input and the exact answer it must get.
type hostileCase struct {
	name string
	run  func(t testing.TB, h *hostileEnv)
}

// checkAlive proves a case left the node whole: the process runs, the admin
// stats answer, the bystander (another key, another connection) gets a
// message published now, and no connection of the case is left behind.
func (h *hostileEnv) checkAlive(t testing.TB) {
	t.Helper()
	if h.n.Exited() {
		t.Fatal("caddy exited")
	}
	h.bySeq++
	h.n.PublishOK(t, h.byKey, "", `"after"`)
	h.bystander.ExpectMessage(t, h.byKey, h.bySeq)
	eventually(t, 15*time.Second, func() (bool, string) {
		s := h.n.Stats(t)
		return s.Connections.Total == 1 && s.Connections.WebSocket == 1,
			fmt.Sprintf("connections %+v, want only the bystander's websocket", s.Connections)
	})
}

// wsCase dials a native WebSocket with a registered key, sends bad input
// and expects close code; with errCode, an error message with that code
// must come right before the close.
func wsCase(name string, send func(t testing.TB, c *Client), code int, errCode string) hostileCase {
	return hostileCase{name: "ws/" + name, run: func(t testing.TB, h *hostileEnv) {
		c := Dial(t, h.n.WSURL(route))
		c.Register(t, testKey(t, "k"))
		send(t, c)
		expectCloseAfterError(t, c, code, errCode)
	}}
}

// expectCloseAfterError reads to the close frame and checks its code and,
// when errCode is set, the error message before it.
func expectCloseAfterError(t testing.TB, c *Client, code int, errCode string) {
	t.Helper()
	before, got := readUntilClose(t, c, msgTimeout)
	if got != code {
		t.Fatalf("close code %d, want %d (messages before: %s)", got, code, lastRaw(before))
	}
	if errCode == "" {
		return
	}
	if len(before) == 0 {
		t.Fatalf("no error message before the close, want code %q", errCode)
	}
	last := before[len(before)-1]
	if last.Type != "error" || last.Code != errCode || last.Message == "" {
		t.Fatalf("last message before the close %s, want an error with code %q", last.Raw, errCode)
	}
}

// rawFrames sends frames, each made by encodeFrame or by hand, in one write.
func rawFrames(frames ...[]byte) func(testing.TB, *Client) {
	return func(t testing.TB, c *Client) {
		t.Helper()
		if err := c.WriteRaw(slices.Concat(frames...)); err != nil {
			t.Fatal(err)
		}
	}
}

// frame is encodeFrame, masked.
func frame(fin bool, op byte, payload []byte) []byte { return encodeFrame(fin, op, payload, true) }

// withHeaderBits sets bits in the first header byte of f (RSV bits).
func withHeaderBits(f []byte, bits byte) []byte {
	f[0] |= bits
	return f
}

// closePayload is a close frame's payload: code and reason.
func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// sioCase dials Socket.IO over WebSocket on /realtime/, connects the
// /realtime namespace, sends bad input and expects close code.
func sioCase(name string, send func(t testing.TB, c *Client), code int) hostileCase {
	return hostileCase{name: "socketio/" + name, run: func(t testing.TB, h *hostileEnv) {
		c := sioDial(t, h.n, "/realtime/")
		c.Send(t, "40/realtime,")
		if got := sioNext(t, c); !strings.HasPrefix(got, `40/realtime,{"sid":`) {
			t.Fatalf("connect answer %q", got)
		}
		send(t, c)
		expectSIOClose(t, c, code)
	}}
}

// expectSIOClose reads to the close frame, skipping Engine.IO packets.
func expectSIOClose(t testing.TB, c *Client, code int) {
	t.Helper()
	deadline := time.Now().Add(msgTimeout)
	for {
		e, ok := c.Next(time.Until(deadline))
		switch {
		case !ok:
			t.Fatalf("no close within %v", msgTimeout)
		case e.Err != nil:
			t.Fatalf("connection ended without a close frame: %v", e.Err)
		case e.Op == opClose:
			if e.Code != code {
				t.Fatalf("close code %d (%q), want %d", e.Code, e.Reason, code)
			}
			return
		}
	}
}

// sends is a send function writing text messages, in order.
func sends(msgs ...string) func(testing.TB, *Client) {
	return func(t testing.TB, c *Client) {
		t.Helper()
		for _, m := range msgs {
			c.Send(t, m)
		}
	}
}

// rawResponse is what a raw HTTP exchange got back.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// rawHTTP writes req as is to addr (concurrently with reading, so that a
// server answering before the request is whole is still heard) and reads
// one response. A nil response with an error means the server closed
// without answering.
func rawHTTP(t testing.TB, addr string, req []byte, timeout time.Duration) (*rawResponse, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	go func() { _, _ = conn.Write(req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return &rawResponse{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// httpCase sends one raw request to the site and expects status; with
// jsonErr, the body must be the contract's {"error":"…"}.
func httpCase(name, req string, status int, jsonErr bool) hostileCase {
	return hostileCase{name: "http/" + name, run: func(t testing.TB, h *hostileEnv) {
		r, err := rawHTTP(t, fmt.Sprintf("127.0.0.1:%d", h.n.Port), []byte(req), msgTimeout)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if jsonErr {
			expectAPIError(t, r.status, r.body, status)
		} else if r.status != status {
			t.Fatalf("status %d (%s), want %d", r.status, truncate(r.body, 200), status)
		}
	}}
}

// get is a GET request of pathQuery with extra header lines.
func get(pathQuery string, headers ...string) string {
	return request(http.MethodGet, pathQuery, "", headers...)
}

// request is a raw HTTP/1.1 request closing the connection after it.
func request(method, pathQuery, body string, headers ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + pathQuery + " HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	hasConnection := false
	for _, h := range headers {
		b.WriteString(h + "\r\n")
		hasConnection = hasConnection || strings.HasPrefix(strings.ToLower(h), "connection:")
	}
	if !hasConnection {
		b.WriteString("Connection: close\r\n")
	}
	if body != "" || method == http.MethodPost || method == http.MethodPut {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

// upgradeHeaders are a WebSocket handshake's header lines.
var upgradeHeaders = []string{
	"Upgrade: websocket", "Connection: Upgrade",
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
}

// wsUpgrade is a WebSocket handshake request for pathQuery, with extra
// header lines.
func wsUpgrade(pathQuery string, extra ...string) string {
	return get(pathQuery, append(slices.Clone(upgradeHeaders), extra...)...)
}

// adminCase sends one request to the admin endpoint and expects status with
// the contract's JSON error.
func adminCase(name, method, path, body string, status int) hostileCase {
	return hostileCase{name: "admin/" + name, run: func(t testing.TB, h *hostileEnv) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		before := h.n.Stats(t).Published
		got, b := h.n.AdminDo(t, method, path, "application/json", rd)
		expectAPIError(t, got, b, status)
		if after := h.n.Stats(t).Published; after != before {
			t.Fatalf("a refused request changed published from %d to %d", before, after)
		}
	}}
}

// errServerClosed is what a read sees once the server closed the socket.
var errServerClosed = errors.New("server closed the connection")

// readClosed waits up to timeout for conn to be closed by the server and
// returns what it read meanwhile.
func readClosed(conn net.Conn, timeout time.Duration) ([]byte, error) {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	var got bytes.Buffer
	_, err := io.Copy(&got, conn)
	if err == nil || errors.Is(err, syscall.ECONNRESET) {
		return got.Bytes(), errServerClosed
	}
	return got.Bytes(), err
}
