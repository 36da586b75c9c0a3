package netpoll

import (
	"time"

	"golang.org/x/sys/unix"
)

// tlsWriteDeadline is a backstop: TLS writes are sized to the room the socket
// has, so they should never wait; if one does, the connection is dropped
// (crypto/tls cannot resume a timed-out write).
const tlsWriteDeadline = 2 * time.Second

// runWrite is the write job: it writes the queue, many frames per syscall,
// until the queue is empty or the socket is full.
func (c *Conn) runWrite(w *worker) {
	for {
		c.mu.Lock()
		if c.closed {
			c.writeRunning = false
			release := c.releasableLocked()
			c.mu.Unlock()
			if release {
				c.release()
			}
			return
		}
		if len(c.queue()) == 0 {
			c.writeRunning = false
			if c.closing && !c.shutWr {
				// The close frame is out: send FIN and wait for the
				// peer's (or the grace period) before releasing.
				c.shutWr = true
				peerGone := c.peerEOF
				c.mu.Unlock()
				_ = unix.Shutdown(int(c.fd), unix.SHUT_WR)
				if peerGone {
					c.Close()
				}
				return
			}
			c.mu.Unlock()
			return
		}
		o := c.out
		n := min(len(o.q), maxIovecs)
		w.iov = w.iov[:0]
		for i := range o.q[:n] {
			w.iov = append(w.iov, o.q[i].frame)
		}
		w.iov[0] = w.iov[0][o.woff:]
		o.inflight = int16(n)
		c.writable = false
		c.mu.Unlock()

		written, err := c.write(w)

		c.mu.Lock()
		o.inflight = 0 // o, not c.out: Close may have let go of it
		c.advanceLocked(written)
		switch {
		case c.closed:
			// handled at the top of the loop
		case err == errAgain && c.writable:
			c.writable = false // room appeared meanwhile: go on
		case err == errAgain:
			c.writeBlocked = true
			c.writeRunning = false
			tlsWait := c.tls != nil
			c.mu.Unlock()
			if tlsWait {
				c.p.wheel.retry(c)
			}
			return
		case err != nil:
			c.mu.Unlock()
			c.Close()
			continue
		}
		c.mu.Unlock()
	}
	// unreachable
}

// advanceLocked drops written bytes from the head of the queue.
func (c *Conn) advanceLocked(written int) {
	if c.closed {
		return
	}
	o := c.out
	if o == nil {
		return
	}
	i := 0
	for i < len(o.q) && written > 0 {
		left := len(o.q[i].frame) - int(o.woff)
		if written < left {
			o.woff += int32(written)
			break
		}
		written -= left
		o.woff = 0
		i++
	}
	if i == 0 {
		return
	}
	c.p.noteWritten(c, i < len(o.q))
	c.reportLatencyLocked(i) // latency.go
	// Shift rather than reslice, so the backing array keeps its capacity
	// while frames keep coming.
	left := copy(o.q, o.q[i:])
	clear(o.q[left:])
	o.q = o.q[:left]
	if left == 0 {
		// An idle connection holds no queue array: a pooled one goes back
		// (so a steady stream of messages queues without allocating), a
		// backlog-sized one goes.
		c.dropQueueLocked()
	}
}

// write writes w.iov once and reports the bytes written.
func (c *Conn) write(w *worker) (int, error) {
	if c.tls == nil {
		n, err := unix.Writev(int(c.fd), w.iov)
		if n < 0 {
			n = 0
		}
		switch {
		case err == nil:
			return n, nil
		case isAgain(err):
			return n, errAgain
		case err == unix.EINTR:
			return n, nil
		default:
			return n, err
		}
	}
	room := c.sendRoom()
	if room <= 0 {
		return 0, errAgain
	}
	w.scratch = w.scratch[:0]
	for _, b := range w.iov {
		if len(w.scratch)+len(b) > room {
			b = b[:room-len(w.scratch)]
		}
		w.scratch = append(w.scratch, b...)
		if len(w.scratch) >= room {
			break
		}
	}
	_ = c.tls.tc.SetWriteDeadline(time.Now().Add(tlsWriteDeadline))
	n, err := c.tls.tc.Write(w.scratch)
	if cap(w.scratch) > 256<<10 {
		w.scratch = nil
	}
	if err != nil {
		return n, err
	}
	return n, nil
}

// sendRoom estimates how many plaintext bytes a TLS write can hand the kernel
// without waiting: half the send buffer (the kernel doubles SO_SNDBUF for its
// bookkeeping) less what is still queued, less record overhead.
func (c *Conn) sendRoom() int {
	sndbuf, err := unix.GetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return 16 << 10
	}
	queued, err := unix.IoctlGetInt(int(c.fd), unix.SIOCOUTQ)
	if err != nil {
		queued = 0
	}
	room := sndbuf/2 - queued
	room -= room / 32 // TLS record headers and tags
	return room
}
