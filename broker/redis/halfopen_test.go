package redis

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// blackHole is a TCP proxy whose connections can be made to swallow
// everything without closing: a half-open connection, as a network
// partition leaves it. Connections made after Freeze work.
type blackHole struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen []chan struct{} // one per connection, closed by Freeze
	conns  []net.Conn
}

func startBlackHole(tb testing.TB, target string) *blackHole {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &blackHole{ln: ln, target: target}
	go p.accept()
	tb.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *blackHole) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		frozen := make(chan struct{})
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.frozen = append(p.frozen, frozen)
		p.mu.Unlock()
		go pipe(c, u, frozen)
		go pipe(u, c, frozen)
	}
}

// pipe copies src to dst until either closes, dropping everything once
// frozen is closed.
func pipe(dst, src net.Conn, frozen <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-frozen:
			default:
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

// Freeze makes every connection made so far swallow what it is sent.
func (p *blackHole) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.frozen {
		close(f)
	}
	p.frozen = nil
}

// TestHalfOpenPubSub: a pub/sub connection that goes silent (no FIN, no
// RST) is replaced once pings go unanswered, and a sync fills what was
// published meanwhile.
func TestHalfOpenPubSub(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	px := startBlackHole(t, srv.Addr)
	pub, _ := newBroker(t, srv.URL(), 100, 0)
	b, err := New(Options{URL: "redis://" + px.ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	b.Configure(100, 0)
	b.recvTimeout = 1500 * time.Millisecond
	sink := newSink()
	b.Start(sink)
	t.Cleanup(func() { b.Close() })

	const key = "half-open"
	b.Track(key)
	epoch := sink.waitSync(t, key, 1).Epoch
	for i := 1; i <= 5; i++ {
		publish(t, pub, key, fmt.Sprint(i))
	}
	sink.waitUntil(t, "5 applies", func() bool { return len(sink.applies) == 5 })
	px.Freeze()
	for i := 6; i <= 10; i++ {
		publish(t, pub, key, fmt.Sprint(i))
	}
	sink.waitUntil(t, "every seq after the reset", func() bool { return len(sink.seenLocked(key, epoch)) == 10 })
	if got := sink.seen(key, epoch); !slices.Equal(got, seqs(1, 10)) {
		t.Fatalf("seqs %v", got)
	}
	if b.Status().Reconnects == 0 {
		t.Fatal("no reconnect counted")
	}
}
