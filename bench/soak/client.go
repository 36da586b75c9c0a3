package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/clientfleet"
	"github.com/pushgateway/push_gateway/bench/internal/wsframe"
)

// Close codes of the contract the clients tell apart.
const (
	closeSlowConsumer = 4429 // over a limit: the queue of a slow consumer filled
)

// kind is how a client reads.
type kind int

const (
	kindNormal  kind = iota
	kindSlow         // sleeps after every frame, within what its keys need
	kindStaller      // follows every key and stops reading from time to time
)

// Why a session ended, as the client's loop sees it.
var (
	errStopped   = errors.New("soak over")
	errDropped   = errors.New("dropped by the client")
	errRefused   = errors.New("gateway refused the upgrade")
	errViolation = errors.New("gateway broke the contract")
)

// closedError is a close frame the gateway sent.
type closedError struct{ code int }

func (e closedError) Error() string { return fmt.Sprintf("gateway closed with %d", e.code) }

// stallerRcvBuf is a staller's socket receive buffer: small, so that the
// gateway's queue, not the kernel, holds what it does not read, and a
// stall reaches the queue's bound within seconds.
const stallerRcvBuf = 4096

// client is one simulated WebSocket client. Its session goroutine owns
// tracks, started and nextStall; the scheduler closes its connection to
// drop it; the catch-up check reads last and connected.
type client struct {
	id     int
	kind   kind
	keys   []int    // indexes into fleet.keys
	tracks []*track // parallel to keys
	last   []atomic.Uint64
	f      *fleet

	started   bool      // the first registration answered: positions are known
	nextStall time.Time // stallers: when the next stall begins

	mu      sync.Mutex
	conn    net.Conn  // guarded by mu: the session's connection
	dropped bool      // guarded by mu: the scheduler closed conn
	dropAt  time.Time // guarded by mu: the next drop

	connected  atomic.Bool // every key registered in the current session
	sessions   atomic.Int64
	drops      atomic.Int64
	slowCloses atomic.Int64 // 4429 closes read by this client
	serverEnds atomic.Int64 // sessions ended by the gateway or the network otherwise
	refusals   atomic.Int64
	violations atomic.Int64
	firstErr   atomic.Value // string: first violation
}

func newClient(f *fleet, id int, k kind, keys []int) *client {
	c := &client{id: id, kind: k, keys: keys, f: f, last: make([]atomic.Uint64, len(keys))}
	for _, key := range keys {
		c.tracks = append(c.tracks, &track{key: key})
	}
	return c
}

// violation records a broken contract.
func (c *client) violation(err error) {
	c.violations.Add(1)
	c.firstErr.CompareAndSwap(nil, fmt.Sprintf("client %d: %v", c.id, err))
}

// run connects, resumes and reconnects until the fleet stops.
func (c *client) run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := c.session(ctx)
		c.connected.Store(false)
		var ce closedError
		switch {
		case errors.Is(err, errStopped):
			return
		case errors.Is(err, errDropped):
			c.drops.Add(1)
			backoff = 50 * time.Millisecond
			continue // reconnect at once: the storm is part of the load
		case errors.As(err, &ce) && ce.code == closeSlowConsumer:
			c.slowCloses.Add(1)
			continue
		case errors.Is(err, errViolation):
			c.violation(err)
		case errors.Is(err, errRefused):
			c.refusals.Add(1)
		default:
			c.serverEnds.Add(1)
		}
		// Refused or cut: wait a little, with jitter, as a browser would.
		select {
		case <-ctx.Done():
		case <-time.After(backoff + time.Duration(c.id%50)*time.Millisecond):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// dial connects from the client's source address; a staller shrinks its
// receive buffer first.
func (c *client) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: clientfleet.SourceAddr(c.id)}
	if c.kind == kindStaller {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, stallerRcvBuf)
			})
			return errors.Join(err, serr)
		}
	}
	return d.Dial("tcp", c.f.addr)
}

// session is one connection: upgrade, register every key from its
// position, then read until it ends.
func (c *client) session(ctx context.Context) error {
	c.f.dialSem <- struct{}{}
	conn, err := c.dial()
	if err != nil {
		<-c.f.dialSem
		return fmt.Errorf("dialing: %w", err)
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 4096)
	err = c.upgrade(conn, br)
	<-c.f.dialSem
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.conn, c.dropped = conn, false
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.conn = nil
		c.mu.Unlock()
	}()
	if ctx.Err() != nil {
		return errStopped
	}
	c.sessions.Add(1)
	if err := c.register(conn); err != nil {
		return c.cause(ctx, err)
	}
	return c.cause(ctx, c.read(ctx, conn, br))
}

// cause turns the end of a session into errStopped or errDropped when the
// fleet or the scheduler closed the connection.
func (c *client) cause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errStopped
	}
	c.mu.Lock()
	dropped := c.dropped
	c.mu.Unlock()
	if dropped {
		return errDropped
	}
	return err
}

// upgrade sends the WebSocket handshake and reads the answer's head.
func (c *client) upgrade(conn net.Conn, br *bufio.Reader) error {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	_, err := io.WriteString(conn, "GET "+route+" HTTP/1.1\r\nHost: "+c.f.addr+
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+
		base64.StdEncoding.EncodeToString(nonce[:])+"\r\n\r\n")
	if err != nil {
		return fmt.Errorf("writing the upgrade: %w", err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fmt.Errorf("reading the upgrade answer: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%w: %s %q", errRefused, resp.Status, body)
	}
	return nil
}

// register asks for every key: the first session from now on, later ones
// from the position handled.
func (c *client) register(conn net.Conn) error {
	var frames []byte
	for _, t := range c.tracks {
		msg := `{"type":"register","sdk_key":"` + c.f.keys[t.key] + `"`
		if c.started {
			msg += `,"since":` + strconv.FormatUint(t.last, 10) + `,"epoch":"` + t.epoch + `"`
		}
		frames = wsframe.AppendClient(frames, wsframe.OpText, []byte(msg+"}"))
	}
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(frames); err != nil {
		return fmt.Errorf("writing register: %w", err)
	}
	return nil
}

// read handles frames until the connection ends.
func (c *client) read(ctx context.Context, conn net.Conn, br *bufio.Reader) error {
	var buf []byte
	registered := 0
	for {
		op, payload, err := wsframe.Read(br, buf)
		if err != nil {
			if errors.Is(err, wsframe.ErrBadFrame) {
				return fmt.Errorf("%w: %w", errViolation, err)
			}
			return err
		}
		buf = payload[:0]
		switch op {
		case wsframe.OpPing:
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(wsframe.AppendClient(nil, wsframe.OpPong, payload)); err != nil {
				return err
			}
		case wsframe.OpClose:
			code := 0
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			return closedError{code: code}
		case wsframe.OpText:
			done, err := c.text(payload)
			if err != nil {
				return err
			}
			if done {
				if registered++; registered == len(c.tracks) {
					c.started = true
					c.connected.Store(true)
				}
			}
			c.pace(ctx)
		}
	}
}

// text handles one JSON message; it answers whether it was a registered.
func (c *client) text(b []byte) (bool, error) {
	kind := stringAfter(b, `"type":"`)
	key := stringAfter(b, `"sdk_key":"`)
	var t *track
	var slot int
	if idx, ok := c.f.keyIndex[string(key)]; ok {
		for i, tr := range c.tracks {
			if tr.key == idx {
				t, slot = tr, i
			}
		}
	}
	if string(kind) == "error" {
		// The contract sends an error before closing for the client's
		// fault; a slow consumer's is the staller's expected end.
		if string(stringAfter(b, `"code":"`)) == "slow_consumer" {
			return false, closedError{code: closeSlowConsumer}
		}
		return false, fmt.Errorf("%w: %s", errViolation, b)
	}
	if t == nil {
		return false, fmt.Errorf("%w: a message for a key not followed: %.200s", errViolation, b)
	}
	seq, ok := clientfleet.UintAfter(b, `"seq":`)
	if !ok {
		return false, fmt.Errorf("%w: no seq in %.200s", errViolation, b)
	}
	eb := stringAfter(b, `"epoch":"`)
	epoch := t.epoch
	if string(eb) != epoch {
		epoch = string(eb)
	}
	switch string(kind) {
	case "registered":
		t.registered(epoch, seq, !c.started)
		c.last[slot].Store(t.last)
		return true, nil
	case "message":
		before := t.epochBad
		t.message(epoch, seq)
		if t.epochBad != before {
			c.violation(fmt.Errorf("key %s: epoch %s without a resync", key, eb))
		}
	case "resync":
		t.resync(epoch, seq, c.f.history)
	}
	c.last[slot].Store(t.last)
	return false, nil
}

// pace slows slow readers and stalls stallers while the load runs.
func (c *client) pace(ctx context.Context) {
	switch c.kind {
	case kindSlow:
		time.Sleep(c.f.o.slowDelay) // the point: a reader slower than the network
	case kindStaller:
		now := time.Now()
		if !c.f.load.Load() {
			return
		}
		if c.nextStall.IsZero() {
			c.nextStall = now.Add(c.f.jitter(c.f.o.stallEvery))
			return
		}
		if now.Before(c.nextStall) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.f.o.stall): // the point: a reader that stops
		}
		c.nextStall = time.Now().Add(c.f.jitter(c.f.o.stallEvery))
	}
}

// stringAfter answers the bytes between field (which ends with a quote)
// and the next quote; nil without field.
func stringAfter(b []byte, field string) []byte {
	i := bytes.Index(b, []byte(field))
	if i < 0 {
		return nil
	}
	rest := b[i+len(field):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// drop closes the client's connection if the drop time has come.
func (c *client) dropIfDue(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropAt.IsZero() {
		c.dropAt = now.Add(c.f.jitter(c.f.o.dropEvery))
		return
	}
	if now.Before(c.dropAt) || c.conn == nil {
		return
	}
	c.dropped = true
	c.conn.Close()
	c.dropAt = now.Add(c.f.jitter(c.f.o.dropEvery))
}

// closeConn closes the current connection, for the fleet's stop.
func (c *client) closeConn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
	}
}
