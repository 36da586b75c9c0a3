package netpoll

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lineEcho is a Handler that echoes every whole line and counts closes.
type lineEcho struct {
	closed atomic.Int32
	timer  func(c *Conn, now time.Time) time.Duration
	lines  atomic.Int64
}

func (h *lineEcho) OnRead(c *Conn, data []byte) int {
	off := 0
	for {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return off
		}
		line := append([]byte(nil), data[off:off+i+1]...)
		h.lines.Add(1)
		if string(line) == "close\n" {
			c.CloseWith([]byte("bye\n"), false)
			return len(data)
		}
		c.Enqueue(line, 0)
		off += i + 1
	}
}

func (h *lineEcho) OnTimer(c *Conn, now time.Time) time.Duration {
	if h.timer != nil {
		return h.timer(c, now)
	}
	return 0
}

func (h *lineEcho) OnClose(*Conn) { h.closed.Add(1) }

func newPoller(t testing.TB, cfg Config) *Poller {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// serve accepts connections on a loopback listener and hands each to p.
func serve(t testing.TB, p *Poller, h Handler, wrap func(net.Conn) net.Conn) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if wrap != nil {
				nc = wrap(nc)
			}
			c, err := p.Add(nc, h)
			if err != nil {
				nc.Close()
				continue
			}
			if err := c.Start(nil); err != nil {
				t.Error(err)
			}
		}
	}()
	return ln.Addr().String()
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestEchoAndGracefulClose(t *testing.T) {
	p := newPoller(t, Config{Workers: 2})
	h := &lineEcho{}
	addr := serve(t, p, h, nil)
	c := dial(t, addr)
	r := bufio.NewReader(c)
	for _, line := range []string{"a\n", "bb\n", "ccc\n"} {
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != line {
			t.Fatalf("echo = %q, %v; want %q", got, err, line)
		}
	}
	io.WriteString(c, "close\n")
	got, err := r.ReadString('\n')
	if err != nil || got != "bye\n" {
		t.Fatalf("last frame = %q, %v", got, err)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF (the poller sent FIN)", err)
	}
	c.Close()
	eventually(t, "OnClose", func() bool { return h.closed.Load() == 1 })
	eventually(t, "release", func() bool { return p.Len() == 0 })
}

func TestSplitMessagesAndBatchedWrites(t *testing.T) {
	p := newPoller(t, Config{Workers: 2})
	h := &lineEcho{}
	addr := serve(t, p, h, nil)
	c := dial(t, addr)
	// One line in three writes, then many lines in one write.
	for _, part := range []string{"hel", "lo ", "world\n"} {
		io.WriteString(c, part)
	}
	var many bytes.Buffer
	for range 1000 {
		many.WriteString("x\n")
	}
	c.Write(many.Bytes())
	r := bufio.NewReader(c)
	if got, _ := r.ReadString('\n'); got != "hello world\n" {
		t.Fatalf("got %q", got)
	}
	for i := range 1000 {
		if got, err := r.ReadString('\n'); got != "x\n" {
			t.Fatalf("line %d = %q, %v", i, got, err)
		}
	}
}

// Slow senders trickle a line one byte at a time while fast clients keep
// their echo: no worker waits for a slow client (I5).
func TestTricklingClientsDoNotStallOthers(t *testing.T) {
	p := newPoller(t, Config{Workers: 2})
	h := &lineEcho{}
	addr := serve(t, p, h, nil)
	const slow = 50
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range slow {
		c := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Write([]byte("z")); err != nil {
					return
				}
				time.Sleep(5 * time.Millisecond) // the client's pace, not synchronisation
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	fast := dial(t, addr)
	r := bufio.NewReader(fast)
	for i := range 200 {
		io.WriteString(fast, "ping\n")
		fast.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := r.ReadString('\n'); got != "ping\n" {
			t.Fatalf("round trip %d = %q, %v", i, got, err)
		}
	}
}

func TestEnqueueLimitAndSlowReader(t *testing.T) {
	p := newPoller(t, Config{Workers: 2})
	h := &lineEcho{}
	var srv atomic.Pointer[Conn]
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		nc.(*net.TCPConn).SetWriteBuffer(4096)
		c, _ := p.Add(nc, h)
		c.Start(nil)
		srv.Store(c)
	}()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.(*net.TCPConn).SetReadBuffer(4096)
	eventually(t, "accept", func() bool { return srv.Load() != nil })
	c := srv.Load()
	frame := bytes.Repeat([]byte("y"), 16<<10)
	refused := false
	for range 10000 {
		if !c.Enqueue(frame, 8) {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("a reader that never reads never filled an 8-frame queue")
	}
	if q := c.Queued(); q > 8 {
		t.Fatalf("queue grew to %d past its limit", q)
	}
	// The backlog is dropped and the last frame still gets through once the
	// client reads again.
	c.CloseWith([]byte("\nlast\n"), true)
	all, _ := io.ReadAll(cl)
	if !bytes.HasSuffix(all, []byte("\nlast\n")) {
		t.Fatalf("stream did not end with the close frame: ...%q", all[max(0, len(all)-20):])
	}
	if len(all)%len(frame) != len("\nlast\n") {
		t.Fatalf("a frame was cut: %d bytes", len(all))
	}
}

func TestTimerFiresOnWheel(t *testing.T) {
	p := newPoller(t, Config{Workers: 2, Tick: 10 * time.Millisecond})
	var fired atomic.Int32
	h := &lineEcho{timer: func(c *Conn, now time.Time) time.Duration {
		if fired.Add(1) < 3 {
			return 20 * time.Millisecond
		}
		c.CloseWith([]byte("timeout\n"), false)
		return 0
	}}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c, _ := p.Add(nc, h)
		c.SetTimer(20 * time.Millisecond)
		c.Start(nil)
	}()
	cl := dial(t, ln.Addr().String())
	got, _ := io.ReadAll(cl)
	if string(got) != "timeout\n" || fired.Load() != 3 {
		t.Fatalf("got %q after %d timer calls", got, fired.Load())
	}
}

// Idle connections cost no goroutine, plain or TLS.
func TestIdleConnectionsHoldNoGoroutines(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			p := newPoller(t, Config{Workers: 4})
			h := &lineEcho{}
			var wrap func(net.Conn) net.Conn
			var clientCfg *tls.Config
			if useTLS {
				srvCfg, cliCfg := tlsConfigs(t)
				clientCfg = cliCfg
				wrap = func(nc net.Conn) net.Conn {
					tc := tls.Server(nc, srvCfg)
					if err := tc.Handshake(); err != nil {
						return nc
					}
					return tc
				}
			}
			addr := serve(t, p, h, wrap)
			before := runtime.NumGoroutine()
			const n = 300
			conns := make([]net.Conn, 0, n)
			for range n {
				var c net.Conn
				var err error
				if useTLS {
					c, err = tls.Dial("tcp", addr, clientCfg)
				} else {
					c, err = net.Dial("tcp", addr)
				}
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			eventually(t, "all added", func() bool { return p.Len() == n })
			// Every connection still works (TLS reads through crypto/tls).
			for i, c := range conns[:20] {
				io.WriteString(c, "hi\n")
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				b := make([]byte, 3)
				if _, err := io.ReadFull(c, b); err != nil || string(b) != "hi\n" {
					t.Fatalf("conn %d: %q %v", i, b, err)
				}
			}
			// Client-side goroutines: TLS clients have none either, so the
			// process total says what the server side costs.
			eventually(t, "handshake goroutines gone", func() bool { return runtime.NumGoroutine()-before < 10 })
		})
	}
}

func tlsConfigs(t testing.TB) (*tls.Config, *tls.Config) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	pool := x509.NewCertPool()
	c, _ := x509.ParseCertificate(der)
	pool.AddCert(c)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}
