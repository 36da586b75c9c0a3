package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/rlimit"
)

// Source addresses: 127.0.0.2 to 127.0.0.254.
const (
	firstSrc = 2
	numSrc   = 253
)

type options struct {
	url            string
	n              int
	ipOffset       int
	concurrency    int
	retries        int
	dialTimeout    time.Duration
	connectTimeout time.Duration
	maxSeq         int
	mode           string
	read           bool
	proto          string
	namespace      string
	key            string
	keys           int
	first          int
	since          int64
	epoch          string
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "", "ws://host:port/realtime?sdk_key=K")
	flag.IntVar(&o.n, "n", 1000, "connections to hold")
	flag.IntVar(&o.ipOffset, "ip-offset", 0, "first source address index (mod 253)")
	flag.IntVar(&o.concurrency, "concurrency", 64, "handshakes in flight")
	flag.IntVar(&o.retries, "retries", 3, "attempts per connection after the first")
	flag.DurationVar(&o.dialTimeout, "dial-timeout", 10*time.Second, "per-attempt dial and handshake timeout")
	flag.DurationVar(&o.connectTimeout, "connect-timeout", 120*time.Second, "bound on the whole connect phase")
	flag.IntVar(&o.maxSeq, "max-seq", 64, "highest seq whose latencies are recorded")
	flag.BoolVar(&o.read, "read", true, "read the connections; false holds them without reading (slow consumers)")
	flag.StringVar(&o.mode, "mode", "epoll", "how connections are read: epoll (one loop, least CPU) or goroutine (one per connection)")
	flag.StringVar(&o.proto, "proto", protoNative, "protocol: native or socketio (Engine.IO v4 / Socket.IO v5 over WebSocket)")
	flag.StringVar(&o.namespace, "namespace", "/realtime", "Socket.IO namespace")
	flag.StringVar(&o.key, "key", "", "SDK key K (native: replaces the URL's sdk_key; required for socketio)")
	flag.IntVar(&o.keys, "keys", 1, "number of keys: connection j follows K-<(first+j) mod keys> when > 1")
	flag.IntVar(&o.first, "first", 0, "key index of this process's first connection")
	flag.Int64Var(&o.since, "since", -1, "native: resume every connection after this seq (adds since and epoch to the URL); -1: no resume")
	flag.StringVar(&o.epoch, "epoch", "", "native: the epoch -since belongs to")
	flag.Parse()
	log.SetPrefix("loadgen: ")
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	if err := rlimit.RaiseNofile(); err != nil {
		return err
	}
	if o.mode != "epoll" && o.mode != "goroutine" {
		return fmt.Errorf("bad -mode %q: want epoll or goroutine", o.mode)
	}
	u, err := url.Parse(o.url)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bad -url %q", o.url)
	}
	switch {
	case o.proto != protoNative && o.proto != protoSocketIO:
		return fmt.Errorf("bad -proto %q: want native or socketio", o.proto)
	case o.proto == protoSocketIO && o.key == "":
		return ErrNoKey
	case o.proto == protoSocketIO && o.since >= 0:
		return fmt.Errorf("bad -since: resuming is native only")
	case o.keys < 1:
		return fmt.Errorf("bad -keys %d", o.keys)
	}
	st := newStats(o.maxSeq)
	out := json.NewEncoder(os.Stdout)

	start := time.Now()
	conns, failed, firstErr := connectAll(o, u)
	hs := make([]time.Duration, len(conns))
	for i, c := range conns {
		hs[i] = c.handshake
	}
	slices.Sort(hs)
	connected := map[string]any{
		"type": "connected", "connected": len(conns), "failed": failed,
		"seconds":          time.Since(start).Seconds(),
		"handshake_p50_ms": ms(quantile(hs, 0.50)),
		"handshake_p99_ms": ms(quantile(hs, 0.99)),
		"handshake_max_ms": ms(quantile(hs, 1)),
	}
	if firstErr != nil {
		connected["error"] = firstErr.Error()
	}

	var closesMu sync.Mutex
	closes := map[string]int{} // guarded by closesMu
	switch o.mode {
	case "epoll":
		kept := conns[:0]
		for _, c := range conns {
			if err := c.detach(); err != nil {
				failed++
				connected["error"] = err.Error()
				continue
			}
			kept = append(kept, c)
		}
		conns = kept
		connected["connected"], connected["failed"] = len(conns), failed
		st.alive.Store(int64(len(conns)))
		if o.read {
			go func() {
				if err := pollLoop(conns, st, closes, &closesMu); err != nil {
					log.Fatal(err)
				}
			}()
		}
	case "goroutine":
		st.alive.Store(int64(len(conns)))
		for _, c := range conns {
			if !o.read {
				break
			}
			go func() {
				code := c.readLoop(st)
				st.alive.Add(-1)
				closesMu.Lock()
				closes[code]++
				closesMu.Unlock()
			}()
		}
	default:
		return fmt.Errorf("bad -mode %q", o.mode)
	}
	if err := out.Encode(connected); err != nil {
		return fmt.Errorf("writing to runner: %w", err)
	}

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var answer any
		switch {
		case f[0] == "wait" && len(f) == 3:
			seq, err1 := strconv.Atoi(f[1])
			ms, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil || seq < 1 || seq > o.maxSeq {
				answer = map[string]string{"type": "error", "error": "bad wait: " + sc.Text()}
				break
			}
			answer = waitFor(st, conns, int64(seq), time.Duration(ms)*time.Millisecond)
		case f[0] == "summary" && len(f) == 2:
			last, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				answer = map[string]string{"type": "error", "error": "bad summary: " + sc.Text()}
				break
			}
			closesMu.Lock()
			answer = summarize(st, conns, last, closes)
			closesMu.Unlock()
		case f[0] == "closed" && len(f) == 2:
			ms, err := strconv.Atoi(f[1])
			if err != nil {
				answer = map[string]string{"type": "error", "error": "bad closed: " + sc.Text()}
				break
			}
			waitClosed(st, time.Duration(ms)*time.Millisecond)
			closesMu.Lock()
			answer = summarize(st, conns, 0, closes)
			closesMu.Unlock()
		case f[0] == "hist" && len(f) == 2 && f[1] == "reset":
			st.lat.reset()
			st.received.Store(0)
			answer = map[string]any{"type": "hist", "received": 0}
		case f[0] == "hist" && len(f) == 1:
			answer = map[string]any{"type": "hist", "received": st.received.Load(), "lat_us": st.lat.snapshot()}
		case f[0] == "count" && len(f) == 3:
			target, err1 := strconv.ParseInt(f[1], 10, 64)
			ms, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil {
				answer = map[string]string{"type": "error", "error": "bad count: " + sc.Text()}
				break
			}
			answer = map[string]any{"type": "count", "received": waitCount(st, target, time.Duration(ms)*time.Millisecond)}
		case f[0] == "quit":
			return nil
		default:
			answer = map[string]string{"type": "error", "error": "unknown command: " + sc.Text()}
		}
		if err := out.Encode(answer); err != nil {
			return fmt.Errorf("writing to runner: %w", err)
		}
	}
	return nil
}

// connectAll opens o.n connections with bounded concurrency and retries, and
// stops trying when o.connectTimeout is up.
func connectAll(o options, u *url.URL) ([]*conn, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.connectTimeout)
	defer cancel()
	var (
		mu       sync.Mutex
		conns    = make([]*conn, 0, o.n) // guarded by mu
		failed   int                     // guarded by mu
		firstErr error                   // guarded by mu
		wg       sync.WaitGroup
		sem      = make(chan struct{}, max(o.concurrency, 1))
		d        = &dialer{host: u.Host, ns: o.namespace, timeout: o.dialTimeout, maxSeq: o.maxSeq, since: o.since}
	)
	if o.proto == protoSocketIO {
		d.sio = newSIOFrames(o.namespace)
	}
	for i := range o.n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			src := net.IPv4(127, 0, 0, byte(firstSrc+(o.ipOffset+i)%numSrc))
			key := keyOf(o.key, o.keys, o.first, i)
			uri := requestURI(u, o.proto, key, o.since, o.epoch)
			var c *conn
			var err error
			for attempt := 0; attempt <= o.retries && ctx.Err() == nil; attempt++ {
				if attempt > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
					}
				}
				if c, err = d.dial(ctx, uri, key, src); err == nil {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				conns = append(conns, c)
				return
			}
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return conns, failed, firstErr
}

// broadcastAnswer is the answer to `wait`.
type broadcastAnswer struct {
	Type     string  `json:"type"`
	Seq      int64   `json:"seq"`
	Expected int64   `json:"expected"`
	Received int64   `json:"received"`
	LatNS    []int64 `json:"lat_ns"`
}

// waitFor waits until every live connection has received seq or timeout is
// up, then collects the latencies recorded so far.
func waitFor(st *stats, conns []*conn, seq int64, timeout time.Duration) broadcastAnswer {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// The notification may be lost to a race with a closing connection, so
	// the condition is also polled.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for st.count[seq].Load() < st.alive.Load() {
		select {
		case <-st.notify:
		case <-tick.C:
		case <-deadline.C:
			break wait
		}
	}
	a := broadcastAnswer{Type: "broadcast", Seq: seq, Expected: st.alive.Load(), LatNS: make([]int64, 0, len(conns))}
	for _, c := range conns {
		if v := c.lat[seq].Load(); v > 0 {
			a.LatNS = append(a.LatNS, v)
		}
	}
	a.Received = int64(len(a.LatNS))
	return a
}

// waitCount waits until target live messages were received or limit is
// up, and answers the count.
func waitCount(st *stats, target int64, limit time.Duration) int64 {
	deadline := time.Now().Add(limit)
	for st.received.Load() < target && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond) // polling a counter, bounded by limit
	}
	return st.received.Load()
}

// quantile answers the q-quantile of sorted (nearest rank); 0 when empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// waitClosed waits until no connection is alive or limit is up.
func waitClosed(st *stats, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for st.alive.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a counter, bounded by limit
	}
}

// summarize reports seq continuity, closes and this process's own cost.
func summarize(st *stats, conns []*conn, last int64, closes map[string]int) map[string]any {
	var missing int64
	for _, c := range conns {
		if l := c.last.Load(); l < last {
			missing += last - l
		}
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return map[string]any{
		"type":        "summary",
		"connections": len(conns),
		"alive":       st.alive.Load(),
		"closes":      closes,
		"duplicates":  st.duplicates.Load(),
		"resyncs":     st.resyncs.Load(),
		"received":    st.received.Load(),
		"gaps":        st.gaps.Load(),
		"missing":     missing,
		"unparsed":    st.unparsed.Load(),
		"cpu_seconds": tv(ru.Utime) + tv(ru.Stime),
		"max_rss_kb":  ru.Maxrss,
	}
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
