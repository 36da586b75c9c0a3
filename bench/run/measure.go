package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/procstat"
)

// ErrIncomplete is returned when fewer clients connected than asked.
var ErrIncomplete = errors.New("not every client connected")

// plan is what one measurement does.
type plan struct {
	server      string
	start       func(name string) (*server, error)
	n           int
	perProc     int // connections per load generator process
	warmup      int
	broadcasts  int
	burst       int           // messages published back to back after the broadcasts
	waitLimit   time.Duration // per broadcast
	storm       int           // messages published while every client is away; 0: no storm
	stormConc   int           // handshakes in flight per generator during the storm
	steadyKeys  int           // 0: no steady load
	steadyRate  float64       // publishes per second
	steadyFor   time.Duration // publishing window
	loadgenBin  string
	dir         string
	repeat      int
	sourceShift int // spreads the fleets over the source addresses
}

// trial is one plan under way: the server, its clients and the result so far.
type trial struct {
	plan
	r     *Result
	srv   *server
	gens  []*loadgen
	key   string
	epoch string // of key (native)
	next  int64  // index of key's next message
	fleet int    // fleets started so far
	logf  func(string, ...any)
}

// measure runs one plan; a failure is recorded in the Result.
func measure(p plan, key string, logf func(string, ...any)) Result {
	r := Result{Server: p.server, N: p.n, Repeat: p.repeat}
	t := &trial{plan: p, r: &r, key: key, next: 1, logf: logf}
	if err := t.run(); err != nil {
		r.Error = err.Error()
		logf("%s n=%d: %v", p.server, p.n, err)
	}
	return r
}

// run goes through the phases in order; every wait in them is bounded.
func (t *trial) run() error {
	var err error
	if t.srv, err = t.start(fmt.Sprintf("%s-%d-%d", t.server, t.n, t.repeat)); err != nil {
		return err
	}
	defer t.srv.Stop()
	if t.srv.proto == protoNative {
		if err := probe(t.srv.client, t.key+"-probe", 5*time.Second); err != nil {
			return fmt.Errorf("%w; log: %s", err, t.srv.LogTail())
		}
	}
	before, msErr := t.srv.gc()
	if t.r.RSSBeforeKB, _, err = procstat.SettleRSS(t.srv.Pid(), 500*time.Millisecond, 10*time.Second); err != nil {
		return err
	}
	st, err := t.srv.stats()
	if err != nil {
		return err
	}
	t.r.GoroutinesIdle0 = st.Goroutines

	defer func() { t.stopFleet(false) }()
	if err := t.connect(); err != nil {
		return err
	}
	if err := t.idle(before, msErr); err != nil {
		return err
	}
	last, err := t.broadcastAll()
	if err != nil {
		return err
	}
	if t.burst > 0 {
		if last, err = t.runBurst(); err != nil {
			return fmt.Errorf("burst: %w", err)
		}
		if err := t.afterBurst(); err != nil {
			return fmt.Errorf("after the burst: %w", err)
		}
	}
	if err := t.continuity(last); err != nil {
		return err
	}
	if t.storm > 0 {
		if err := t.runStorm(); err != nil {
			return fmt.Errorf("reconnect storm: %w", err)
		}
	}
	if t.steadyKeys > 0 {
		if err := t.runSteady(); err != nil {
			return fmt.Errorf("steady load: %w", err)
		}
	}
	// Shutdown with everyone connected: the gateway is to close each
	// connection with 1001; the baseline just exits.
	if err := t.shutdown(); err != nil {
		t.r.ShutdownError = err.Error()
	}
	m, s, y := t.r.Median, t.r.Storm, t.r.Steady
	t.logf("%s n=%d #%d: broadcast p50 %.2fms p99 %.2fms last %.2fms, %.2fus/delivery; burst %.0f/s; storm %.2fs lost %d; steady p99 %.2fms %.0f/s; shutdown %.2fs, closes %s",
		t.server, t.n, t.repeat, m.P50MS, m.P99MS, m.LastMS, t.r.ServerCPUPerDelUS, t.r.BurstDelPS, s.Seconds, s.Lost,
		y.P99MS, y.DelPS, t.r.ShutdownS, formatCloses(t.r.ShutdownCloses))
	return nil
}

// fleetConnect is how a fleet's connect phase went, over its generators.
type fleetConnect struct {
	connected  int
	seconds    float64 // the slowest generator's
	handP50    float64 // the slowest generator's median handshake
	handP99    float64
	firstError string
}

// startFleet starts the generators of a fleet of t.n clients (a.n and
// a.ipOffset are set per generator) and waits until each has connected
// its share. The fleet becomes t.gens.
func (t *trial) startFleet(tag string, a fleetArgs) (fleetConnect, error) {
	var fc fleetConnect
	t.fleet++
	glog, err := os.Create(filepath.Join(t.dir, fmt.Sprintf("loadgen-%s-%d-%d-%s.log", t.server, t.n, t.repeat, tag)))
	if err != nil {
		return fc, fmt.Errorf("creating loadgen log: %w", err)
	}
	// The children hold their own descriptor of the log.
	defer glog.Close()
	procs := (t.n + t.perProc - 1) / t.perProc
	t.r.Procs = procs
	a.url, a.proto = t.srv.loadgenURL(), t.srv.proto
	a.maxSeq = t.warmup + t.broadcasts + t.burst + t.storm + 2
	first := 0
	for i := range procs {
		n := t.n / procs
		if i < t.n%procs {
			n++
		}
		a.n, a.first = n, first
		// Each fleet starts at other source addresses so that the previous
		// one's TIME_WAIT sockets are spread thin.
		a.ipOffset = t.sourceShift + t.fleet*97 + first
		g, err := startLoadgen(t.loadgenBin, a, glog)
		if err != nil {
			return fc, err
		}
		t.gens = append(t.gens, g)
		first += n
	}
	for _, g := range t.gens {
		var m connectedMsg
		if err := g.read(&m, 150*time.Second); err != nil {
			return fc, err
		}
		fc.connected += m.Connected
		fc.seconds = max(fc.seconds, m.Seconds)
		fc.handP50, fc.handP99 = max(fc.handP50, m.HandP50), max(fc.handP99, m.HandP99)
		if m.Error != "" && fc.firstError == "" {
			fc.firstError = m.Error
		}
	}
	t.logf("%s n=%d #%d %s: %d connected in %.2fs (handshake p50 %.1fms p99 %.1fms)",
		t.server, t.n, t.repeat, tag, fc.connected, fc.seconds, fc.handP50, fc.handP99)
	if fc.connected < t.n {
		return fc, fmt.Errorf("%w: %s: %d of %d (first error: %s)", ErrIncomplete, tag, fc.connected, t.n, fc.firstError)
	}
	return fc, nil
}

// stopFleet ends the current generators: killed (their connections drop
// at once) or asked to quit.
func (t *trial) stopFleet(kill bool) {
	for _, g := range t.gens {
		if kill {
			_ = g.cmd.Process.Kill()
		}
	}
	for _, g := range t.gens {
		g.stop()
	}
	t.gens = nil
}

// connect starts the first fleet: N clients following t.key.
func (t *trial) connect() error {
	fc, err := t.startFleet("idle", fleetArgs{key: t.key})
	t.r.Connected, t.r.ConnectS = fc.connected, fc.seconds
	return err
}

// idle measures memory and CPU with every client connected and silent:
// force a GC so that garbage from the handshakes does not count, then wait
// for RSS to stop moving.
func (t *trial) idle(before procstat.MemStats, msErr error) error {
	r := t.r
	after, err := t.srv.gc()
	if msErr = errors.Join(msErr, err); msErr != nil {
		r.MemStatsError = msErr.Error()
	} else {
		r.HeapPerConn = float64(after.HeapInuse-before.HeapInuse) / float64(r.Connected)
		r.StackPerConn = float64(after.StackInuse-before.StackInuse) / float64(r.Connected)
	}
	cpu0, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return err
	}
	start := time.Now()
	if r.RSSAfterKB, r.RSSSettled, err = procstat.SettleRSS(t.srv.Pid(), 500*time.Millisecond, 20*time.Second); err != nil {
		return err
	}
	cpu1, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return err
	}
	r.IdleCPUPct = (cpu1 - cpu0) / time.Since(start).Seconds() * 100
	r.RSSPerConnBytes = float64(r.RSSAfterKB-r.RSSBeforeKB) * 1024 / float64(r.Connected)
	st, err := t.srv.stats()
	if err != nil {
		return err
	}
	r.GoroutinesIdleN = st.Goroutines
	t.logf("%s n=%d #%d: rss %d -> %d KiB (%.0f B/conn, settled %v; Go heap %.0f + stack %.0f B/conn), idle CPU %.1f%%, goroutines %d -> %d, connections %d",
		t.server, t.n, t.repeat, r.RSSBeforeKB, r.RSSAfterKB, r.RSSPerConnBytes, r.RSSSettled, r.HeapPerConn, r.StackPerConn, r.IdleCPUPct,
		r.GoroutinesIdle0, r.GoroutinesIdleN, st.Connections.Total)
	return nil
}

// afterBurst reads RSS again once the burst is over: after a GC and
// settling, as the idle figure was read.
func (t *trial) afterBurst() error {
	r := t.r
	if _, err := t.srv.gc(); err != nil {
		return err
	}
	var err error
	if r.RSSAfterBurstKB, _, err = procstat.SettleRSS(t.srv.Pid(), 500*time.Millisecond, 20*time.Second); err != nil {
		return err
	}
	if r.RSSAfterKB > 0 {
		r.BurstRSSGrowthPct = float64(r.RSSAfterBurstKB-r.RSSAfterKB) / float64(r.RSSAfterKB) * 100
	}
	return nil
}

// summary asks every generator for continuity up to last and adds it up.
func (t *trial) summary(last int64) (summaryMsg, error) {
	var sum summaryMsg
	for _, g := range t.gens {
		if err := g.send("summary %d", last); err != nil {
			return sum, err
		}
		var s summaryMsg
		if err := g.read(&s, 10*time.Second); err != nil {
			return sum, err
		}
		sum.Gaps += s.Gaps
		sum.Missing += s.Missing
		sum.Duplicates += s.Duplicates
		sum.Resyncs += s.Resyncs
		sum.Alive += s.Alive
		for code, n := range s.Closes {
			if sum.Closes == nil {
				sum.Closes = map[string]int{}
			}
			sum.Closes[code] += n
		}
	}
	return sum, nil
}

// continuity collects lost and duplicated messages up to last, and closes.
func (t *trial) continuity(last int64) error {
	r := t.r
	s, err := t.summary(last)
	if err != nil {
		return err
	}
	r.Lost, r.Duplicates, r.Closes = s.Gaps+s.Missing, s.Duplicates, s.Closes
	if st, err := t.srv.stats(); err == nil {
		r.Dropped = st.Dropped + st.SlowCloses
	}
	return nil
}

// shutdown stops the server while every client is connected and records
// how long it took and how the clients saw their connections end.
func (t *trial) shutdown() error {
	r := t.r
	before, err := t.summary(0)
	if err != nil {
		return err
	}
	start := time.Now()
	t.srv.Stop()
	r.ShutdownS = time.Since(start).Seconds()
	closes := map[string]int{}
	for _, g := range t.gens {
		if err := g.send("closed 15000"); err != nil {
			return err
		}
		var s summaryMsg
		if err := g.read(&s, 25*time.Second); err != nil {
			return err
		}
		if s.Alive > 0 {
			closes["still open"] += int(s.Alive)
		}
		for code, n := range s.Closes {
			closes[code] += n
		}
	}
	for code, n := range before.Closes { // those closed before the shutdown
		if closes[code] -= n; closes[code] == 0 {
			delete(closes, code)
		}
	}
	r.ShutdownCloses = closes
	return nil
}

func sumCPU(gens []*loadgen) (float64, error) {
	var s float64
	for _, g := range gens {
		c, err := procstat.CPUSeconds(g.pid())
		if err != nil {
			return 0, err
		}
		s += c
	}
	return s, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
