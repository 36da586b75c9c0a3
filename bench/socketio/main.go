// Command socketio measures push_gateway's Socket.IO transport next to the
// reference socket.io 4.8.4 node server, in one run:
//
//	go run ./bench/socketio -out /tmp/sio-bench
//
// It builds caddy from ./cmd/caddy (or takes -gateway-bin) and runs
// reference.mjs (socket.io from the repository's node_modules: npm ci at the
// root) with node. The reference does what FeatureProbe's server does: on
// `register` {"sdk_key":"K"} the socket joins room K and is answered with
// `update ""`; POST /publish emits `update <data>` to room K. The gateway
// runs with a generated Caddyfile (transports websocket socketio,
// socketio_path /realtime/, heartbeat 25s, idle_timeout 60s) and is
// published to through its admin API.
//
// For each N of -n and each server, in a fresh server process, one server
// at a time:
//
//  1. forces a GC in the server (the gateway: GET
//     <admin>/debug/pprof/heap?gc=1; the reference: global.gc() with
//     --expose-gc) and waits for its VmRSS to settle;
//  2. opens N Socket.IO clients over raw WebSocket (GET
//     /realtime/?EIO=4&transport=websocket, `40/realtime,`, then `register`
//     once the namespace is joined; pings `2` answered with `3`), spread
//     over source addresses 127.0.0.2–254, and waits until every client got
//     `update ""` and the server counts N connections;
//  3. forces a GC and reads the settled VmRSS again: the delta / N is the
//     cost of one idle connection;
//  4. publishes -warmup, then -broadcasts updates with data
//     {"i":<index>,"t":<unix ns>} to the key, each once the previous one
//     reached every client; each client records its delay from the stamp.
//     p50, p99 and time to last are the medians over the broadcasts of each
//     broadcast's figure, max the worst delivery;
//  5. reads the server's utime+stime around the measured broadcasts: server
//     CPU per delivery.
//
// Results go to -out as results.json and results.md (and the tables to
// stdout), with the ratios gateway / reference and the targets of issue 5.
// Clients run in this process, one goroutine each; the open-files limit is
// raised first. Every wait is bounded, and the run stops measuring once
// -limit is spent.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/benchcmd"
	"github.com/pushgateway/push_gateway/bench/internal/procstat"
	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// ErrBadFlag is returned for an unusable flag value.
var ErrBadFlag = benchcmd.ErrBadFlag

// maxClients bounds -n: the runner holds N client sockets and the server N
// more, each under the 20,000 open files a process may hold here.
const maxClients = 18000

type options struct {
	ns         []int
	servers    []string
	broadcasts int
	warmup     int
	out        string
	gatewayBin string
	node       string
	deliver    time.Duration
	limit      time.Duration
	keep       bool
}

func main() {
	benchcmd.Main("socketio", parseFlags, run)
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("socketio", flag.ContinueOnError)
	ns := fs.String("n", "2000,10000", "numbers of idle clients, comma-separated")
	servers := fs.String("servers", serverGateway+","+serverReference, "servers to measure, in order")
	fs.IntVar(&o.broadcasts, "broadcasts", 20, "measured broadcasts per server and N")
	fs.IntVar(&o.warmup, "warmup", 2, "unmeasured broadcasts first")
	fs.StringVar(&o.out, "out", "", "directory for results.json and results.md; empty: stdout only")
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "use this caddy binary instead of building ./cmd/caddy")
	fs.StringVar(&o.node, "node", "node", "the node binary for the reference server")
	fs.DurationVar(&o.deliver, "deliver", 15*time.Second, "how long one broadcast may take to reach every client")
	fs.DurationVar(&o.limit, "limit", 5*time.Minute, "the whole run's time; measuring stops once it is spent")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (binary, Caddyfile, logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > maxClients {
			return o, fmt.Errorf("%w: -n %q: want numbers in 1..%d", ErrBadFlag, s, maxClients)
		}
		o.ns = append(o.ns, n)
	}
	for _, s := range strings.Split(*servers, ",") {
		switch s = strings.TrimSpace(s); s {
		case serverGateway, serverReference:
			o.servers = append(o.servers, s)
		default:
			return o, fmt.Errorf("%w: -servers %q: want %s or %s", ErrBadFlag, s, serverGateway, serverReference)
		}
	}
	if o.broadcasts < 1 || o.broadcasts > 1000 || o.warmup < 0 || o.warmup > 100 {
		return o, fmt.Errorf("%w: -broadcasts in 1..1000, -warmup in 0..100", ErrBadFlag)
	}
	if o.deliver <= 0 || o.limit <= 0 {
		return o, fmt.Errorf("%w: -deliver and -limit must be positive", ErrBadFlag)
	}
	return o, nil
}

// run measures every server at every N, one server process at a time.
func run(o options) error {
	began := time.Now()
	deadline := began.Add(o.limit)
	dir, bin, cleanup, err := benchcmd.Setup("pushgw-socketio-", o.keep, o.gatewayBin, slices.Contains(o.servers, serverGateway))
	if err != nil {
		return err
	}
	defer cleanup()
	nodeVersion := ""
	if slices.Contains(o.servers, serverReference) {
		out, err := exec.Command(o.node, "--version").Output()
		if err != nil {
			return fmt.Errorf("running %s --version: %w", o.node, err)
		}
		nodeVersion = strings.TrimSpace(string(out))
	}
	res := Results{
		Command:    "go run ./bench/socketio " + strings.Join(os.Args[1:], " "),
		Started:    began.UTC().Format(time.RFC3339),
		Machine:    Machine{Machine: report.DescribeMachine(), Node: nodeVersion},
		Broadcasts: o.broadcasts,
		Warmup:     o.warmup,
	}
	root, err := benchcmd.ModuleRoot()
	if err != nil {
		return err
	}
	script := filepath.Join(root, "bench", "socketio", "reference.mjs")
	for _, n := range o.ns {
		for _, name := range o.servers {
			if time.Now().After(deadline) {
				log.Printf("-limit %v spent: %s at %d not measured", o.limit, name, n)
				res.Servers = append(res.Servers, ServerResult{Server: name, N: n, Error: "not measured: -limit spent"})
				continue
			}
			sub := filepath.Join(dir, fmt.Sprintf("%s-%d", name, n))
			var srv *server
			if name == serverGateway {
				srv, err = startGateway(bin, sub)
			} else {
				srv, err = startReference(o.node, script, sub)
			}
			if err != nil {
				return err
			}
			r := measure(srv, n, o, deadline)
			srv.Stop()
			if r.Error != "" {
				log.Printf("%s at %d: %s", name, n, r.Error)
			}
			res.Servers = append(res.Servers, r)
		}
	}
	res.Ratios = ratios(res.Servers)
	res.Seconds = time.Since(began).Seconds()
	if err := res.write(o.out); err != nil || o.out == "" {
		return err
	}
	refreshPlots(o.out)
	return nil
}

// measure runs the idle and the broadcast measurements of n clients on
// srv; a failure is recorded in the result, so the others still run. The
// clients are closed before it returns.
func measure(srv *server, n int, o options, deadline time.Time) ServerResult {
	r := ServerResult{Server: srv.name, N: n}
	f := newFleet(srv.client, "bench-sio", n, o.warmup+o.broadcasts)
	defer f.Close()
	if err := idleCost(srv, f, &r); err != nil {
		r.Error = err.Error()
		return r
	}
	if err := broadcasts(srv, f, o, deadline, &r); err != nil {
		r.Error = err.Error()
	}
	return r
}

// snapshot is the server's settled VmRSS after a forced GC and, for the
// gateway, its goroutines (the reference has no such count).
type snapshot struct {
	rssKB      int64
	settled    bool
	goroutines int
}

func takeSnapshot(srv *server) (snapshot, error) {
	var snap snapshot
	if err := srv.gc(); err != nil {
		return snap, err
	}
	var err error
	if snap.rssKB, snap.settled, err = procstat.SettleRSS(srv.Pid(), 150*time.Millisecond, 6*time.Second); err != nil {
		return snap, err
	}
	if srv.admin != "" {
		st, err := srv.gatewayStats()
		if err != nil {
			return snap, err
		}
		snap.goroutines = st.Goroutines
	}
	return snap, nil
}

// idleCost opens the fleet and divides what the server's RSS grew by N.
func idleCost(srv *server, f *fleet, r *ServerResult) error {
	before, err := takeSnapshot(srv)
	if err != nil {
		return err
	}
	start := time.Now()
	f.open()
	if err := f.err(); err != nil {
		return err
	}
	if err := benchcmd.WaitFor(60*time.Second, func() bool { return f.ready.Load() == int64(f.n) || f.err() != nil }); err != nil {
		return fmt.Errorf("%d of %d clients registered: %w", f.ready.Load(), f.n, err)
	}
	if err := f.err(); err != nil {
		return err
	}
	if err := srv.waitConns(int64(f.n), 30*time.Second); err != nil {
		return err
	}
	r.ConnectSeconds = time.Since(start).Seconds()
	after, err := takeSnapshot(srv)
	if err != nil {
		return err
	}
	r.GoroutinesBefore, r.GoroutinesAfter = before.goroutines, after.goroutines
	r.RSSBeforeKB, r.RSSAfterKB, r.RSSSettled = before.rssKB, after.rssKB, after.settled
	r.RSSPerConnBytes = float64(after.rssKB-before.rssKB) * 1024 / float64(f.n)
	log.Printf("%s: %d idle: RSS %d → %d KiB, %+.0f B/conn (settled %v), connect %.1f s",
		srv.name, f.n, before.rssKB, after.rssKB, r.RSSPerConnBytes, after.settled, r.ConnectSeconds)
	return nil
}

// broadcasts publishes the warm-up and measured updates one at a time and
// reads the delays the clients recorded and the server's CPU time around
// them.
func broadcasts(srv *server, f *fleet, o options, deadline time.Time, r *ServerResult) error {
	var cpu0 float64
	total := o.warmup + o.broadcasts
	for i := 1; i <= total; i++ {
		if time.Now().After(deadline) {
			return fmt.Errorf("broadcast %d: %w: -limit %v spent", i, benchcmd.ErrTimeout, o.limit)
		}
		if i == o.warmup+1 {
			var err error
			if cpu0, err = procstat.CPUSeconds(srv.Pid()); err != nil {
				return err
			}
		}
		if err := srv.publish(f.key, i); err != nil {
			return err
		}
		if err := benchcmd.WaitFor(o.deliver, func() bool { return f.received(i) >= int64(f.n) || f.err() != nil }); err != nil {
			return fmt.Errorf("broadcast %d reached %d of %d clients: %w", i, f.received(i), f.n, err)
		}
		if err := f.err(); err != nil {
			return err
		}
	}
	cpu1, err := procstat.CPUSeconds(srv.Pid())
	if err != nil {
		return err
	}
	if srv.admin != "" {
		st, err := srv.gatewayStats()
		if err != nil {
			return err
		}
		r.Dropped, r.SlowCloses = st.Dropped, st.SlowCloses
	}
	var p50s, p99s, lasts []float64
	var worst int64
	for i := o.warmup + 1; i <= total; i++ {
		ds := f.delaysOf(i)
		slices.Sort(ds)
		r.Deliveries += len(ds)
		p50s = append(p50s, ms(report.Quantile(ds, 0.50)))
		p99s = append(p99s, ms(report.Quantile(ds, 0.99)))
		last := report.Quantile(ds, 1)
		lasts = append(lasts, ms(last))
		worst = max(worst, last)
	}
	r.Broadcasts = o.broadcasts
	r.P50Ms, r.P99Ms, r.LastMs, r.MaxMs = report.Median(p50s), report.Median(p99s), report.Median(lasts), ms(worst)
	r.CPUSeconds = cpu1 - cpu0
	if r.Deliveries > 0 {
		r.CPUPerDeliveryUs = r.CPUSeconds * 1e6 / float64(r.Deliveries)
	}
	log.Printf("%s: %d deliveries: p50 %.2f ms, p99 %.2f ms, last %.2f ms, max %.2f ms, CPU %.2f µs/delivery",
		srv.name, r.Deliveries, r.P50Ms, r.P99Ms, r.LastMs, r.MaxMs, r.CPUPerDeliveryUs)
	return nil
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }
