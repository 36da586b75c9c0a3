package netpoll

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// errAgain stands for "nothing more to read now" from either read path.
var errAgain = errors.New("netpoll: would block")

// expired is a deadline in the past: crypto/tls then serves records it
// already buffered and fails at once instead of touching the socket.
var expired = time.Unix(1, 0)

// runRead is the read job. It reads everything available, hands it to the
// handler, and repeats while new bytes were signalled meanwhile.
func (c *Conn) runRead(w *worker) {
	for {
		again := c.readOnce()
		c.mu.Lock()
		if c.closed {
			c.readRunning = false
			release := c.releasableLocked()
			c.mu.Unlock()
			if release {
				c.release()
			}
			return
		}
		if again {
			// This connection had a lot to say: let the others have a turn.
			c.readAgain = false
			c.mu.Unlock()
			c.p.push(c, opRead)
			return
		}
		if c.readAgain {
			c.readAgain = false
			c.mu.Unlock()
			continue
		}
		c.readRunning = false
		c.mu.Unlock()
		return
	}
}

// readOnce drains the socket (up to maxReadAhead bytes) and feeds the
// handler. It reports whether it stopped early with bytes still waiting.
func (c *Conn) readOnce() (more bool) {
	var buf []byte
	pending, pooled := c.pending, (*[]byte)(nil)
	if pending != nil {
		buf = *pending
	} else {
		pooled = readPool.Get().(*[]byte)
		buf = (*pooled)[:0]
	}
	c.pending = nil
	var (
		total int
		eof   bool
		first = true
	)
	for total < maxReadAhead {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), 2*cap(buf)+readChunk)
			copy(grown, buf)
			if pooled != nil {
				readPool.Put(pooled)
				pooled = nil
			}
			buf = grown
		}
		n, err := c.read(buf[len(buf):cap(buf)], first)
		first = false
		buf = buf[:len(buf)+n]
		total += n
		if err == errAgain {
			break
		}
		if err != nil {
			eof = true
			break
		}
	}
	more = total >= maxReadAhead

	consumed := len(buf)
	if len(buf) > 0 && !c.Closing() {
		consumed = c.h.OnRead(c, buf)
	}
	if rest := buf[consumed:]; len(rest) > 0 {
		// Keep only the half-received message's own bytes (I4). A buffer
		// already owned by this connection is compacted in place, so a
		// client trickling a large frame costs no quadratic copying.
		if pooled != nil {
			b := append(make([]byte, 0, len(rest)+readChunk), rest...)
			c.pending = &b
		} else {
			// buf is the connection's own: pending's, or grown from the
			// pool's buffer (then pending is nil and a box is made).
			if pending == nil {
				pending = new([]byte)
			}
			*pending = buf[:copy(buf, rest)]
			c.pending = pending
		}
	}
	if pooled != nil {
		*pooled = buf[:0]
		readPool.Put(pooled)
	}
	if eof {
		c.onPeerEOF()
		return false
	}
	return more
}

// read reads once, without blocking: plain sockets through a raw syscall,
// TLS through crypto/tls under a deadline. first says whether this is the
// first read of a wake-up.
func (c *Conn) read(b []byte, first bool) (int, error) {
	if c.tls == nil {
		n, err := unix.Read(int(c.fd), b)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case isAgain(err):
			return 0, errAgain
		case err == unix.EINTR:
			return 0, nil
		default:
			return 0, err
		}
	}
	// crypto/tls reads ahead of the record it needs, so the kernel's
	// readiness says little: when the socket holds bytes, wait briefly for
	// a whole record; when it holds none, serve only records crypto/tls
	// already buffered.
	deadline := expired
	if avail, err := unix.IoctlGetInt(int(c.fd), unix.TIOCINQ); err == nil && avail > 0 {
		deadline = time.Now().Add(tlsReadWait)
	} else if first && err != nil {
		deadline = time.Now().Add(tlsReadWait)
	}
	_ = c.tls.tc.SetReadDeadline(deadline)
	n, err := c.tls.tc.Read(b)
	if err != nil {
		var ne net.Error
		if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return n, errAgain
		}
		return n, err
	}
	return n, nil
}

// onPeerEOF handles the peer's FIN (or a read error). A connection that is
// still flushing its last frames may finish; any other is closed.
func (c *Conn) onPeerEOF() {
	c.mu.Lock()
	if c.closing && !c.closed && len(c.queue()) > 0 {
		c.peerEOF = true
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.Close()
}
