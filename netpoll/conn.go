package netpoll

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Handler is what a Conn's owner (a transport session) implements. OnRead is
// never called concurrently with itself, nor OnTimer with itself, but the two
// may run at the same time: a Handler guards the state they share.
type Handler interface {
	// OnRead is called by a worker with bytes received. data is borrowed
	// (valid, and writable in place, until OnRead returns). OnRead returns
	// how many leading bytes it consumed; the rest is kept with the
	// connection and handed back, followed by newer bytes, next time.
	OnRead(c *Conn, data []byte) (consumed int)
	// OnTimer is called by the timing wheel when the timer set with SetTimer
	// fires. It returns the delay to the next call; ≤ 0 stops the timer.
	OnTimer(c *Conn, now time.Time) time.Duration
	// OnClose is called once, when the connection is gone.
	OnClose(c *Conn)
}

// Conn is one connection on the poller.
//
// Every idle connection is one of these, so the layout is packed: fields
// ordered by size, small integers where the range allows, the TLS-only
// references behind one pointer, and everything about queued frames (the
// queue, its head's age and write offset) in an outQueue that only a
// connection with frames queued holds (see outPool). unsafe.Sizeof(Conn{})
// is 96 (a malloc size class); TestConnSize keeps it there.
type Conn struct {
	p   *Poller
	h   Handler
	tls *tlsConn // non-nil: reads and writes go through crypto/tls

	// pending holds the bytes of a half-received message between reads,
	// behind a pointer an idle connection leaves nil (a slice header would
	// cost every connection 16 more bytes, a size class). Only the running
	// read job touches it.
	pending *[]byte

	// out is the write queue, nil while empty. Guarded by mu.
	out *outQueue

	// Timing wheel links, guarded by the wheel's mutex.
	tNext, tPrev *Conn
	tAt          uint64 // absolute tick; 0: not scheduled

	mu sync.Mutex // guards out and the fields below but fd

	// fd is the descriptor: plain, our own dup of the socket (see detach);
	// TLS, the socket under tls.nc. Descriptors are below the open-files
	// limit, far below 2^31; set before Start, then only read.
	fd int32

	readRunning  bool // a read job is queued or running
	readAgain    bool // new bytes arrived while it ran
	writeRunning bool // a write job is queued or running
	writable     bool // EPOLLOUT arrived while the write job ran
	writeBlocked bool // the socket is full: waiting for EPOLLOUT (or, TLS, the wheel)
	closing      bool // CloseWith: flush the last frames, then FIN
	shutWr       bool // FIN sent
	peerEOF      bool // the peer sent FIN while we were closing
	closed       bool // Close: no more work, release when jobs end
	released     bool // fd and handler released
}

// tlsConn is what a TLS connection needs beyond a plain one: a plain
// connection does not pay for it.
type tlsConn struct {
	nc net.Conn  // what the caller handed over, closed last
	tc *tls.Conn // the TLS layer in or under nc
}

// queued is one frame of a connection's write queue.
type queued struct {
	frame []byte
	stamp int64 // publish time, Unix ns; 0: none (latency.go)
}

// outQueue is a connection's write queue and its state, held only while
// frames are queued: frames, shared and immutable, each with its message's
// publish stamp (latency.go). Guarded by the Conn's mu.
type outQueue struct {
	q        []queued // the frames; on arr unless a backlog outgrew it
	headAt   int64    // the poller's coarse clock when q[0] was queued (lag.go)
	woff     int32    // bytes of q[0] already written (a frame is far below 2 GiB)
	inflight int16    // frames of q handed to the running write job (≤ maxIovecs)
	arr      [outChunk]queued
}

// outChunk is the capacity of the queue arrays outPool holds: an idle
// connection holds no queue; a connection with frames queued takes one, and
// gives it back when the queue drains. A longer backlog grows its own array
// by append, dropped with the queue (no backlog-sized array kept while
// idle).
const outChunk = 4

var outPool = sync.Pool{New: func() any { return new(outQueue) }}

// queue is the frames queued; nil when none. The caller holds c.mu.
func (c *Conn) queue() []queued {
	if c.out == nil {
		return nil
	}
	return c.out.q
}

// pushLocked appends one frame to the queue, taking one from the pool
// (stamped now, for lag.go) when there is none. The caller holds c.mu.
func (c *Conn) pushLocked(frame []byte, stamp int64) {
	if c.out == nil {
		c.out = outPool.Get().(*outQueue)
		c.out.q = c.out.arr[:0]
		c.out.headAt = c.p.clock.Load()
	}
	c.out.q = append(c.out.q, queued{frame: frame, stamp: stamp})
}

// dropQueueLocked gives the emptied queue back to the pool. The caller
// holds c.mu, the queue is empty and no write job holds frames of it.
func (c *Conn) dropQueueLocked() {
	o := c.out
	c.out = nil
	if o == nil {
		return
	}
	*o = outQueue{}
	outPool.Put(o)
}

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr {
	if c.tls != nil {
		return c.tls.nc.RemoteAddr()
	}
	return peerAddr(int(c.fd))
}

// IsTLS tells whether the connection is encrypted.
func (c *Conn) IsTLS() bool { return c.tls != nil }

// Start begins watching the connection. buffered holds bytes the caller
// already read from it (an HTTP server's bufio.Reader); they are handed to
// OnRead first. Start also runs one read at once, so bytes already buffered
// inside crypto/tls, which epoll cannot see, are not left waiting.
func (c *Conn) Start(buffered []byte) error {
	if !c.p.list(c) {
		c.Close()
		return ErrClosed
	}
	if len(buffered) > 0 {
		b := append(make([]byte, 0, len(buffered)), buffered...)
		c.pending = &b
	}
	c.mu.Lock()
	c.readRunning = true
	c.mu.Unlock()
	err := c.p.ep.add(c)
	if err != nil {
		c.mu.Lock()
		c.readRunning = false
		c.mu.Unlock()
		c.Close()
		return err
	}
	c.p.push(c, opRead)
	return nil
}

// onEvent runs on the epoll goroutine: it only schedules work.
func (c *Conn) onEvent(ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLPRI) != 0 {
		c.scheduleRead()
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.onWritable()
	}
}

func (c *Conn) scheduleRead() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.readRunning {
		c.readAgain = true
		c.mu.Unlock()
		return
	}
	c.readRunning = true
	c.mu.Unlock()
	c.p.push(c, opRead)
}

func (c *Conn) onWritable() {
	c.mu.Lock()
	switch {
	case c.closed:
	case c.writeRunning:
		c.writable = true
	case c.writeBlocked:
		c.writeBlocked = false
		c.writeRunning = true
		c.mu.Unlock()
		c.p.push(c, opWrite)
		return
	}
	c.mu.Unlock()
}

// Enqueue queues frame for writing and returns at once. frame must not be
// modified afterwards: the same slice is typically queued to thousands of
// connections. With limit > 0, Enqueue refuses (returns false) when limit
// frames are already queued: the caller decides what a slow consumer gets.
// On a closing or closed connection the frame is dropped and Enqueue returns
// true: the connection's owner has already been told why it ends.
func (c *Conn) Enqueue(frame []byte, limit int) bool { return c.EnqueueStamped(frame, limit, 0) }

// EnqueueStamped is Enqueue for a frame of a published message: stamp is
// when the message was published (Unix ns, hub.Message.LiveStamp; 0: none),
// and the write that completes the frame reports its wait (latency.go).
func (c *Conn) EnqueueStamped(frame []byte, limit int, stamp int64) bool {
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return true
	}
	if limit > 0 && len(c.queue()) >= limit {
		c.mu.Unlock()
		return false
	}
	c.pushLocked(frame, stamp)
	c.kickLocked()
	return true
}

// kickLocked schedules a write job if none is queued or running, and unlocks
// c.mu (the push happens outside the connection's lock).
func (c *Conn) kickLocked() {
	if c.writeRunning || c.writeBlocked {
		c.mu.Unlock()
		return
	}
	c.writeRunning = true
	c.mu.Unlock()
	c.p.push(c, opWrite)
}

// Queued is the number of frames waiting to be written.
func (c *Conn) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue())
}

// CloseWith ends the connection gracefully: with dropQueued, frames not yet
// started are discarded (a slow consumer's backlog); then frame (a close
// frame) is written last, a FIN follows, and the connection is released when
// the peer closes too or after the poller's CloseGrace, whichever is first.
// Bytes received meanwhile are discarded. Calls after the first do nothing.
func (c *Conn) CloseWith(frame []byte, dropQueued bool) {
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return
	}
	c.closing = true
	if dropQueued && c.out != nil {
		o := c.out
		keep := int(o.inflight)
		if keep == 0 && o.woff > 0 {
			keep = 1 // a frame half written must be finished
		}
		clear(o.q[keep:])
		o.q = o.q[:keep]
		if keep == 0 {
			c.dropQueueLocked()
		}
	}
	if len(frame) > 0 {
		c.pushLocked(frame, 0)
	}
	c.p.wheel.schedule(c, c.p.cfg.CloseGrace)
	c.kickLocked()
}

// Closing tells whether CloseWith or Close was called.
func (c *Conn) Closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing || c.closed
}

// Close ends the connection at once, discarding anything queued. The
// descriptor is released as soon as no job is using it; OnClose follows.
func (c *Conn) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.out = nil // to the GC, not the pool: a write job may still hold it
	release := c.releasableLocked()
	c.mu.Unlock()
	c.p.wheel.remove(c)
	if release {
		c.release()
	}
}

// releasableLocked reports whether the caller must release the connection:
// it is closed, no job can touch the descriptor any more, and nobody released
// it yet. Releasing only then keeps a worker from reading a descriptor number
// that was closed and already reused by a newer connection.
func (c *Conn) releasableLocked() bool {
	if c.closed && !c.readRunning && !c.writeRunning && !c.released {
		c.released = true
		return true
	}
	return false
}

func (c *Conn) release() {
	_ = c.p.ep.del(int(c.fd))
	c.pending = nil
	listed := c.p.unlist(c) // before the close: the number may be reused at once
	if c.tls != nil {
		_ = c.tls.nc.Close()
	} else {
		_ = unix.Close(int(c.fd))
	}
	if listed {
		c.p.forget()
	}
	c.h.OnClose(c)
}

// SetTimer (re)arms the connection's one timer: OnTimer runs after d.
func (c *Conn) SetTimer(d time.Duration) {
	c.p.wheel.schedule(c, d)
}

func isAgain(err error) bool { return err == unix.EAGAIN || err == unix.EWOULDBLOCK }

// Handler returns the connection's handler.
func (c *Conn) Handler() Handler { return c.h }
