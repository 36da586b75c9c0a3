// Package clientfleet holds what the benchmark commands' client fleets
// share whatever protocol their clients speak: bounded dialling from
// spread source addresses, the record of client failures, and closing
// every connection at the end of a measurement without counting the
// connections that closing ends as failures.
package clientfleet

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DialConcurrency bounds handshakes under way, so that opening thousands
// of clients overflows no server's accept backlog.
const DialConcurrency = 100

// SourceAddr spreads clients over 127.0.0.2–254, so that no source address
// runs out of ephemeral ports: client i dials from the i-th of them, round
// and round.
func SourceAddr(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%253))}
}

// Base is the bookkeeping a fleet embeds. Its zero value is ready.
type Base struct {
	wg       sync.WaitGroup
	failed   atomic.Int64 // clients whose connection ended by error
	firstErr atomic.Value // error: the first client failure
	closing  atomic.Bool
	connsMu  sync.Mutex
	conns    []net.Conn // guarded by connsMu: closed by Close
}

// Go runs client in a goroutine that Close waits for.
func (b *Base) Go(client func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		client()
	}()
}

// Dial connects to addr from source address index i and keeps the
// connection for Close.
func (b *Base) Dial(addr string, i int) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: SourceAddr(i)}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing from %v: %w", d.LocalAddr, err)
	}
	b.connsMu.Lock()
	b.conns = append(b.conns, conn)
	b.connsMu.Unlock()
	return conn, nil
}

// Fail records a client's failure; once the fleet is closing, what ends a
// client is the closing, and nothing is recorded.
func (b *Base) Fail(err error) {
	if b.closing.Load() {
		return
	}
	b.failed.Add(1)
	b.firstErr.CompareAndSwap(nil, err)
}

// Err answers the first client failure, if any, with how many of the
// clients (what names them in the message) failed.
func (b *Base) Err(what string) error {
	if e, ok := b.firstErr.Load().(error); ok {
		return fmt.Errorf("%d %s failed, the first: %w", b.failed.Load(), what, e)
	}
	return nil
}

// Closing reports whether Close has begun.
func (b *Base) Closing() bool { return b.closing.Load() }

// Ended turns the end of a connection into nil when Close ended it.
func (b *Base) Ended(err error) error {
	if b.closing.Load() {
		return nil
	}
	return fmt.Errorf("connection ended: %w", err)
}

// Close ends every client and waits for their goroutines. also, if any,
// run once the fleet counts as closing and before its connections are
// closed: a fleet cancels there what is not a connection of its own.
func (b *Base) Close(also ...func()) {
	b.closing.Store(true)
	for _, f := range also {
		f()
	}
	b.connsMu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.connsMu.Unlock()
	b.wg.Wait()
}

// UintAfter answers the decimal number that follows the first occurrence
// of field (e.g. `"seq":`) in b. The clients read the servers' compact JSON
// this way rather than with encoding/json: they share the machine's cores
// with the server under test, and every microsecond they spend is taken
// from it.
func UintAfter(b []byte, field string) (uint64, bool) {
	i := bytes.Index(b, []byte(field))
	if i < 0 {
		return 0, false
	}
	var n uint64
	digits := 0
	for _, c := range b[i+len(field):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
		digits++
	}
	return n, digits > 0
}
