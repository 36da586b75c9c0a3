package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// ErrHandshake is returned when the server does not upgrade or register.
var ErrHandshake = errors.New("websocket handshake failed")

// wsGUID is RFC 6455's accept-key suffix.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// conn is one client connection. last and lat are written by its reader
// goroutine and read by the control loop, hence atomics.
type conn struct {
	nc   net.Conn       // goroutine mode; nil once detached
	fr   frameReader    // goroutine mode
	raw  rawState       // epoll mode, owned by the poll loop
	last atomic.Int64   // newest seq received (or announced by registered)
	lat  []atomic.Int64 // lat[seq]: latency in ns, 0 until received
}

// dial connects from src, upgrades, and waits for `registered`.
func dial(ctx context.Context, u *url.URL, src net.IP, timeout time.Duration, maxSeq int) (*conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dialing from %s: %w", src, err)
	}
	c := &conn{nc: nc, lat: make([]atomic.Int64, maxSeq+1)}
	if err := c.handshake(u, timeout); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *conn) handshake(u *url.URL, timeout time.Duration) error {
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.nc.Write([]byte(req)); err != nil {
		return fmt.Errorf("writing upgrade: %w", err)
	}
	br := bufio.NewReaderSize(c.nc, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("reading upgrade answer: %w", err)
	}
	_ = resp.Body.Close()
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return fmt.Errorf("%w: status %d", ErrHandshake, resp.StatusCode)
	}
	c.fr = frameReader{br: br, buf: make([]byte, 0, 512)}
	for {
		op, p, err := c.fr.next()
		if err != nil {
			return fmt.Errorf("%w: waiting for registered: %w", ErrHandshake, err)
		}
		if op == opClose {
			return fmt.Errorf("%w: closed before registered: %s", ErrHandshake, closeCode(p))
		}
		if op != opText {
			continue
		}
		if t, _ := field(p, "type"); string(t) == "registered" {
			seq, _ := intField(p, "seq")
			c.last.Store(seq)
			break
		}
	}
	return c.nc.SetDeadline(time.Time{})
}

// closeCode renders a close frame's code for reports.
func closeCode(p []byte) string {
	if len(p) < 2 {
		return "no code"
	}
	return fmt.Sprint(int(p[0])<<8 | int(p[1]))
}

// readLoop receives until the connection ends, recording each message's
// latency and seq continuity in st. It answers the close code, if any.
func (c *conn) readLoop(st *stats) string {
	for {
		op, p, err := c.fr.next()
		now := time.Now().UnixNano()
		if err != nil {
			return "read error"
		}
		switch op {
		case opText:
			c.received(p, now, st)
		case opPing:
			if _, err := c.nc.Write(clientFrame(opPong, p)); err != nil {
				return "write error"
			}
		case opClose:
			_, _ = c.nc.Write(clientFrame(opClose, p))
			return closeCode(p)
		}
	}
}

var typeMessage = []byte("message")

// received handles one text message.
func (c *conn) received(p []byte, now int64, st *stats) {
	t, _ := field(p, "type")
	if !bytes.Equal(t, typeMessage) {
		return
	}
	seq, ok := intField(p, "seq")
	if !ok {
		st.unparsed.Add(1)
		return
	}
	last := c.last.Load()
	switch {
	case seq <= last:
		st.duplicates.Add(1)
		return
	case seq > last+1:
		st.gaps.Add(seq - last - 1)
	}
	c.last.Store(seq)
	if seq >= int64(len(c.lat)) {
		return
	}
	if sent, ok := intField(p, "t"); ok {
		c.lat[seq].Store(max(now-sent, 1))
	}
	st.arrived(seq)
}
