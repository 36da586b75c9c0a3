package gateway

import (
	"math"
	"net/http"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/netpoll"
	"github.com/pushgateway/push_gateway/protocol"
)

// Adaptive shedding: besides its static limits the gateway watches its own
// health, the heap in use against a memory budget and the fan-out lag (how
// long a queued frame waits for its write) against a maximum. Over either,
// it sheds: new requests are refused with 503 and Retry-After (shedAdmit),
// and the consumers with the largest backlogs are closed with 4503, a
// bounded batch per tick. It recovers by itself once every watched value
// has stayed below 90% of its threshold for two ticks (hysteresis: a
// gateway hovering at the threshold must not flap).
//
// One goroutine per Engine, the monitor, runs while shedding is configured;
// nothing runs per connection. It reads the heap through runtime/metrics
// (no stop-the-world, unlike runtime.ReadMemStats) and the lag from the
// poller (netpoll/lag.go).

// Shedding reasons, as Stats and the log name them.
const (
	ShedReasonMemory    = "memory"
	ShedReasonFanoutLag = "fanout_lag"
)

const (
	// shedTick is the monitor's period: fast enough to act within a
	// second, slow enough that its scan of the backlogs costs nothing.
	shedTick = 250 * time.Millisecond
	// shedBatch bounds the closes of one tick: shedding must not turn into
	// a reconnect storm of its own, and the pressure is measured again
	// before the next batch.
	shedBatch = 64
	// shedCalmTicks is how many ticks in a row every watched value must
	// stay below shedRecoverRatio of its threshold before shedding stops.
	shedCalmTicks    = 2
	shedRecoverRatio = 0.9
	// DefaultShedRetryAfter is ShedConfig.RetryAfter's default: pressure
	// that made the gateway shed rarely clears within seconds, and a client
	// retrying sooner is refused again.
	DefaultShedRetryAfter = 10 * time.Second
)

// ShedConfig configures adaptive shedding (the global `shedding` block). A
// zero threshold is not watched; with neither set, shedding is off.
type ShedConfig struct {
	MemoryBudget int64         // heap in use, in bytes, above which the gateway sheds
	MaxFanoutLag time.Duration // fan-out lag above which the gateway sheds
	RetryAfter   time.Duration // Retry-After of refused requests; default DefaultShedRetryAfter
}

// Enabled tells whether c watches anything.
func (c ShedConfig) Enabled() bool { return c.MemoryBudget > 0 || c.MaxFanoutLag > 0 }

// ShedStats is the shedding state, as Stats shows it under "shedding" and
// the metrics read it (Engine.Shedding).
type ShedStats struct {
	Enabled     bool     `json:"enabled"`
	Active      bool     `json:"active"`
	Reasons     []string `json:"reasons"`       // why it sheds (or shed last, while recovering)
	HeapBytes   int64    `json:"heap_bytes"`    // heap in use at the latest tick
	FanoutLagMS int64    `json:"fanout_lag_ms"` // fan-out lag at the latest tick
	Refused     uint64   `json:"refused"`       // requests answered 503 while shedding
	Closed      uint64   `json:"closed"`        // connections closed with 4503
	ClosedBy    struct {
		Memory    uint64 `json:"memory"`
		FanoutLag uint64 `json:"fanout_lag"`
	} `json:"closed_by"`
	Since int64 `json:"since,omitempty"` // Unix ms the current shedding began; absent when not shedding
}

// shedder is the Engine's shedding state. The monitor goroutine writes the
// readings; admission and Stats read them through atomics.
type shedder struct {
	cfg    atomic.Pointer[ShedConfig] // nil: off
	active atomic.Bool
	view   atomic.Pointer[shedView] // the latest tick's readings and state

	refused, closedMem, closedLag atomic.Uint64

	mu   sync.Mutex    // guards the monitor's start and stop
	quit chan struct{} // non-nil while the monitor runs
	done chan struct{}
}

// shedView is what one tick found, for Stats.
type shedView struct {
	reasons []string
	heap    int64
	lag     time.Duration
	since   time.Time
}

// configureShedding applies cfg (New, Configure): the monitor starts when
// shedding gets configured and stops when a reload removes it.
func (e *Engine) configureShedding(cfg ShedConfig) {
	s := &e.shed
	s.mu.Lock()
	defer s.mu.Unlock()
	if !cfg.Enabled() {
		s.cfg.Store(nil)
		s.stopLocked()
		s.active.Store(false)
		s.view.Store(nil)
		return
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultShedRetryAfter
	}
	s.cfg.Store(&cfg)
	if s.quit == nil && !e.closing.Load() {
		s.quit, s.done = make(chan struct{}), make(chan struct{})
		go e.monitor(s.quit, s.done)
	}
}

// stopShedding stops the monitor and waits for it (Shutdown).
func (e *Engine) stopShedding() {
	e.shed.mu.Lock()
	defer e.shed.mu.Unlock()
	e.shed.stopLocked()
}

func (s *shedder) stopLocked() {
	if s.quit == nil {
		return
	}
	close(s.quit)
	<-s.done
	s.quit, s.done = nil, nil
}

// Shedding returns the shedding state: for Stats and the metrics.
func (e *Engine) Shedding() ShedStats {
	s := &e.shed
	st := ShedStats{
		Enabled: s.cfg.Load() != nil,
		Active:  s.active.Load(),
		Reasons: []string{},
		Refused: s.refused.Load(),
	}
	st.ClosedBy.Memory = s.closedMem.Load()
	st.ClosedBy.FanoutLag = s.closedLag.Load()
	st.Closed = st.ClosedBy.Memory + st.ClosedBy.FanoutLag
	if v := s.view.Load(); v != nil && st.Enabled {
		st.HeapBytes = v.heap
		st.FanoutLagMS = v.lag.Milliseconds()
		if st.Active {
			st.Reasons = append(st.Reasons, v.reasons...)
			st.Since = v.since.UnixMilli()
		}
	}
	return st
}

// shedAdmit refuses a new request while the gateway sheds: 503 with
// Retry-After and a JSON error. An Engine.IO request of a session that
// already exists (sid) is let through: refusing it would break a client
// that is already counted, and free nothing. It reports whether it
// answered, with the error for the caller's log.
func (e *Engine) shedAdmit(w http.ResponseWriter, r *http.Request) (bool, error) {
	if !e.shed.active.Load() {
		return false, nil
	}
	cfg := e.shed.cfg.Load()
	if cfg == nil || r.URL.Query().Get("sid") != "" {
		return false, nil
	}
	e.shed.refused.Add(1)
	secs := int64(math.Ceil(cfg.RetryAfter.Seconds()))
	h := w.Header()
	h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	if r.ProtoMajor == 1 {
		h.Set("Connection", "close") // the refused client gives its descriptor back at once
	}
	return true, writeError(w, http.StatusServiceUnavailable, "gateway overloaded: retry later")
}

// shedReadings are one tick's measurements.
type shedReadings struct {
	heap     int64         // heap in use, bytes
	gcCycles uint64        // completed GC cycles, to tell a fresh heap reading
	lag      time.Duration // fan-out lag
}

// shedMonitor is the monitor's decision state, owned by its goroutine (or
// a test); step is pure logic over readings, so tests drive it with a
// fake clock and fake readings.
type shedMonitor struct {
	active  bool
	reasons []string
	since   time.Time
	calm    int // ticks in a row below shedRecoverRatio of every threshold

	// gcAtClose is the GC cycle count when memory last closed a batch. The
	// heap only shows what closing freed after the next GC: closing more
	// before that would shed on a stale reading.
	gcAtClose  uint64
	memClosing bool // a memory batch was closed and gcAtClose is set
}

// shedAction says what a tick closes: for which reasons.
type shedAction struct {
	memory, lag bool
}

// step updates the state from one tick's readings and says what to close.
func (m *shedMonitor) step(cfg ShedConfig, r shedReadings, now time.Time) shedAction {
	overMem := cfg.MemoryBudget > 0 && r.heap > cfg.MemoryBudget
	overLag := cfg.MaxFanoutLag > 0 && r.lag > cfg.MaxFanoutLag
	if overMem || overLag {
		if !m.active {
			m.active, m.since = true, now
		}
		m.calm = 0
		m.reasons = m.reasons[:0]
		if overMem {
			m.reasons = append(m.reasons, ShedReasonMemory)
		}
		if overLag {
			m.reasons = append(m.reasons, ShedReasonFanoutLag)
		}
		var act shedAction
		act.lag = overLag
		if overMem && (!m.memClosing || r.gcCycles > m.gcAtClose) {
			act.memory = true
			m.memClosing, m.gcAtClose = true, r.gcCycles
		}
		return act
	}
	m.memClosing = false
	if !m.active {
		return shedAction{}
	}
	calm := (cfg.MemoryBudget <= 0 || float64(r.heap) < shedRecoverRatio*float64(cfg.MemoryBudget)) &&
		(cfg.MaxFanoutLag <= 0 || float64(r.lag) < shedRecoverRatio*float64(cfg.MaxFanoutLag))
	if !calm {
		m.calm = 0 // between 90% and 100%: keep refusing, close nothing
		return shedAction{}
	}
	if m.calm++; m.calm >= shedCalmTicks {
		m.active, m.calm, m.reasons = false, 0, m.reasons[:0]
	}
	return shedAction{}
}

// pickShed chooses up to limit connections to close from bl (ranked
// largest backlog first). For lag only consumers that lag themselves are
// taken: their oldest frame has waited at least half the maximum. For
// memory any backlog is, largest first: queued frames are what closing can
// free. A connection with nothing queued is never taken: it is not slow.
func pickShed(bl []netpoll.Backlog, forLag bool, maxLag time.Duration, limit int, picked []int) []int {
	for i, b := range bl {
		if len(picked) >= limit {
			break
		}
		if b.Frames == 0 || (forLag && b.Age < maxLag/2) {
			continue
		}
		picked = append(picked, i)
	}
	return picked
}

// shedProbe is where the monitor's readings come from; tests fake it.
type shedProbe interface {
	heap() (bytes int64, gcCycles uint64)
	writeLag() time.Duration
	backlogs(dst []netpoll.Backlog) []netpoll.Backlog
}

// runtimeProbe reads the process and the poller.
type runtimeProbe struct {
	p       *netpoll.Poller
	samples []metrics.Sample
}

func newRuntimeProbe(p *netpoll.Poller) *runtimeProbe {
	return &runtimeProbe{p: p, samples: []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}}
}

func (r *runtimeProbe) heap() (int64, uint64) {
	metrics.Read(r.samples)
	var heap int64
	var cycles uint64
	if v := r.samples[0].Value; v.Kind() == metrics.KindUint64 {
		heap = int64(min(v.Uint64(), math.MaxInt64))
	}
	if v := r.samples[1].Value; v.Kind() == metrics.KindUint64 {
		cycles = v.Uint64()
	}
	return heap, cycles
}

func (r *runtimeProbe) writeLag() time.Duration { return r.p.TakeWriteLag() }

func (r *runtimeProbe) backlogs(dst []netpoll.Backlog) []netpoll.Backlog {
	return r.p.Backlogs(dst)
}

// monitor is the shedding goroutine: it ticks until quit is closed.
func (e *Engine) monitor(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(shedTick)
	defer t.Stop()
	m := &shedMonitor{}
	probe := newRuntimeProbe(e.poller)
	var bl []netpoll.Backlog
	var picked []int
	for {
		select {
		case <-quit:
			return
		case now := <-t.C:
			bl, picked = e.shedTick(m, probe, now, bl, picked)
		}
	}
}

// shedTick is one tick of the monitor: measure, decide, publish the state,
// close a batch. bl and picked are scratch space, handed back for reuse.
func (e *Engine) shedTick(m *shedMonitor, probe shedProbe, now time.Time, bl []netpoll.Backlog, picked []int) ([]netpoll.Backlog, []int) {
	cfg := e.shed.cfg.Load()
	if cfg == nil {
		return bl, picked
	}
	var r shedReadings
	r.heap, r.gcCycles = probe.heap()
	r.lag = probe.writeLag()
	scanned := false
	if cfg.MaxFanoutLag > 0 {
		// Consumers that stopped reading never complete a write: their
		// waiting frames are the lag the write view cannot see.
		bl, scanned = probe.backlogs(bl[:0]), true
		for _, b := range bl {
			r.lag = max(r.lag, b.Age)
		}
	}
	wasActive := m.active
	act := m.step(*cfg, r, now)
	e.shed.view.Store(&shedView{reasons: append([]string(nil), m.reasons...), heap: r.heap, lag: r.lag, since: m.since})
	e.shed.active.Store(m.active)
	switch {
	case m.active && !wasActive:
		e.logger.Warn("shedding load: refusing new connections, closing the slowest",
			zap.Strings("reasons", m.reasons), zap.Int64("heap_bytes", r.heap),
			zap.Int64("memory_budget", cfg.MemoryBudget), zap.Duration("fanout_lag", r.lag),
			zap.Duration("max_fanout_lag", cfg.MaxFanoutLag))
	case !m.active && wasActive:
		e.logger.Info("shedding ended", zap.Int64("heap_bytes", r.heap), zap.Duration("fanout_lag", r.lag))
	}
	if !act.lag && !act.memory {
		clear(bl)
		return bl[:0], picked
	}
	if !scanned {
		bl = probe.backlogs(bl[:0])
	}
	picked = picked[:0]
	if act.lag {
		picked = pickShed(bl, true, cfg.MaxFanoutLag, shedBatch, picked)
		e.shedClose(bl, picked, &e.shed.closedLag)
	}
	if act.memory {
		picked = pickShed(bl, false, 0, shedBatch, picked[:0])
		e.shedClose(bl, picked, &e.shed.closedMem)
	}
	clear(bl)
	return bl[:0], picked
}

// shedClose closes the picked connections with 4503 and counts them under
// counter. A connection already closing (taken by the other reason this
// tick, or ending anyway) is skipped.
func (e *Engine) shedClose(bl []netpoll.Backlog, picked []int, counter *atomic.Uint64) {
	for _, i := range picked {
		c := bl[i].Conn
		if c == nil || c.Closing() {
			continue
		}
		counter.Add(1)
		shedConn(c)
	}
}

// shedConn ends one connection because the gateway is overloaded. Its
// backlog goes with it: the client resumes from history with since/epoch.
func shedConn(c *netpoll.Conn) {
	switch h := c.Handler().(type) {
	case ender: // native WebSocket, Socket.IO: the error frame, then 4503
		h.fail(protocol.CloseOverloaded, "overloaded", "the gateway is overloaded: reconnect later", true)
	case *sseSession:
		h.end(sseByeOverloaded, true)
	default:
		c.CloseWith(nil, true)
	}
}

// sseByeOverloaded ends an event stream that was shed.
var sseByeOverloaded = []byte(": overloaded\n\n")
