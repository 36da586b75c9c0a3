package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushgateway/push_gateway/netpoll"
)

const mib = 1 << 20

// TestShedMonitorStep drives the decision logic tick by tick with a fake
// clock and fake readings.
func TestShedMonitorStep(t *testing.T) {
	type tick struct {
		heap     int64
		gc       uint64
		lag      time.Duration
		active   bool
		reasons  []string
		closeMem bool
		closeLag bool
	}
	both := ShedConfig{MemoryBudget: 100 * mib, MaxFanoutLag: time.Second}
	tests := []struct {
		name  string
		cfg   ShedConfig
		ticks []tick
	}{
		{
			name: "calm stays calm",
			cfg:  both,
			ticks: []tick{
				{heap: 50 * mib, lag: 100 * time.Millisecond},
				{heap: 99 * mib, lag: 999 * time.Millisecond},
			},
		},
		{
			name: "memory over, recovers after two calm ticks",
			cfg:  both,
			ticks: []tick{
				{heap: 101 * mib, gc: 1, active: true, reasons: []string{ShedReasonMemory}, closeMem: true},
				{heap: 120 * mib, gc: 1, active: true, reasons: []string{ShedReasonMemory}}, // no GC since the close: wait
				{heap: 110 * mib, gc: 2, active: true, reasons: []string{ShedReasonMemory}, closeMem: true},
				{heap: 80 * mib, gc: 3, active: true, reasons: []string{ShedReasonMemory}},
				{heap: 80 * mib, gc: 3},
			},
		},
		{
			name: "hysteresis band keeps refusing without closing",
			cfg:  both,
			ticks: []tick{
				{heap: 101 * mib, gc: 1, active: true, reasons: []string{ShedReasonMemory}, closeMem: true},
				{heap: 95 * mib, gc: 2, active: true, reasons: []string{ShedReasonMemory}},
				{heap: 85 * mib, gc: 3, active: true, reasons: []string{ShedReasonMemory}},
				{heap: 95 * mib, gc: 4, active: true, reasons: []string{ShedReasonMemory}}, // calm count starts again
				{heap: 85 * mib, gc: 5, active: true, reasons: []string{ShedReasonMemory}},
				{heap: 85 * mib, gc: 5},
			},
		},
		{
			name: "lag closes every tick it is over",
			cfg:  both,
			ticks: []tick{
				{heap: mib, lag: 2 * time.Second, active: true, reasons: []string{ShedReasonFanoutLag}, closeLag: true},
				{heap: mib, lag: 3 * time.Second, active: true, reasons: []string{ShedReasonFanoutLag}, closeLag: true},
				{heap: mib, lag: 950 * time.Millisecond, active: true, reasons: []string{ShedReasonFanoutLag}},
				{heap: mib, lag: 0, active: true, reasons: []string{ShedReasonFanoutLag}},
				{heap: mib, lag: 0},
			},
		},
		{
			name: "both reasons",
			cfg:  both,
			ticks: []tick{
				{heap: 200 * mib, gc: 7, lag: 5 * time.Second, active: true, reasons: []string{ShedReasonMemory, ShedReasonFanoutLag}, closeMem: true, closeLag: true},
				{heap: 200 * mib, gc: 7, lag: 0, active: true, reasons: []string{ShedReasonMemory}},
			},
		},
		{
			name: "an unwatched value never sheds",
			cfg:  ShedConfig{MaxFanoutLag: time.Second},
			ticks: []tick{
				{heap: 1 << 40, lag: 0},
				{heap: 1 << 40, lag: 2 * time.Second, active: true, reasons: []string{ShedReasonFanoutLag}, closeLag: true},
				{heap: 1 << 40, lag: 0, active: true, reasons: []string{ShedReasonFanoutLag}},
				{heap: 1 << 40, lag: 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m shedMonitor
			start := time.Unix(1700000000, 0)
			var since time.Time
			for i, tk := range tt.ticks {
				now := start.Add(time.Duration(i) * shedTick)
				act := m.step(tt.cfg, shedReadings{heap: tk.heap, gcCycles: tk.gc, lag: tk.lag}, now)
				if m.active != tk.active || act.memory != tk.closeMem || act.lag != tk.closeLag {
					t.Fatalf("tick %d: active %v, close memory %v lag %v; want %v, %v, %v",
						i, m.active, act.memory, act.lag, tk.active, tk.closeMem, tk.closeLag)
				}
				if tk.active && !slices.Equal(m.reasons, tk.reasons) {
					t.Fatalf("tick %d: reasons %v, want %v", i, m.reasons, tk.reasons)
				}
				if tk.active && since.IsZero() {
					since = now
				}
				if tk.active && !m.since.Equal(since) {
					t.Fatalf("tick %d: since %v, want the first shedding tick %v", i, m.since, since)
				}
				if !tk.active {
					since = time.Time{}
				}
			}
		})
	}
}

func TestPickShed(t *testing.T) {
	bl := []netpoll.Backlog{ // as Backlogs ranks them: largest first
		{Frames: 500, Age: 5 * time.Second},
		{Frames: 400, Age: 100 * time.Millisecond},
		{Frames: 300, Age: 3 * time.Second},
		{Frames: 2, Age: 600 * time.Millisecond},
		{Frames: 1, Age: 0},
	}
	tests := []struct {
		name   string
		forLag bool
		limit  int
		want   []int
	}{
		{name: "lag takes those lagging themselves", forLag: true, limit: 10, want: []int{0, 2, 3}},
		{name: "lag bounded", forLag: true, limit: 2, want: []int{0, 2}},
		{name: "memory takes the largest", limit: 3, want: []int{0, 1, 2}},
		{name: "memory takes any backlog", limit: 10, want: []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pickShed(bl, tt.forLag, time.Second, tt.limit, nil)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("picked %v, want %v", got, tt.want)
			}
		})
	}
}

// fakeProbe serves set readings and the real poller's backlogs.
type fakeProbe struct {
	p       *netpoll.Poller
	heapB   int64
	gc      uint64
	lag     time.Duration
	noScans bool
}

func (f *fakeProbe) heap() (int64, uint64)   { return f.heapB, f.gc }
func (f *fakeProbe) writeLag() time.Duration { return f.lag }
func (f *fakeProbe) backlogs(dst []netpoll.Backlog) []netpoll.Backlog {
	if f.noScans {
		return dst
	}
	return f.p.Backlogs(dst)
}

// TestShedAdmitAndStats: while shedding, requests get 503 with Retry-After
// (a Socket.IO session's own requests excepted), Stats tells why, and a
// calm tick pair lifts it.
func TestShedAdmitAndStats(t *testing.T) {
	e, wsURL := testEngine(t, RouteSettings{})
	e.configureShedding(ShedConfig{MemoryBudget: 100 * mib, RetryAfter: 1500 * time.Millisecond})
	e.stopShedding() // the test ticks the monitor itself
	base := "http" + strings.TrimPrefix(wsURL, "ws")
	probe := &fakeProbe{p: e.poller, heapB: 200 * mib, gc: 1, noScans: true}
	m := &shedMonitor{}
	now := time.Now()
	e.shedTick(m, probe, now, nil, nil)

	st := e.Stats().Shedding
	if !st.Active || !slices.Equal(st.Reasons, []string{ShedReasonMemory}) || st.HeapBytes != 200*mib || st.Since != now.UnixMilli() {
		t.Fatalf("stats %+v, want active for memory since %d", st, now.UnixMilli())
	}
	tests := []struct {
		name   string
		path   string
		header http.Header
		want   int
	}{
		{name: "websocket", path: "/?sdk_key=k", header: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}, want: 503},
		{name: "sse", path: "/?sdk_key=k", header: http.Header{"Accept": {"text/event-stream"}}, want: 503},
		{name: "poll", path: "/?sdk_key=k&wait=1s", want: 503},
		{name: "engine.io session", path: "/socket.io/?EIO=4&transport=polling&sid=nope", want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base+tt.path, nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want != 503 {
				return
			}
			if ra := resp.Header.Get("Retry-After"); ra != "2" {
				t.Fatalf("Retry-After %q, want 2 (1.5s rounded up)", ra)
			}
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || !strings.Contains(body["error"], "overloaded") {
				t.Fatalf("body %v (%v), want a JSON error", body, err)
			}
		})
	}
	if got := e.Shedding().Refused; got != 3 {
		t.Fatalf("refused %d, want 3", got)
	}

	probe.heapB = 10 * mib
	for i := 1; i <= shedCalmTicks; i++ {
		e.shedTick(m, probe, now.Add(time.Duration(i)*shedTick), nil, nil)
	}
	if st := e.Shedding(); st.Active || len(st.Reasons) != 0 || st.Since != 0 {
		t.Fatalf("after calm ticks: %+v, want inactive", st)
	}
	resp, err := http.Get(base + "/?sdk_key=k&wait=10ms")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("poll after recovery: %d", resp.StatusCode)
	}
}

// TestShedClosesTheStalledFirst: over the lag limit, a reader that stopped
// reading is closed with the error message then 4503, while a reading one
// stays; over the memory budget the backlogged one goes too, and no more
// is closed until a garbage collection shows what that freed.
func TestShedClosesTheStalledFirst(t *testing.T) {
	tests := []struct {
		name     string
		cfg      ShedConfig
		probe    fakeProbe
		closedBy func(ShedStats) uint64
	}{
		{
			name:     "fanout lag",
			cfg:      ShedConfig{MaxFanoutLag: time.Second},
			probe:    fakeProbe{lag: 2 * time.Second},
			closedBy: func(st ShedStats) uint64 { return st.ClosedBy.FanoutLag },
		},
		{
			name:     "memory",
			cfg:      ShedConfig{MemoryBudget: 100 * mib},
			probe:    fakeProbe{heapB: 200 * mib, gc: 1},
			closedBy: func(st ShedStats) uint64 { return st.ClosedBy.Memory },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, wsURL := testEngine(t, RouteSettings{QueueSize: 100000})
			e.configureShedding(tt.cfg)
			e.stopShedding() // the test ticks the monitor itself
			healthy := dialWS(t, wsURL+"?sdk_key=k")
			if m, _ := healthy.next(); m["type"] != "registered" {
				t.Fatalf("healthy: %v", m)
			}
			stalled := dialSmallWS(t, wsURL+"?sdk_key=k")
			if m, _ := stalled.next(); m["type"] != "registered" {
				t.Fatalf("stalled: %v", m)
			}
			// The stalled one reads nothing more: publish until its queue backs up.
			data := `"` + strings.Repeat("x", 64<<10) + `"` // 100 of them outgrow the 4 MiB a send buffer may autotune to
			var bl []netpoll.Backlog
			go func() { _, _ = io.Copy(io.Discard, healthy.nc) }() // the healthy one reads everything
			stalledAddr := stalled.nc.LocalAddr().String()
			backedUp := func() bool {
				defer clear(bl)
				bl = e.poller.Backlogs(bl[:0])
				for _, b := range bl {
					if b.Conn.RemoteAddr().String() == stalledAddr && b.Frames > 100 {
						return true
					}
				}
				return false
			}
			for i := 0; i < 4000 && !backedUp(); i++ {
				publish(t, e, "k", data)
			}
			if !backedUp() {
				t.Fatal("the stalled reader's queue did not back up")
			}
			// A fake clock would not age the real poller's stamps: the
			// readings are faked, and the stalled backlog ages for real.
			probe := tt.probe
			probe.p = e.poller
			m := &shedMonitor{}
			deadline := time.Now().Add(10 * time.Second)
			for e.Shedding().Closed == 0 && time.Now().Before(deadline) {
				e.shedTick(m, &probe, time.Now(), nil, nil)
				time.Sleep(shedTick / 5) // polling: the stalled head ages on the poller's clock
			}
			st := e.Shedding()
			if st.Closed == 0 || tt.closedBy(st) != st.Closed || (tt.cfg.MaxFanoutLag > 0 && st.Closed != 1) {
				t.Fatalf("shedding %+v, want the stalled reader closed for %s", st, tt.name)
			}
			if tt.cfg.MemoryBudget > 0 {
				// No GC since the close: the heap reading is stale, close nothing more.
				for range 3 {
					e.shedTick(m, &probe, time.Now(), nil, nil)
				}
				if got := e.Shedding().Closed; got != st.Closed {
					t.Fatalf("%d closed after ticks without a GC, want %d", got, st.Closed)
				}
			}
			// The stalled client now reads: its backlog was dropped, the
			// error message and 4503 follow what was already in flight.
			var sawError bool
			for {
				m, code := stalled.next()
				if code != 0 {
					if code != ws.StatusCode(4503) {
						t.Fatalf("stalled closed with %d, want 4503", code)
					}
					break
				}
				if m["type"] == "error" {
					sawError = m["code"] == "overloaded"
				}
			}
			if !sawError {
				t.Fatal("no overloaded error message before the close")
			}
		})
	}
}

// dialSmallWS is dialWS with a 4 KiB receive buffer: a client that stops
// reading stalls the gateway's writes after a few frames, and stays stalled.
func dialSmallWS(t testing.TB, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}
		return nd.DialContext(ctx, network, addr)
	}}
	nc, br, _, err := d.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if br != nil {
		nc = bufferedConn{nc, br}
	}
	return &client{t: t, nc: nc}
}
