package netpoll

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"syscall"
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
