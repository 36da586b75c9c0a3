package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/benchcmd"
	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// ErrBadFlag is returned for an unusable flag value.
var ErrBadFlag = benchcmd.ErrBadFlag

// ErrSoakFailed is returned when the run lost a message, broke the
// contract or grew its memory.
var ErrSoakFailed = errors.New("soak failed")

// rssBound is how far the end's RSS may lie from the start's.
const rssBound = 0.10

type options struct {
	clients    int
	duration   time.Duration
	warmup     time.Duration
	keys       int
	rate       int
	dropEvery  time.Duration
	slow       int
	slowDelay  time.Duration
	stallers   int
	stall      time.Duration
	stallEvery time.Duration
	history    int
	catchUp    time.Duration
	redis      string
	out        string
	gatewayBin string
	keep       bool
	seed       int64
}

func main() {
	benchcmd.Main("soak", parseFlags, run)
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.IntVar(&o.clients, "clients", 5000, "WebSocket clients (one socket each here and in caddy)")
	fs.DurationVar(&o.duration, "duration", 3*time.Minute, "measured load, after the warm-up")
	fs.DurationVar(&o.warmup, "warmup", 0, "load before the start's memory figure; 0: long enough to replace every key's history once (at least 30s)")
	fs.IntVar(&o.keys, "keys", 50, "SDK keys; each client follows 1-3, stallers all")
	fs.IntVar(&o.rate, "rate", 200, "messages published per second, over all keys")
	fs.DurationVar(&o.dropEvery, "drop-every", 60*time.Second, "mean time between a client's drops (each reconnects at once and resumes)")
	fs.IntVar(&o.slow, "slow", -1, "slow readers (sleep -slow-delay after every frame); -1: 5% of -clients")
	fs.DurationVar(&o.slowDelay, "slow-delay", 20*time.Millisecond, "a slow reader's pause after each frame")
	fs.IntVar(&o.stallers, "stallers", 10, "clients that follow every key and stop reading for -stall now and then")
	fs.DurationVar(&o.stall, "stall", 20*time.Second, "how long a staller stops reading: long enough for the gateway's queue to fill behind what the kernel buffers (up to tcp_wmem's 4 MiB)")
	fs.DurationVar(&o.stallEvery, "stall-every", 60*time.Second, "mean time between a staller's stalls")
	fs.IntVar(&o.history, "history", 256, "history_size of the node")
	fs.DurationVar(&o.catchUp, "catch-up", 2*time.Minute, "how long clients may take to catch up once the load pauses")
	fs.StringVar(&o.redis, "redis", "", "cluster mode: the broker's redis:// URL (a redis-server you started)")
	fs.StringVar(&o.out, "out", "", "directory for results.json and results.md; empty: stdout only")
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "use this caddy binary instead of building ./cmd/caddy")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (binary, Caddyfile, log, and caddy's heap profiles at the start and the end)")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the clients' key choice")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.slow < 0 {
		o.slow = o.clients / 20
	}
	if o.warmup == 0 && o.rate > 0 {
		o.warmup = autoWarmup(o.history, o.keys, o.rate)
	}
	// One socket per client here and in caddy, under the 20,000 open
	// files a process may hold on this machine, with room for the rest.
	switch {
	case o.clients < 1 || o.clients > 15000:
		return o, fmt.Errorf("%w: -clients %d: want 1..15000", ErrBadFlag, o.clients)
	case o.duration < time.Second || o.duration > time.Hour || o.warmup < 0 || o.warmup > 10*time.Minute:
		return o, fmt.Errorf("%w: -duration in 1s..1h, -warmup in 0..10m", ErrBadFlag)
	case o.keys < 1 || o.keys > 10000 || o.rate < 1 || o.rate > 100000:
		return o, fmt.Errorf("%w: -keys in 1..10000, -rate in 1..100000", ErrBadFlag)
	case o.stallers < 0 || o.slow+o.stallers > o.clients:
		return o, fmt.Errorf("%w: -slow %d and -stallers %d exceed -clients %d", ErrBadFlag, o.slow, o.stallers, o.clients)
	case o.dropEvery < 100*time.Millisecond || o.stallEvery < time.Second || o.stall < 0 || o.slowDelay < 0:
		return o, fmt.Errorf("%w: -drop-every ≥ 100ms, -stall-every ≥ 1s, -stall and -slow-delay ≥ 0", ErrBadFlag)
	case o.history < 1 || o.history > 100000 || o.catchUp < time.Second:
		return o, fmt.Errorf("%w: -history in 1..100000, -catch-up ≥ 1s", ErrBadFlag)
	}
	return o, nil
}

// autoWarmup is how long the publisher takes to replace every key's
// history once, with a tenth more, and at least 30s. Until then the
// history still holds prefilled messages, which no follower made the
// gateway encode for its wire: each replaced one adds its encoding, growth
// that is the steady state being reached, not a leak.
func autoWarmup(history, keys, rate int) time.Duration {
	turnover := time.Duration(float64(history*keys) / float64(rate) * 1.1 * float64(time.Second))
	return max(30*time.Second, turnover.Round(time.Second))
}

func run(o options) error {
	began := time.Now()
	dir, bin, cleanup, err := benchcmd.Setup("pushgw-soak-", o.keep, o.gatewayBin, true)
	if err != nil {
		return err
	}
	defer cleanup()
	srv, err := startCaddy(bin, filepath.Join(dir, "node"), o)
	if err != nil {
		return err
	}
	defer srv.Stop()

	res := Results{
		Command: "go run ./bench/soak " + strings.Join(os.Args[1:], " "),
		Started: began.UTC().Format(time.RFC3339), Machine: report.DescribeMachine(),
		Clients: o.clients, SlowReaders: o.slow, Stallers: o.stallers, Keys: o.keys, Rate: o.rate,
		Duration: o.duration.String(), Warmup: o.warmup.String(), DropEvery: o.dropEvery.String(),
		Stall: o.stall.String(), History: o.history, Broker: "memory",
	}
	if o.redis != "" {
		res.Broker = "redis"
	}
	if err := soak(srv, dir, o, &res); err != nil {
		return err
	}
	res.Seconds = time.Since(began).Seconds()
	res.LoadAverage = report.LoadAverage()
	if err := res.write(o.out); err != nil {
		return err
	}
	if len(res.Failures) > 0 {
		return fmt.Errorf("%w: %s", ErrSoakFailed, strings.Join(res.Failures, "; "))
	}
	return nil
}

// soak runs the fleet through the warm-up and the measured phase and fills
// res; dir is the work directory.
func soak(srv *server, dir string, o options, res *Results) error {
	keys := make([]string, o.keys)
	keyIndex := map[string]int{}
	for i := range keys {
		keys[i] = fmt.Sprintf("soak-%04d", i)
		keyIndex[keys[i]] = i
	}
	pub := &publisher{admin: srv.admin, keys: keys, keyIndex: keyIndex, last: make([]uint64, o.keys)}
	log.Printf("filling %d keys' history (%d messages each)", o.keys, o.history)
	if err := pub.prefill(o.history); err != nil {
		return err
	}

	f := newFleet(o, srv.client, keys)
	log.Printf("connecting %d clients (%d slow readers, %d stallers)", o.clients, o.slow, o.stallers)
	connectStart := time.Now()
	f.start()
	defer f.stop()
	if err := benchcmd.WaitFor(3*time.Minute, func() bool { return f.connected() == o.clients }); err != nil {
		return fmt.Errorf("%d of %d clients connected: %w (%s)", f.connected(), o.clients, err, f.totals(pub.last).FirstViolation)
	}
	res.ConnectSeconds = time.Since(connectStart).Seconds()
	before, err := srv.stats()
	if err != nil {
		return err
	}

	var start, end Snapshot
	for _, ph := range []struct {
		name string
		d    time.Duration
		snap *Snapshot
		file string
	}{{"warm-up", o.warmup, &start, "heap-start.pprof"}, {"measured load", o.duration, &end, "heap-end.pprof"}} {
		log.Printf("%s: %v at %d messages/s", ph.name, ph.d, o.rate)
		profile := ""
		if o.keep {
			profile = filepath.Join(dir, ph.file)
		}
		if err := phase(srv, f, pub, o, ph.d, ph.snap, profile); err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		log.Printf("%s: RSS %d KiB, heap %d KiB, %d goroutines, %d fds", ph.name, ph.snap.RSSKB, ph.snap.HeapInuse>>10, ph.snap.Goroutines, ph.snap.FDs)
	}
	after, err := srv.stats()
	if err != nil {
		return err
	}
	f.stop()
	res.Totals = f.totals(pub.last)
	res.Messages = pub.messages
	res.PublishGaps = pub.gaps
	res.ServerDelivered = after.Delivered - before.Delivered
	res.ServerSlowCloses = after.SlowCloses - before.SlowCloses
	res.ServerDropped = after.Dropped - before.Dropped
	res.Start, res.End = start, end
	res.RSSChangePct = 100 * float64(end.RSSKB-start.RSSKB) / float64(start.RSSKB)

	// Every connection the clients closed is gone from the gateway.
	err = benchcmd.WaitFor(30*time.Second, func() bool {
		st, err := srv.stats()
		res.ConnectionsAfterClose = st.Connections.Total
		return err == nil && st.Connections.Total == 0
	})
	if err != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("%d connections left 30s after every client closed", res.ConnectionsAfterClose))
	}
	res.judge()
	return nil
}

// phase runs the load for d, pauses it, waits until every client caught
// up and takes a snapshot.
func phase(srv *server, f *fleet, pub *publisher, o options, d time.Duration, snap *Snapshot, profile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	f.load.Store(true)
	err := pub.run(ctx, o.rate)
	f.load.Store(false)
	if err != nil {
		return err
	}
	paused := time.Now()
	err = benchcmd.WaitFor(o.catchUp, func() bool { n, _ := f.behind(pub.last); return n == 0 })
	log.Printf("every client caught up %.1fs after the load paused", time.Since(paused).Seconds())
	if err != nil {
		n, example := f.behind(pub.last)
		return fmt.Errorf("%d clients behind after %v, e.g. %s: %w", n, o.catchUp, example, err)
	}
	s, err := srv.snapshot(profile)
	*snap = s
	return err
}

// judge lists what makes the run a failure.
func (r *Results) judge() {
	t := r.Totals
	fail := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	if t.Lost != 0 {
		fail("%d messages lost", t.Lost)
	}
	if t.Duplicates != 0 {
		fail("%d duplicates", t.Duplicates)
	}
	if t.UnexplainedResyncs != 0 {
		fail("%d resyncs the history should have covered", t.UnexplainedResyncs)
	}
	if t.Violations != 0 || t.EpochViolations != 0 {
		fail("%d contract violations (%d epochs without a resync), the first: %s", t.Violations, t.EpochViolations, t.FirstViolation)
	}
	if r.PublishGaps != 0 {
		fail("publish answers skipped or repeated %d seqs", r.PublishGaps)
	}
	if math.Abs(r.RSSChangePct) > 100*rssBound {
		fail("RSS %d KiB at the end vs %d KiB at the start (%+.1f%%, bound ±%.0f%%)", r.End.RSSKB, r.Start.RSSKB, r.RSSChangePct, 100*rssBound)
	}
	if r.Stallers > 0 && t.StallerSlowCloses == 0 {
		fail("no staller was closed as a slow consumer (4429): the run proved nothing about them")
	}
	r.Pass = len(r.Failures) == 0
}
