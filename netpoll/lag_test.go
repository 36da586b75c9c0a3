package netpoll

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// smallSendBuf makes the server side's socket buffer small, so that a peer
// that stops reading blocks its writes after a few frames.
func smallSendBuf(nc net.Conn) net.Conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return nc
}

// dialSmall dials addr with a small receive window.
func dialSmall(t testing.TB, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// onlyConn waits for the poller's one connection and returns it.
func onlyConn(t testing.TB, p *Poller) *Conn {
	t.Helper()
	eventually(t, "the connection", func() bool { return p.Len() == 1 })
	var c *Conn
	p.Range(func(x *Conn) { c = x })
	return c
}

func TestBacklogsAndWriteLag(t *testing.T) {
	const tick = 5 * time.Millisecond
	p := newPoller(t, Config{Workers: 2, Tick: tick})
	addr := serve(t, p, &lineEcho{}, smallSendBuf)
	peer := dialSmall(t, addr)
	c := onlyConn(t, p)

	if got := p.Backlogs(nil); len(got) != 0 {
		t.Fatalf("backlogs of an idle connection: %+v", got)
	}
	frame := make([]byte, 16<<10)
	const frames = 64 // 1 MiB: far more than both socket buffers hold
	for range frames {
		c.Enqueue(frame, 0)
	}
	// The peer does not read: the head frame waits, its age grows.
	const stall = 100 * time.Millisecond
	var bl []Backlog
	eventually(t, "a backlog older than the stall", func() bool {
		bl = p.Backlogs(bl[:0])
		return len(bl) == 1 && bl[0].Age >= stall
	})
	if bl[0].Conn != c || bl[0].Frames <= 0 || bl[0].Frames > frames {
		t.Fatalf("backlog %+v, want the connection with 1..%d frames", bl[0], frames)
	}
	p.TakeWriteLag() // forget the window so far

	// The peer reads everything: the frames that waited show as write lag.
	if _, err := io.ReadFull(peer, make([]byte, frames*len(frame))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an empty queue", func() bool { return c.Queued() == 0 })
	if lag := p.TakeWriteLag(); lag < stall-tick {
		t.Fatalf("write lag %v after a stall of %v", lag, stall)
	}
	if lag := p.TakeWriteLag(); lag != 0 {
		t.Fatalf("write lag %v in a window with no writes, want 0", lag)
	}
	if got := p.Backlogs(bl[:0]); len(got) != 0 {
		t.Fatalf("backlogs after the drain: %+v", got)
	}
}

func TestBacklogsRankLargestFirst(t *testing.T) {
	p := newPoller(t, Config{Workers: 2, Tick: 5 * time.Millisecond})
	addr := serve(t, p, &lineEcho{}, smallSendBuf)
	const conns = 3
	for range conns {
		dialSmall(t, addr)
	}
	eventually(t, "the connections", func() bool { return p.Len() == conns })
	var cs []*Conn
	p.Range(func(c *Conn) { cs = append(cs, c) })
	frame := make([]byte, 64<<10)
	// Connection i gets 40*(i+1) frames: far more than the socket takes.
	for i, c := range cs {
		for range 40 * (i + 1) {
			c.Enqueue(frame, 0)
		}
	}
	var bl []Backlog
	eventually(t, "every connection blocked", func() bool {
		bl = p.Backlogs(bl[:0])
		return len(bl) == conns
	})
	for i, b := range bl {
		if want := cs[conns-1-i]; b.Conn != want {
			t.Fatalf("rank %d: %d frames, want the connection given the %d-th most", i, b.Frames, i+1)
		}
	}
	// A closing connection is on its way out: not listed.
	cs[conns-1].CloseWith(nil, true)
	if bl = p.Backlogs(bl[:0]); len(bl) != conns-1 {
		t.Fatalf("%d backlogs after one CloseWith, want %d", len(bl), conns-1)
	}
	clear(bl)
}

// BenchmarkBacklogs scans 10,000 listed connections, one in ten with a
// backlog: the cost of one shedding-monitor tick.
func BenchmarkBacklogs(b *testing.B) {
	p := newPoller(b, Config{Workers: 1})
	frame := []byte("x")
	for i := range 10000 {
		c := &Conn{p: p, fd: int32(i)} // a made-up descriptor, never used: Backlogs reads only the queue
		p.list(c)
		if i%10 == 0 {
			c.pushLocked(frame, 0)
		}
	}
	b.Cleanup(func() {
		p.connsMu.Lock()
		clear(p.conns) // Close would release descriptors these do not have
		p.count.Store(0)
		p.connsMu.Unlock()
	})
	var bl []Backlog
	b.ReportAllocs()
	for b.Loop() {
		bl = p.Backlogs(bl[:0])
		clear(bl)
	}
	if len(bl) != 1000 {
		b.Fatalf("%d backlogs, want 1000", len(bl))
	}
}
