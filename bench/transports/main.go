package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/benchcmd"
	"github.com/pushgateway/push_gateway/bench/internal/procstat"
	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// ErrBadFlag is returned for an unusable flag value.
var ErrBadFlag = benchcmd.ErrBadFlag

type options struct {
	n          int
	publishes  int
	warmup     int
	transports []string
	out        string
	gatewayBin string
	deliver    time.Duration
	keep       bool
	profiles   string
}

func main() {
	benchcmd.Main("transports", parseFlags, run)
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("transports", flag.ContinueOnError)
	fs.IntVar(&o.n, "n", 2000, "idle clients per transport (one transport at a time: n sockets on each side)")
	fs.IntVar(&o.publishes, "publishes", 20, "measured publishes per transport")
	fs.IntVar(&o.warmup, "warmup", 2, "unmeasured publishes first")
	tr := fs.String("transports", strings.Join([]string{transportWS, transportWSTLS, transportSSE, transportPoll, transportSSEH2}, ","), "transports to measure, in order")
	fs.StringVar(&o.out, "out", "", "directory for results.json and results.md; empty: stdout only")
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "use this caddy binary instead of building ./cmd/caddy")
	fs.DurationVar(&o.deliver, "deliver", 10*time.Second, "how long one publish may take to reach every client")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (binary, Caddyfile, log)")
	fs.StringVar(&o.profiles, "heap-profiles", "", "directory for caddy's heap profiles before and after each transport's idle clients (a diagnosis run: fetching them moves the figures)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	// n client sockets here and n in caddy (one transport at a time), each
	// well under the 20,000 open files a process may hold on this machine.
	if o.n < 1 || o.n > 6000 {
		return o, fmt.Errorf("%w: -n %d: want 1..6000", ErrBadFlag, o.n)
	}
	if o.publishes < 1 || o.publishes > 1000 || o.warmup < 0 || o.warmup > 100 {
		return o, fmt.Errorf("%w: -publishes in 1..1000, -warmup in 0..100", ErrBadFlag)
	}
	for _, t := range strings.Split(*tr, ",") {
		switch t = strings.TrimSpace(t); t {
		case transportWS, transportWSTLS, transportSSE, transportPoll, transportSSEH2:
			o.transports = append(o.transports, t)
		default:
			return o, fmt.Errorf("%w: -transports %q: want %s, %s, %s, %s or %s", ErrBadFlag, t,
				transportWS, transportWSTLS, transportSSE, transportPoll, transportSSEH2)
		}
	}
	return o, nil
}

func run(o options) error {
	began := time.Now()
	dir, bin, cleanup, err := benchcmd.Setup("pushgw-transports-", o.keep, o.gatewayBin, true)
	if err != nil {
		return err
	}
	defer cleanup()
	res := Results{
		Command:   "go run ./bench/transports " + strings.Join(os.Args[1:], " "),
		Started:   began.UTC().Format(time.RFC3339),
		Machine:   report.DescribeMachine(),
		N:         o.n,
		Publishes: o.publishes,
	}
	for i, t := range o.transports {
		r, err := runTransport(bin, dir, t, i*o.n, o)
		if err != nil {
			return err
		}
		if r.Error != "" {
			log.Printf("%s: %s", t, r.Error)
		}
		res.Transports = append(res.Transports, r)
	}
	res.Seconds = time.Since(began).Seconds()
	return res.write(o.out)
}

// runTransport measures one transport in a caddy of its own: heap pages
// that an earlier transport's clients or deliveries freed would otherwise
// be reused by the next one's connections and hide part of their RSS.
func runTransport(bin, dir, transport string, sourceOffset int, o options) (TransportResult, error) {
	srv, err := startCaddy(bin, filepath.Join(dir, transport), transport == transportWSTLS || transport == transportSSEH2)
	if err != nil {
		return TransportResult{}, err
	}
	defer srv.Stop()
	if srv.tls != "" {
		if err := srv.waitTLS(30 * time.Second); err != nil {
			return TransportResult{}, err
		}
	}
	f := newFleet(transport, "bench-"+transport, srv.client, srv.tls, o.warmup+o.publishes, sourceOffset)
	defer f.close()
	return measureTransport(srv, f, o), nil
}

// measureTransport runs the idle and the delivery measurements of one
// fleet; a failure is recorded in the result, so the others still run.
func measureTransport(srv *server, f *fleet, o options) TransportResult {
	r := TransportResult{Transport: f.transport, N: o.n}
	if err := idleCost(srv, f, o, &r); err != nil {
		r.Error = err.Error()
		return r
	}
	if err := delivery(srv, f, o, &r); err != nil {
		r.Error = err.Error()
	}
	return r
}

// snapshot is caddy's memory and goroutines after a forced GC.
type snapshot struct {
	rssKB      int64
	mem        procstat.MemStats
	goroutines int
}

func (s *server) snapshot() (snapshot, error) {
	var snap snapshot
	var err error
	// Two collections: objects with finalizers (closed sockets) are freed
	// by the second.
	for range 2 {
		if snap.mem, err = procstat.GCMemStats(httpClient, s.admin); err != nil {
			return snap, err
		}
	}
	if snap.rssKB, _, err = procstat.SettleRSS(s.Pid(), 150*time.Millisecond, 5*time.Second); err != nil {
		return snap, err
	}
	st, err := s.stats()
	if err != nil {
		return snap, err
	}
	snap.goroutines = st.Goroutines
	return snap, nil
}

// idleCost opens the fleet and divides what caddy grew by its size.
func idleCost(srv *server, f *fleet, o options, r *TransportResult) error {
	if err := srv.heapProfile(o.profiles, f.transport+"-before.pb.gz"); err != nil {
		return err
	}
	before, err := srv.snapshot()
	if err != nil {
		return err
	}
	start := time.Now()
	f.open(o.n)
	if err := f.err(); err != nil {
		return err
	}
	if err := benchcmd.WaitFor(60*time.Second, func() bool { return f.ready.Load() == int64(o.n) || f.err() != nil }); err != nil {
		return fmt.Errorf("%d of %d %s clients established: %w", f.ready.Load(), o.n, f.transport, err)
	}
	if err := f.err(); err != nil {
		return err
	}
	if err := srv.waitConns(f.transport, int64(o.n), 60*time.Second); err != nil {
		return err
	}
	r.ConnectSeconds = time.Since(start).Seconds()
	r.TCPConns = o.n
	if f.transport == transportSSEH2 {
		r.TCPConns = int(f.h2Sources.Load())
	}
	after, err := srv.snapshot()
	if err != nil {
		return err
	}
	if err := srv.heapProfile(o.profiles, f.transport+"-after.pb.gz"); err != nil {
		return err
	}
	r.TLS = f.tlsInfo()
	n := float64(o.n)
	r.RSSBeforeKB, r.RSSAfterKB = before.rssKB, after.rssKB
	r.RSSPerConnBytes = float64(after.rssKB-before.rssKB) * 1024 / n
	r.HeapStackPerConnBytes = float64(after.mem.HeapInuse+after.mem.StackInuse-before.mem.HeapInuse-before.mem.StackInuse) / n
	r.GoroutinesBefore, r.GoroutinesAfter = before.goroutines, after.goroutines
	r.GoroutinesPerConn = float64(after.goroutines-before.goroutines) / n
	log.Printf("%s: %d idle: RSS %+.0f B/conn, heap+stack %+.0f B/conn, goroutines %+.2f/conn",
		f.transport, o.n, r.RSSPerConnBytes, r.HeapStackPerConnBytes, r.GoroutinesPerConn)
	return nil
}

// delivery publishes warm-up and measured messages one at a time and reads
// the delays the clients recorded and caddy's CPU time around them.
func delivery(srv *server, f *fleet, o options, r *TransportResult) error {
	f.measureFrom.Store(uint64(o.warmup) + 1)
	var cpu0 float64
	for i := 1; i <= o.warmup+o.publishes; i++ {
		if f.transport == transportPoll {
			// Every client must be held again, or the publish would be
			// answered from history to a poll not yet sent.
			if err := srv.waitConns(transportPoll, int64(o.n), o.deliver); err != nil {
				return fmt.Errorf("before publish %d: %w", i, err)
			}
		}
		if i == o.warmup+1 {
			var err error
			if cpu0, err = procstat.CPUSeconds(srv.Pid()); err != nil {
				return err
			}
		}
		seq, err := srv.publish(f.key)
		if err != nil {
			return err
		}
		if seq != uint64(i) {
			return fmt.Errorf("publish %d got seq %d: the key was not fresh", i, seq)
		}
		if err := benchcmd.WaitFor(o.deliver, func() bool { return f.received(seq) == int64(o.n) || f.err() != nil }); err != nil {
			return fmt.Errorf("publish %d reached %d of %d clients: %w", i, f.received(seq), o.n, err)
		}
		if err := f.err(); err != nil {
			return err
		}
	}
	cpu1, err := procstat.CPUSeconds(srv.Pid())
	if err != nil {
		return err
	}
	st, err := srv.stats()
	if err != nil {
		return err
	}
	r.Dropped, r.SlowCloses = st.Dropped, st.SlowCloses
	delays := f.measured()
	slices.Sort(delays)
	r.Deliveries = len(delays)
	r.P50Ms, r.P99Ms, r.MaxMs = ms(report.Quantile(delays, 0.50)), ms(report.Quantile(delays, 0.99)), ms(report.Quantile(delays, 1))
	r.CPUSeconds = cpu1 - cpu0
	if r.Deliveries > 0 {
		r.CPUPerDeliveryUs = r.CPUSeconds * 1e6 / float64(r.Deliveries)
	}
	log.Printf("%s: %d deliveries: p50 %.2f ms, p99 %.2f ms, max %.2f ms, CPU %.2f µs/delivery",
		f.transport, r.Deliveries, r.P50Ms, r.P99Ms, r.MaxMs, r.CPUPerDeliveryUs)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
