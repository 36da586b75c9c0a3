package integration

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// This file is a small RFC 6455 client written for the tests rather than a
// library client: the hostile cases need what libraries refuse to do (unmasked
// frames, invalid UTF-8, a frame dribbled one byte at a time, a reader that
// never reads).

// WebSocket opcodes.
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// Event is what the reader goroutine saw: a data message, a close frame, or
// the end of the connection (Err set).
type Event struct {
	Op     byte
	Data   []byte
	Code   int // close frames; 1005 when the frame had no code
	Reason string
	Err    error
}

func (e Event) String() string {
	switch {
	case e.Err != nil:
		return "end of connection: " + e.Err.Error()
	case e.Op == opClose:
		return fmt.Sprintf("close %d %q", e.Code, e.Reason)
	default:
		return fmt.Sprintf("op %d %q", e.Op, truncate(e.Data, 200))
	}
}

// Client is one test WebSocket connection. A reader goroutine (unless
// NoReader) queues events without bound, answers pings while AutoPong is
// set, and ends with the connection.
type Client struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader

	wmu sync.Mutex // serialises frame writes

	autoPong  atomic.Bool
	sentClose atomic.Bool  // this side sent a close frame
	pings     atomic.Int64 // ping frames received
	pongs     atomic.Int64 // pong frames received
	lastPong  atomic.Value // string: payload of the last pong

	mu     sync.Mutex
	events []Event // guarded by mu
	notify chan struct{}
	reader atomic.Bool // the reader goroutine was started
}

// DialOpts tunes Dial.
type DialOpts struct {
	NoReader   bool        // nobody reads the socket: a stalled consumer
	NoAutoPong bool        // do not answer the gateway's pings
	RecvBuf    int         // SO_RCVBUF set before connect (small window)
	Header     http.Header // extra handshake headers
	Host       string      // Host header (and TLS server name) instead of the URL's
}

// Dial opens a WebSocket to rawURL (ws:// or wss://) and fails the test if
// the handshake does not answer 101.
func Dial(t testing.TB, rawURL string) *Client {
	t.Helper()
	return DialWith(t, rawURL, DialOpts{})
}

// DialWith is Dial with options.
func DialWith(t testing.TB, rawURL string, o DialOpts) *Client {
	t.Helper()
	c, status, err := TryDial(t, rawURL, o)
	if err != nil {
		t.Fatalf("dial %s: status %d: %v", rawURL, status, err)
	}
	return c
}

var errHandshake = errors.New("websocket handshake refused")

// TryDial dials and returns the handshake's HTTP status with any error.
func TryDial(t testing.TB, rawURL string, o DialOpts) (*Client, int, error) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, err
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	if o.RecvBuf > 0 {
		size := o.RecvBuf
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, 0, err
	}
	host := u.Host
	if o.Host != "" {
		host = o.Host
	}
	if u.Scheme == "wss" {
		cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
		if h, _, err := net.SplitHostPort(host); err == nil && net.ParseIP(h) == nil {
			cfg.ServerName = h
		} else if err != nil && net.ParseIP(host) == nil {
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, 0, fmt.Errorf("tls: %w", err)
		}
		_ = tc.SetDeadline(time.Time{})
		conn = tc
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}, Host: host}
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	path := u.RequestURI()
	hs := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n"
	for k, vs := range o.Header {
		for _, v := range vs {
			hs += k + ": " + v + "\r\n"
		}
	}
	hs += "\r\n"
	if _, err := io.WriteString(conn, hs); err != nil {
		conn.Close()
		return nil, 0, err
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("reading handshake answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		return nil, resp.StatusCode, fmt.Errorf("%w: %s %q", errHandshake, resp.Status, body)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptKey(key); got != want {
		conn.Close()
		return nil, resp.StatusCode, fmt.Errorf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	_ = conn.SetDeadline(time.Time{})
	c := &Client{t: t, conn: conn, br: br, notify: make(chan struct{}, 1)}
	c.autoPong.Store(!o.NoAutoPong)
	t.Cleanup(c.Close)
	if !o.NoReader {
		c.StartReader()
	}
	return c, resp.StatusCode, nil
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// Close closes the socket without a close handshake; idempotent.
func (c *Client) Close() { c.conn.Close() }

// Conn is the underlying connection.
func (c *Client) Conn() net.Conn { return c.conn }

// SetAutoPong switches answering the gateway's pings.
func (c *Client) SetAutoPong(on bool) { c.autoPong.Store(on) }

// Pings is the number of ping frames received so far.
func (c *Client) Pings() int64 { return c.pings.Load() }

// LastPong is the payload of the last pong frame received.
func (c *Client) LastPong() string {
	s, _ := c.lastPong.Load().(string)
	return s
}

// Pongs is the number of pong frames received so far.
func (c *Client) Pongs() int64 { return c.pongs.Load() }

func (c *Client) push(e Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// StartReader starts the reader goroutine of a client dialled with
// NoReader; it ends with the connection.
func (c *Client) StartReader() {
	if c.reader.CompareAndSwap(false, true) {
		go c.readLoop()
	}
}

func (c *Client) readLoop() {
	var msg []byte
	var msgOp byte
	for {
		fin, op, payload, err := c.readFrame()
		if err != nil {
			c.push(Event{Err: err})
			return
		}
		switch op {
		case opPing:
			c.pings.Add(1)
			if c.autoPong.Load() {
				_ = c.WriteFrame(true, opPong, payload, true)
			}
		case opPong:
			c.lastPong.Store(string(payload))
			c.pongs.Add(1)
		case opClose:
			e := Event{Op: opClose, Code: 1005}
			if len(payload) >= 2 {
				e.Code = int(binary.BigEndian.Uint16(payload))
				e.Reason = string(payload[2:])
			}
			c.push(e)
			// Answer the close handshake unless this side opened it, then
			// leave: the gateway closes the TCP connection after it.
			if !c.sentClose.Load() {
				_ = c.WriteFrame(true, opClose, payload[:min(2, len(payload))], true)
			}
			return
		case opText, opBinary:
			msgOp = op
			msg = append(msg[:0], payload...)
			if fin {
				c.push(Event{Op: op, Data: append([]byte(nil), msg...)})
			}
		case opCont:
			msg = append(msg, payload...)
			if fin {
				c.push(Event{Op: msgOp, Data: append([]byte(nil), msg...)})
			}
		default:
			c.push(Event{Err: fmt.Errorf("unexpected opcode %#x from the gateway", op)})
			return
		}
	}
}

func (c *Client) readFrame() (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(c.br, h[:]); err != nil {
		return
	}
	fin = h[0]&0x80 != 0
	if h[0]&0x70 != 0 {
		err = fmt.Errorf("gateway set RSV bits %#x", h[0])
		return
	}
	op = h[0] & 0x0F
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(c.br, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(c.br, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if masked {
		err = errors.New("gateway sent a masked frame")
		return
	}
	if n > 16<<20 {
		err = fmt.Errorf("frame of %d bytes", n)
		return
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return
}

// WriteFrame writes one frame; masked as a client must unless a test wants
// the violation.
func (c *Client) WriteFrame(fin bool, op byte, payload []byte, masked bool) error {
	if op == opClose {
		c.sentClose.Store(true)
	}
	return c.WriteRaw(encodeFrame(fin, op, payload, masked))
}

// WriteRaw writes bytes as they are.
func (c *Client) WriteRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

func encodeFrame(fin bool, op byte, payload []byte, masked bool) []byte {
	b := make([]byte, 0, 14+len(payload))
	h0 := op
	if fin {
		h0 |= 0x80
	}
	b = append(b, h0)
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	b = append(b, key[:]...)
	for i, p := range payload {
		b = append(b, p^key[i&3])
	}
	return b
}

// Send writes v as one text frame: a string or []byte as is, anything else
// as JSON.
func (c *Client) Send(t testing.TB, v any) {
	t.Helper()
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	}
	if err := c.WriteFrame(true, opText, b, true); err != nil {
		t.Fatalf("send %q: %v", truncate(b, 100), err)
	}
}

// Next waits up to timeout for the next event.
func (c *Client) Next(timeout time.Duration) (Event, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if len(c.events) > 0 {
			e := c.events[0]
			c.events[0] = Event{}
			c.events = c.events[1:]
			c.mu.Unlock()
			return e, true
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-deadline.C:
			return Event{}, false
		}
	}
}

// ServerMsg is any gateway → client message of the native protocol.
type ServerMsg struct {
	Type    string          `json:"type"`
	SDKKey  string          `json:"sdk_key"`
	Epoch   string          `json:"epoch"`
	Seq     uint64          `json:"seq"`
	Event   string          `json:"event"`
	Data    json.RawMessage `json:"data"`
	TS      int64           `json:"ts"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Raw     []byte          `json:"-"`
}

// ReadMsg waits for the next event and fails unless it is a JSON text
// message.
func (c *Client) ReadMsg(t testing.TB, timeout time.Duration) ServerMsg {
	t.Helper()
	m, err := c.NextMsg(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// NextMsg is ReadMsg for goroutines other than the test's: it returns an
// error instead of failing.
func (c *Client) NextMsg(timeout time.Duration) (ServerMsg, error) {
	e, ok := c.Next(timeout)
	if !ok {
		return ServerMsg{}, fmt.Errorf("no message within %v", timeout)
	}
	if e.Op != opText {
		return ServerMsg{}, fmt.Errorf("want a text message, got %v", e)
	}
	var m ServerMsg
	if err := json.Unmarshal(e.Data, &m); err != nil {
		return ServerMsg{}, fmt.Errorf("message %q is not JSON: %w", truncate(e.Data, 200), err)
	}
	m.Raw = e.Data
	return m, nil
}

// ReadJSON is ReadMsg decoded into a generic map, to check exact field sets.
func (c *Client) ReadJSON(t testing.TB, timeout time.Duration) map[string]any {
	t.Helper()
	m := c.ReadMsg(t, timeout)
	var out map[string]any
	if err := json.Unmarshal(m.Raw, &out); err != nil {
		t.Fatalf("message %q: %v", m.Raw, err)
	}
	return out
}

// ExpectClose reads until a close frame and fails unless its code is code.
// It returns the text messages read before it (e.g. the error message).
func (c *Client) ExpectClose(t testing.TB, code int, timeout time.Duration) []ServerMsg {
	t.Helper()
	before, got := readUntilClose(t, c, timeout)
	if got != code {
		t.Fatalf("close code %d, want %d (messages before: %s)", got, code, lastRaw(before))
	}
	return before
}

// readUntilClose returns the text messages read before the close frame and
// its code; a connection that ends without a close frame fails the test.
func readUntilClose(t testing.TB, c *Client, timeout time.Duration) ([]ServerMsg, int) {
	t.Helper()
	var before []ServerMsg
	deadline := time.Now().Add(timeout)
	for {
		e, ok := c.Next(time.Until(deadline))
		if !ok {
			t.Fatalf("no close frame within %v (%d messages before)", timeout, len(before))
		}
		switch {
		case e.Err != nil:
			t.Fatalf("connection ended without a close frame: %v (%d messages before: %s)", e.Err, len(before), lastRaw(before))
		case e.Op == opClose:
			return before, e.Code
		case e.Op == opText:
			var m ServerMsg
			_ = json.Unmarshal(e.Data, &m)
			m.Raw = e.Data
			before = append(before, m)
		}
	}
}

func lastRaw(ms []ServerMsg) string {
	if len(ms) == 0 {
		return "none"
	}
	return string(truncate(ms[len(ms)-1].Raw, 300))
}

// Register sends register for key and expects its registered answer.
func (c *Client) Register(t testing.TB, key string) ServerMsg {
	t.Helper()
	c.Send(t, map[string]any{"type": "register", "sdk_key": key})
	m := c.ReadMsg(t, msgTimeout)
	if m.Type != "registered" || m.SDKKey != key {
		t.Fatalf("want registered for %s, got %s", key, m.Raw)
	}
	return m
}

// ExpectMessage reads the next message and checks it is message seq of key.
func (c *Client) ExpectMessage(t testing.TB, key string, seq uint64) ServerMsg {
	t.Helper()
	m := c.ReadMsg(t, msgTimeout)
	if m.Type != "message" || m.SDKKey != key || m.Seq != seq {
		t.Fatalf("want message %s seq %d, got %s", key, seq, m.Raw)
	}
	return m
}

// ExpectQuiet fails if a text or close event arrives within d. It is used
// after the last expected message to prove nothing extra was sent, so d is
// short and its expiry is the success path.
func (c *Client) ExpectQuiet(t testing.TB, d time.Duration) {
	t.Helper()
	if e, ok := c.Next(d); ok {
		t.Fatalf("unexpected %v", e)
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
