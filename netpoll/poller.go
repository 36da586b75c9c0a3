package netpoll

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Add once the Poller is closed.
var ErrClosed = errors.New("netpoll: poller closed")

// Config sizes a Poller. Zero values take the defaults.
type Config struct {
	// Workers is the number of worker goroutines that read, run handlers and
	// write. Default: 4 × GOMAXPROCS, at least 4: workers are never parked
	// on one client for long, so a few per core keep every core busy.
	Workers int
	// Tick is the timing wheel's resolution. Default 50ms.
	Tick time.Duration
	// CloseGrace bounds how long a closing connection may take to flush its
	// last frames and see the peer's FIN before it is cut. Default 3s.
	CloseGrace time.Duration
	// OnError, when set, is told about unexpected errors (epoll failures).
	OnError func(error)
	// OnLatency, when set, is told, per write that completes stamped frames
	// (EnqueueStamped), how long the oldest of them waited since its stamp.
	// A worker calls it holding the connection's lock: it must be quick and
	// must not call back into the Poller or the Conn (latency.go).
	OnLatency func(time.Duration)
}

const (
	wheelSlots   = 1024
	readChunk    = 4 << 10 // pooled read buffer size
	maxReadAhead = 1 << 20 // bytes a worker reads from one conn per turn before yielding
	maxIovecs    = 512     // frames per writev
	tlsReadWait  = time.Millisecond
)

// Poller is an epoll instance with its worker pool and timing wheel.
type Poller struct {
	cfg   Config
	ep    *epoll
	wheel *wheel

	// jobs is the run queue of the workers; mu guards it and closed.
	mu     sync.Mutex
	cond   *sync.Cond
	jobs   []job
	head   int
	closed bool

	// conns are the listed connections, indexed by descriptor (dense, and
	// below the open-files limit): 8 bytes a connection, where a map cost
	// about 30. A slot is cleared before its descriptor is closed, so a
	// reused number never finds a stale Conn. Guarded by connsMu.
	connsMu sync.RWMutex
	conns   []*Conn
	empty   []chan struct{} // closed when no connection is listed, guarded by connsMu

	count   atomic.Int64
	workers sync.WaitGroup

	// clock is a coarse time (Unix nanos) the wheel advances every tick:
	// stamping queued frames with it costs an atomic load, not a clock
	// read per delivery. writeLag is the longest enqueue-to-write wait
	// since TakeWriteLag last ran (lag.go).
	clock    atomic.Int64
	writeLag atomic.Int64
}

type op uint8

const (
	opRead op = iota + 1
	opWrite
)

type job struct {
	c  *Conn
	op op
}

var readPool = sync.Pool{New: func() any { b := make([]byte, 0, readChunk); return &b }}

// New starts a Poller.
func New(cfg Config) (*Poller, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = max(4, 4*runtime.GOMAXPROCS(0))
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 50 * time.Millisecond
	}
	if cfg.CloseGrace <= 0 {
		cfg.CloseGrace = 3 * time.Second
	}
	if cfg.OnError == nil {
		cfg.OnError = func(error) {}
	}
	ep, err := newEpoll(cfg.OnError)
	if err != nil {
		return nil, fmt.Errorf("creating epoll: %w", err)
	}
	p := &Poller{cfg: cfg, ep: ep}
	p.clock.Store(time.Now().UnixNano())
	p.cond = sync.NewCond(&p.mu)
	p.wheel = newWheel(p, cfg.Tick)
	p.workers.Add(cfg.Workers)
	for range cfg.Workers {
		go p.work()
	}
	return p, nil
}

// Len is the number of live connections.
func (p *Poller) Len() int { return int(p.count.Load()) }

// Range calls fn for every live connection; fn must not call Add.
func (p *Poller) Range(fn func(*Conn)) {
	p.connsMu.RLock()
	list := make([]*Conn, 0, p.count.Load())
	for _, c := range p.conns {
		if c != nil {
			list = append(list, c)
		}
	}
	p.connsMu.RUnlock()
	for _, c := range list {
		fn(c)
	}
}

// Add takes over nc, which must no longer be used by anyone else, and
// returns its Conn. The connection is neither watched nor listed (Range,
// Len) until Start, so the caller can wire its handler to the Conn and queue
// its first messages before any byte of the client is handled and before
// anyone else can reach it.
func (p *Poller) Add(nc net.Conn, h Handler) (*Conn, error) {
	if p.isClosed() {
		return nil, ErrClosed
	}
	raw, fd, err := rawConn(nc)
	if err != nil {
		return nil, err
	}
	c := &Conn{p: p, fd: int32(fd), h: h}
	if tc := tlsOf(nc); tc != nil {
		// crypto/tls reads and writes through the net.Conn: keep it.
		c.tls = &tlsConn{nc: nc, tc: tc}
	} else {
		own, err := detach(raw, nc)
		if err != nil {
			_ = nc.Close()
			return nil, err
		}
		c.fd = int32(own)
	}
	return c, nil
}

// list makes c visible to Range and Len; false once the poller is closed.
func (p *Poller) list(c *Conn) bool {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	if p.isClosed() {
		return false
	}
	if fd := int(c.fd); fd >= len(p.conns) {
		p.conns = append(p.conns, make([]*Conn, fd+1-len(p.conns))...)
	}
	p.conns[c.fd] = c
	p.count.Add(1)
	return true
}

func (p *Poller) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Close stops the poller's goroutines and waits for them. Connections still
// open are closed hard; close them gracefully first (see Conn.CloseWith).
func (p *Poller) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.Range(func(c *Conn) { c.Close() })
	p.wheel.stop()
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
	p.workers.Wait()
	p.ep.close()
}

// unlist takes c out of the table, before its descriptor is closed, and
// reports whether it was listed.
func (p *Poller) unlist(c *Conn) bool {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	if c.fd < 0 || int(c.fd) >= len(p.conns) || p.conns[c.fd] != c {
		return false
	}
	p.conns[c.fd] = nil
	return true
}

// forget counts out a connection unlist took out, once its descriptor is
// closed, and wakes WaitEmpty when it was the last.
func (p *Poller) forget() {
	p.connsMu.Lock()
	if p.count.Add(-1) == 0 {
		for _, ch := range p.empty {
			close(ch)
		}
		p.empty = nil
	}
	p.connsMu.Unlock()
}

// WaitEmpty waits until no connection is left or timeout passes, and
// reports whether none is left.
func (p *Poller) WaitEmpty(timeout time.Duration) bool {
	p.connsMu.Lock()
	if p.count.Load() == 0 {
		p.connsMu.Unlock()
		return true
	}
	ch := make(chan struct{})
	p.empty = append(p.empty, ch)
	p.connsMu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// push queues a job; it never blocks.
func (p *Poller) push(c *Conn, o op) {
	p.mu.Lock()
	if p.head > 0 && p.head == len(p.jobs) {
		p.jobs, p.head = p.jobs[:0], 0
	}
	p.jobs = append(p.jobs, job{c, o})
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *Poller) work() {
	defer p.workers.Done()
	w := &worker{}
	for {
		p.mu.Lock()
		for p.head == len(p.jobs) && !p.closed {
			p.cond.Wait()
		}
		if p.closed && p.head == len(p.jobs) {
			p.mu.Unlock()
			return
		}
		j := p.jobs[p.head]
		p.jobs[p.head] = job{}
		p.head++
		if p.head == len(p.jobs) {
			p.jobs, p.head = p.jobs[:0], 0
		}
		p.mu.Unlock()
		switch j.op {
		case opRead:
			j.c.runRead(w)
		case opWrite:
			j.c.runWrite(w)
		}
	}
}

// worker holds per-worker scratch space, reused across connections.
type worker struct {
	iov     [][]byte
	scratch []byte
}
