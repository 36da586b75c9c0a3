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
	"sync/atomic"
	"syscall"
	"time"
)

// ErrHandshake is returned when the server does not upgrade or register.
var ErrHandshake = errors.New("websocket handshake failed")

// wsGUID is RFC 6455's accept-key suffix.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Protocols (-proto).
const (
	protoNative   = "native"
	protoSocketIO = "socketio"
)

// sioClosed is the close code reported for a Socket.IO or Engine.IO
// disconnect.
const sioClosed = "socketio disconnect"

// conn is one client connection. last and lat are written by its reader
// goroutine and read by the control loop, hence atomics.
type conn struct {
	nc        net.Conn       // goroutine mode; nil once detached
	fr        frameReader    // goroutine mode
	raw       rawState       // epoll mode, owned by the poll loop
	sio       *sioFrames     // Socket.IO frames; nil for the native protocol
	ns        string         // Socket.IO namespace
	last      atomic.Int64   // newest seq received (or announced by registered)
	lat       []atomic.Int64 // lat[seq]: latency in ns, 0 until received
	handshake time.Duration  // from dial to registration
}

// dialer holds what every connection of the process shares.
type dialer struct {
	host    string // host:port
	ns      string
	sio     *sioFrames
	timeout time.Duration
	maxSeq  int
	since   int64 // resume from this seq (native); -1: no resume
}

// dial connects from src to uri, upgrades, and waits for the registration
// of key (native: `registered`; Socket.IO: `update ""`).
func (d *dialer) dial(ctx context.Context, uri, key string, src net.IP) (*conn, error) {
	start := time.Now()
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: d.timeout}
	nc, err := nd.DialContext(ctx, "tcp", d.host)
	if err != nil {
		return nil, fmt.Errorf("dialing from %s: %w", src, err)
	}
	c := &conn{nc: nc, lat: make([]atomic.Int64, d.maxSeq+1), sio: d.sio, ns: d.ns}
	if d.since >= 0 {
		c.last.Store(d.since)
	}
	_ = nc.SetDeadline(time.Now().Add(d.timeout))
	err = c.upgrade(d.host, uri)
	if err == nil {
		if c.sio != nil {
			err = c.registerSIO(key)
		} else {
			err = c.registerNative(d.since >= 0)
		}
	}
	if err == nil {
		err = nc.SetDeadline(time.Time{})
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	c.handshake = time.Since(start)
	return c, nil
}

// upgrade runs the WebSocket opening handshake.
func (c *conn) upgrade(host, uri string) error {
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + uri + " HTTP/1.1\r\nHost: " + host +
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
	return nil
}

// registerNative waits for `registered`. Its seq is the key's newest and
// becomes the connection's last seq, unless the connection resumes: then
// the replay after -since follows.
func (c *conn) registerNative(resuming bool) error {
	for {
		op, p, err := c.fr.next()
		if err != nil {
			return fmt.Errorf("%w: waiting for registered: %w", ErrHandshake, err)
		}
		switch op {
		case opClose:
			return fmt.Errorf("%w: closed before registered: %s", ErrHandshake, closeCode(p))
		case opPing:
			if _, err := c.nc.Write(clientFrame(opPong, p)); err != nil {
				return fmt.Errorf("%w: answering ping: %w", ErrHandshake, err)
			}
			continue
		case opText:
		default:
			continue
		}
		if t, _ := field(p, "type"); string(t) == "registered" {
			if !resuming {
				seq, _ := intField(p, "seq")
				c.last.Store(seq)
			}
			return nil
		}
	}
}

// registerSIO runs the Socket.IO session up to the `update ""` that answers
// register: open → namespace connect → register. Servers differ in the
// order of their packets, so any of them is taken whenever it comes.
func (c *conn) registerSIO(key string) error {
	sentRegister := false
	for {
		op, p, err := c.fr.next()
		if err != nil {
			return fmt.Errorf("%w: waiting for the register answer: %w", ErrHandshake, err)
		}
		var reply []byte
		switch op {
		case opClose:
			return fmt.Errorf("%w: closed before registered: %s", ErrHandshake, closeCode(p))
		case opPing:
			reply = clientFrame(opPong, p)
		case opText:
			switch pk := classify(p, c.ns); pk.kind {
			case pktOpen:
				reply = c.sio.join
			case pktPing:
				reply = c.sio.pong
			case pktConnected:
				if !sentRegister {
					sentRegister = true
					reply = registerFrame(c.ns, key)
				}
			case pktRegistered:
				return nil
			case pktClose, pktDisconnect, pktConnectError:
				return fmt.Errorf("%w: server ended the session: %q", ErrHandshake, p)
			}
		}
		if reply != nil {
			if _, err := c.nc.Write(reply); err != nil {
				return fmt.Errorf("%w: writing: %w", ErrHandshake, err)
			}
		}
	}
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
			if code, done := c.text(p, now, st); done {
				return code
			}
		case opPing:
			if err := c.write(clientFrame(opPong, p)); err != nil {
				return "write error"
			}
		case opClose:
			_ = c.write(clientFrame(opClose, p))
			return closeCode(p)
		}
	}
}

// write sends a frame on the Go connection or, once detached, the raw fd.
func (c *conn) write(frame []byte) error {
	if c.nc != nil {
		_, err := c.nc.Write(frame)
		return err
	}
	_, err := syscall.Write(c.raw.fd, frame)
	return err
}

// text handles one text message received at now. It answers done with a
// close code when the server ended the session.
func (c *conn) text(p []byte, now int64, st *stats) (code string, done bool) {
	if c.sio == nil {
		c.native(p, now, st)
		return "", false
	}
	switch pk := classify(p, c.ns); pk.kind {
	case pktPing:
		if err := c.write(c.sio.pong); err != nil {
			return "write error", true
		}
	case pktClose, pktDisconnect, pktConnectError:
		return sioClosed, true
	case pktUpdate:
		if !pk.hasSeq {
			st.unparsed.Add(1)
			return "", false
		}
		c.live(pk.seq, pk.stamp, pk.hasStamp, now, st)
	}
	return "", false
}

var (
	typeMessage = []byte("message")
	typeResync  = []byte("resync")
)

// native handles one native-protocol text message.
func (c *conn) native(p []byte, now int64, st *stats) {
	t, _ := field(p, "type")
	if !bytes.Equal(t, typeMessage) {
		if bytes.Equal(t, typeResync) {
			// The history did not reach back: continue from the seq given.
			st.resyncs.Add(1)
			if seq, ok := intField(p, "seq"); ok {
				c.last.Store(seq)
			}
		}
		return
	}
	seq, ok := intField(p, "seq")
	if !ok {
		st.unparsed.Add(1)
		return
	}
	sent, hasStamp := intField(p, "t")
	c.live(seq, sent, hasStamp, now, st)
}

// live records one live message: the process-wide count and histogram,
// seq continuity, and the per-seq latency up to -max-seq.
func (c *conn) live(seq, sent int64, hasStamp bool, now int64, st *stats) {
	st.received.Add(1)
	lat := max(now-sent, 1)
	if hasStamp {
		st.lat.add(lat)
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
	if seq < 0 || seq >= int64(len(c.lat)) {
		return
	}
	if hasStamp {
		c.lat[seq].Store(lat)
	}
	st.arrived(seq)
}
