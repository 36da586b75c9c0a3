package netpoll

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFanout queues one 100-byte frame to N loopback connections and
// waits until every client has read it: the netpoll half of a broadcast
// (queueing, writev from the workers, the kernel's TCP path).
func BenchmarkFanout(b *testing.B) {
	benchFanout(b, Config{}, func(c *Conn, frame []byte) { c.Enqueue(frame, 0) })
}

// benchFanout runs the fan-out benchmark with cfg, queueing with enqueue.
func benchFanout(b *testing.B, cfg Config, enqueue func(c *Conn, frame []byte)) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			p := newPoller(b, cfg)
			h := &lineEcho{}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			srv := make(chan *Conn, n)
			go func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					c, _ := p.Add(nc, h)
					c.Start(nil)
					srv <- c
				}
			}()
			frame := make([]byte, 100)
			var (
				got  atomic.Int64
				wg   sync.WaitGroup
				done = make(chan struct{}, 1)
			)
			conns := make([]*Conn, 0, n)
			clients := make([]net.Conn, 0, n)
			for range n {
				cl, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				clients = append(clients, cl)
				conns = append(conns, <-srv)
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, len(frame))
					for {
						if _, err := io.ReadFull(cl, buf); err != nil {
							return
						}
						if got.Add(1)%int64(n) == 0 {
							done <- struct{}{}
						}
					}
				}()
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(frame) * n))
			b.ResetTimer()
			for i := range b.N {
				for _, c := range conns {
					enqueue(c, frame)
				}
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					b.Fatalf("round %d: %d deliveries", i, got.Load())
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			for _, cl := range clients {
				cl.Close()
			}
			wg.Wait()
		})
	}
}
