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
		if len(c.out) == 0 {
			c.writeRunning = false
			if c.closing && !c.shutWr {
				// The close frame is out: send FIN and wait for the
				// peer's (or the grace period) before releasing.
				c.shutWr = true
				peerGone := c.peerEOF
				c.mu.Unlock()
				_ = unix.Shutdown(c.fd, unix.SHUT_WR)
				if peerGone {
					c.Close()
				}
				return
			}
			c.mu.Unlock()
			return
		}
		n := min(len(c.out), maxIovecs)
		w.iov = w.iov[:0]
		for i := range c.out[:n] {
			w.iov = append(w.iov, c.out[i].frame)
		}
		w.iov[0] = w.iov[0][c.woff:]
		c.inflight = int16(n)
		c.writable = false
		c.mu.Unlock()

		written, err := c.write(w)

		c.mu.Lock()
		c.inflight = 0
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
	i := 0
	for i < len(c.out) && written > 0 {
		left := len(c.out[i].frame) - int(c.woff)
		if written < left {
			c.woff += int32(written)
			break
		}
		written -= left
		c.woff = 0
		i++
	}
	if i == 0 {
		return
	}
	c.p.noteWritten(c, i < len(c.out))
	c.reportLatencyLocked(i) // latency.go
	// Shift rather than reslice, so the backing array keeps its capacity
	// while frames keep coming.
	left := copy(c.out, c.out[i:])
	clear(c.out[left:])
	c.out = c.out[:left]
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
		n, err := unix.Writev(c.fd, w.iov)
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
	sndbuf, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return 16 << 10
	}
	queued, err := unix.IoctlGetInt(c.fd, unix.SIOCOUTQ)
	if err != nil {
		queued = 0
	}
	room := sndbuf/2 - queued
	room -= room / 32 // TLS record headers and tags
	return room
}
