package main

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// rawState is a connection's state in epoll mode, owned by the poll loop.
type rawState struct {
	fd      int
	pending []byte // bytes of an incomplete frame
	frag    []byte // a fragmented message so far
	fragOp  byte   // its opcode; 0 when none is in progress
}

// detach moves c from Go's netpoller to a raw non-blocking fd of its own:
// it duplicates the socket, keeps the bytes the handshake reader had
// buffered, and closes the Go side (close(2) of one of two descriptors does
// not end the TCP connection).
func (c *conn) detach() error {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("detaching: %T is not TCP", c.nc)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return fmt.Errorf("detaching: %w", err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = syscall.Dup(int(s)) }); err != nil {
		return fmt.Errorf("detaching: %w", err)
	}
	if dupErr != nil {
		return fmt.Errorf("duplicating socket: %w", dupErr)
	}
	if n := c.fr.br.Buffered(); n > 0 {
		b, _ := c.fr.br.Peek(n)
		c.raw.pending = append(c.raw.pending, b...)
	}
	_ = c.nc.Close()
	c.nc, c.fr = nil, frameReader{}
	c.raw.fd = fd
	return syscall.SetNonblock(fd, true)
}

// pollLoop reads every connection from one epoll instance until all are
// closed. Level-triggered, one read per ready socket per wakeup: the
// benchmark's messages are small, so one read almost always drains it.
func pollLoop(conns []*conn, st *stats, closes map[string]int, closesMu *sync.Mutex) error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("creating epoll: %w", err)
	}
	defer syscall.Close(epfd)
	byFD := map[int32]*conn{}
	for _, c := range conns {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.raw.fd)}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, c.raw.fd, &ev); err != nil {
			return fmt.Errorf("adding to epoll: %w", err)
		}
		byFD[int32(c.raw.fd)] = c
	}
	closed := func(c *conn, code string) {
		_ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, c.raw.fd, nil)
		_ = syscall.Close(c.raw.fd)
		delete(byFD, int32(c.raw.fd))
		st.alive.Add(-1)
		closesMu.Lock()
		closes[code]++
		closesMu.Unlock()
	}
	// Handshake leftovers first: they may already hold whole frames.
	for _, c := range conns {
		if len(c.raw.pending) > 0 {
			if code, done := c.feed(nil, time.Now().UnixNano(), st); done {
				closed(c, code)
			}
		}
	}
	events := make([]syscall.EpollEvent, 512)
	buf := make([]byte, 64<<10)
	for len(byFD) > 0 {
		n, err := syscall.EpollWait(epfd, events, -1)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting on epoll: %w", err)
		}
		for _, ev := range events[:n] {
			c := byFD[ev.Fd]
			if c == nil {
				continue
			}
			r, err := syscall.Read(c.raw.fd, buf)
			now := time.Now().UnixNano()
			switch {
			case errors.Is(err, syscall.EAGAIN):
				continue
			case err != nil || r == 0:
				closed(c, "read error")
				continue
			}
			if code, done := c.feed(buf[:r], now, st); done {
				closed(c, code)
			}
		}
	}
	return nil
}

// feed parses data (after any pending bytes) into frames and handles them.
// It answers done with a close code when the connection must be closed.
func (c *conn) feed(data []byte, now int64, st *stats) (code string, done bool) {
	s := &c.raw
	b := data
	if len(s.pending) > 0 {
		s.pending = append(s.pending, data...)
		b = s.pending
	}
	for {
		fin, op, p, n, err := parseFrame(b)
		if err != nil {
			return "protocol error", true
		}
		if n == 0 {
			break
		}
		b = b[n:]
		switch {
		case op == opClose:
			_, _ = syscall.Write(s.fd, clientFrame(opClose, p))
			return closeCode(p), true
		case op == opPing:
			_ = c.write(clientFrame(opPong, p))
		case op == opPong:
		case op == opContinuation:
			if s.fragOp == 0 {
				return "protocol error", true
			}
			s.frag = append(s.frag, p...)
			if fin {
				msg, isText := s.frag, s.fragOp == opText
				s.frag, s.fragOp = s.frag[:0], 0
				if isText {
					if code, done := c.text(msg, now, st); done {
						return code, true
					}
				}
			}
		default:
			if s.fragOp != 0 {
				return "protocol error", true
			}
			if !fin {
				s.frag, s.fragOp = append(s.frag[:0], p...), op
			} else if op == opText {
				if code, done := c.text(p, now, st); done {
					return code, true
				}
			}
		}
	}
	// Keep the incomplete tail; append copies it out of the shared buffer
	// (or down to the start of pending, where it may overlap: memmove).
	s.pending = append(s.pending[:0], b...)
	return "", false
}
