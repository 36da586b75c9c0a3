package netpoll

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoFD is returned by Add for a connection with no file descriptor
// underneath (an in-memory pipe, for instance).
var ErrNoFD = errors.New("netpoll: connection has no file descriptor")

// rawConn finds the connection that owns the socket under c and its fd. TLS
// and listener wrappers are peeled off through NetConn, as Caddy's listener
// wrappers and crypto/tls both offer it.
func rawConn(c net.Conn) (net.Conn, int, error) {
	for range 8 {
		if sc, ok := c.(syscall.Conn); ok {
			rc, err := sc.SyscallConn()
			if err != nil {
				return nil, -1, fmt.Errorf("getting raw connection: %w", err)
			}
			fd := -1
			if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
				return nil, -1, fmt.Errorf("reading descriptor: %w", err)
			}
			return c, fd, nil
		}
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = nc.NetConn()
	}
	return nil, -1, ErrNoFD
}

// detach takes a plain connection's socket away from Go's runtime: it dups
// the descriptor and closes the original. The runtime's poll descriptor,
// its deadline timers and its own epoll registration go with it, so an idle
// connection costs less memory, and a packet wakes only this poller instead
// of the runtime's netpoller too. The dup shares the open file description,
// so the socket stays non-blocking.
func detach(raw net.Conn, nc net.Conn) (int, error) {
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return -1, ErrNoFD
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("getting raw connection: %w", err)
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(f uintptr) { fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, fmt.Errorf("reading descriptor: %w", err)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("duplicating descriptor: %w", dupErr)
	}
	_ = nc.Close()
	return fd, nil
}

// peerAddr reads a detached socket's peer address.
func peerAddr(fd int) net.Addr {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return &net.TCPAddr{}
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return &net.TCPAddr{}
}

// tlsOf returns the *tls.Conn that c is or wraps, if any.
func tlsOf(c net.Conn) *tls.Conn {
	for range 8 {
		if t, ok := c.(*tls.Conn); ok {
			return t
		}
		if _, ok := c.(syscall.Conn); ok {
			return nil
		}
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = nc.NetConn()
	}
	return nil
}
