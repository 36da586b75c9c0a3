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
	server     string // "push_gateway" or "baseline"
	start      func(name string) (*server, error)
	n          int
	perProc    int // connections per load generator process
	warmup     int
	broadcasts int
	burst      int           // messages published back to back after the broadcasts
	waitLimit  time.Duration // per broadcast
	loadgenBin string
	dir        string
}

// trial is one plan under way: the server, its clients and the result so far.
type trial struct {
	plan
	r    *Result
	srv  *server
	gens []*loadgen
	key  string
	logf func(string, ...any)
}

// measure runs one plan; a failure is recorded in the Result.
func measure(p plan, key string, ipBase int, logf func(string, ...any)) Result {
	r := Result{Server: p.server, N: p.n}
	t := &trial{plan: p, r: &r, key: key, logf: logf}
	if err := t.run(ipBase); err != nil {
		r.Error = err.Error()
		logf("%s n=%d: %v", p.server, p.n, err)
	}
	return r
}

// run goes through the phases in order; every wait in them is bounded.
func (t *trial) run(ipBase int) error {
	var err error
	if t.srv, err = t.start(fmt.Sprintf("%s-%d", t.server, t.n)); err != nil {
		return err
	}
	defer t.srv.Stop()
	if err := t.srv.waitReady(30 * time.Second); err != nil {
		return err
	}
	if err := probe(t.srv.client, t.key+"-probe", 5*time.Second); err != nil {
		return fmt.Errorf("%w; log: %s", err, t.srv.LogTail())
	}
	before, msErr := procstat.GCMemStats(httpClient, t.srv.admin)
	if t.r.RSSBeforeKB, _, err = procstat.SettleRSS(t.srv.Pid(), 500*time.Millisecond, 10*time.Second); err != nil {
		return err
	}
	st, err := t.srv.stats()
	if err != nil {
		return err
	}
	t.r.GoroutinesIdle0 = st.Goroutines

	defer func() {
		for _, g := range t.gens {
			g.stop()
		}
	}()
	if err := t.connect(ipBase); err != nil {
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
	}
	if err := t.continuity(last); err != nil {
		return err
	}
	// Shutdown with everyone connected: the gateway is to close each
	// connection with 1001; the baseline just exits.
	if err := t.shutdown(); err != nil {
		t.r.ShutdownError = err.Error()
	}
	m := t.r.Median
	t.logf("%s n=%d: p50 %.2fms p99 %.2fms p99.9 %.2fms last %.2fms, %.0f deliveries/s, server %.2fus/delivery, lost %d dup %d; shutdown %.2fs, closes %s",
		t.server, t.n, m.P50MS, m.P99MS, m.P999MS, m.LastMS, m.DeliveriesPS, t.r.ServerCPUPerDelUS, t.r.Lost, t.r.Duplicates,
		t.r.ShutdownS, formatCloses(t.r.ShutdownCloses))
	return nil
}

// connect starts the load generators and waits until each has connected
// its share of the N clients.
func (t *trial) connect(ipBase int) error {
	glog, err := os.Create(filepath.Join(t.dir, fmt.Sprintf("loadgen-%s-%d.log", t.server, t.n)))
	if err != nil {
		return fmt.Errorf("creating loadgen log: %w", err)
	}
	// The children hold their own descriptor of the log.
	defer glog.Close()
	t.r.Procs = (t.n + t.perProc - 1) / t.perProc
	maxSeq := t.warmup + t.broadcasts + t.burst + 1
	url := "ws://" + t.srv.client + "/realtime?sdk_key=" + t.key
	for i := range t.r.Procs {
		n := t.n / t.r.Procs
		if i < t.n%t.r.Procs {
			n++
		}
		g, err := startLoadgen(t.loadgenBin, url, n, ipBase+i*n, maxSeq, glog)
		if err != nil {
			return err
		}
		t.gens = append(t.gens, g)
	}
	var firstErr string
	for _, g := range t.gens {
		var m connectedMsg
		if err := g.read(&m, 150*time.Second); err != nil {
			return err
		}
		t.r.Connected += m.Connected
		t.r.ConnectS = max(t.r.ConnectS, m.Seconds)
		if m.Error != "" && firstErr == "" {
			firstErr = m.Error
		}
	}
	t.logf("%s n=%d: %d connected in %.1fs", t.server, t.n, t.r.Connected, t.r.ConnectS)
	if t.r.Connected < t.n {
		return fmt.Errorf("%w: %d of %d (first error: %s)", ErrIncomplete, t.r.Connected, t.n, firstErr)
	}
	return nil
}

// idle measures memory and CPU with every client connected and silent:
// force a GC so that garbage from the handshakes does not count, then wait
// for RSS to stop moving.
func (t *trial) idle(before procstat.MemStats, msErr error) error {
	r := t.r
	after, err := procstat.GCMemStats(httpClient, t.srv.admin)
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
	t.logf("%s n=%d: rss %d -> %d KiB (%.0f B/conn, settled %v; Go heap %.0f + stack %.0f B/conn), idle CPU %.1f%%, goroutines %d -> %d, stats connections %d",
		t.server, t.n, r.RSSBeforeKB, r.RSSAfterKB, r.RSSPerConnBytes, r.RSSSettled, r.HeapPerConn, r.StackPerConn, r.IdleCPUPct,
		r.GoroutinesIdle0, r.GoroutinesIdleN, st.Connections.Total)
	return nil
}

// broadcastAll runs the warm-up and the measured broadcasts and the CPU
// accounting around the latter. It answers the last seq published.
func (t *trial) broadcastAll() (int64, error) {
	r := t.r
	for range t.warmup {
		if _, err := t.broadcast(); err != nil {
			return 0, fmt.Errorf("warm-up: %w", err)
		}
	}
	cpu0, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return 0, err
	}
	gcpu0, err := sumCPU(t.gens)
	if err != nil {
		return 0, err
	}
	var last int64
	for range t.broadcasts {
		b, err := t.broadcast()
		if err != nil {
			return 0, err
		}
		r.Broadcasts = append(r.Broadcasts, b)
		r.Deliveries += b.Received
		last = b.Seq
	}
	cpu1, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return 0, err
	}
	gcpu1, err := sumCPU(t.gens)
	if err != nil {
		return 0, err
	}
	r.ServerCPUS = cpu1 - cpu0
	r.LoadgenCPUS = gcpu1 - gcpu0
	if r.Deliveries > 0 {
		r.ServerCPUPerDelUS = r.ServerCPUS * 1e6 / float64(r.Deliveries)
		r.LoadgenCPUPerDelUS = r.LoadgenCPUS * 1e6 / float64(r.Deliveries)
	}
	r.Median = medianBroadcast(r.Broadcasts)
	return last, nil
}

// broadcast publishes one stamped message and collects every generator's
// receipt latencies for it.
func (t *trial) broadcast() (Broadcast, error) {
	seq, _, took, err := t.srv.publish(t.key)
	if err != nil {
		return Broadcast{}, err
	}
	b, err := t.collect(seq)
	if err != nil {
		return b, err
	}
	b.PublishMS = ms(took)
	// A short pause so that one broadcast's tail never overlaps the next.
	time.Sleep(50 * time.Millisecond)
	return b, nil
}

// runBurst publishes t.burst messages back to back and waits for the last
// one to reach everyone; per-connection order means the others have too,
// and any that did not show up as lost in the summary.
func (t *trial) runBurst() (int64, error) {
	r := t.r
	cpu0, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return 0, err
	}
	start := time.Now()
	var seq int64
	var stamp time.Time // of the last message
	for range t.burst {
		if seq, stamp, _, err = t.srv.publish(t.key); err != nil {
			return 0, err
		}
	}
	b, err := t.collect(seq)
	if err != nil {
		return 0, err
	}
	cpu1, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return 0, err
	}
	r.Burst = t.burst
	// To the last receipt, not to when the runner noticed it.
	r.BurstS = stamp.Sub(start).Seconds() + b.LastMS/1e3
	r.BurstDeliveries = int64(t.burst) * b.Received
	if r.BurstS > 0 {
		r.BurstDelPS = float64(r.BurstDeliveries) / r.BurstS
	}
	if r.BurstDeliveries > 0 {
		r.BurstCPUPerDelUS = (cpu1 - cpu0) * 1e6 / float64(r.BurstDeliveries)
	}
	return seq, nil
}

// collect asks every generator for seq's latencies and summarizes them.
func (t *trial) collect(seq int64) (Broadcast, error) {
	b := Broadcast{Seq: seq}
	waitMS := int(t.waitLimit / time.Millisecond)
	for _, g := range t.gens {
		if err := g.send("wait %d %d", seq, waitMS); err != nil {
			return b, err
		}
	}
	var lat []int64
	for _, g := range t.gens {
		var m broadcastMsg
		if err := g.read(&m, t.waitLimit+10*time.Second); err != nil {
			return b, err
		}
		if m.Type != "broadcast" {
			return b, fmt.Errorf("%w: %s", ErrLoadgen, m.Error)
		}
		b.Expected += m.Expected
		b.Received += m.Received
		lat = append(lat, m.LatNS...)
	}
	summarize(&b, lat)
	return b, nil
}

// continuity collects lost and duplicated seqs up to last, and closes.
func (t *trial) continuity(last int64) error {
	r := t.r
	for _, g := range t.gens {
		if err := g.send("summary %d", last); err != nil {
			return err
		}
		var s summaryMsg
		if err := g.read(&s, 10*time.Second); err != nil {
			return err
		}
		r.Lost += s.Gaps + s.Missing
		r.Duplicates += s.Duplicates
		for code, n := range s.Closes {
			if r.Closes == nil {
				r.Closes = map[string]int{}
			}
			r.Closes[code] += n
		}
	}
	if st, err := t.srv.stats(); err == nil {
		r.Dropped = st.Dropped + st.SlowCloses
	}
	return nil
}

// shutdown stops the server while every client is connected and records
// how long it took and how the clients saw their connections end.
func (t *trial) shutdown() error {
	r := t.r
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
	for code, n := range r.Closes { // those closed before the shutdown
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
