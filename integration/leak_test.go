package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Leak checks: every node the harness starts records its goroutines and open
// file descriptors once it is ready, and the Cleanup that tryStart registers
// right after (so LIFO runs it after the test's own Cleanups and defers have
// closed its clients, and before the node's Stop) waits until both are back
// to that baseline, within a small slack. A connection, stream, held poll or
// timer the gateway forgets to release shows up here, in the test that
// leaked it, rather than as a slow growth only a soak would notice.
//
// A test whose node legitimately ends with more (connections it keeps open
// until Stop, a cache that grows, a broker pool) says so with NoLeakCheck or
// LeakSlack and a reason. A node that exited (Stop, Kill) or a test that
// already failed is not checked: the test ended its own way.

const (
	// leakGoroutineSlack absorbs what serving the check's own stats request
	// and a closing admin connection cost at the moment of sampling.
	leakGoroutineSlack = 3
	// leakFDSlack absorbs the check's admin connection and one closing one.
	leakFDSlack = 2
	// leakWait bounds the wait for closed connections to be released: the
	// gateway notices a closed socket on its next read or write, an idle
	// keep-alive connection once the client's close reaches it.
	leakWait = 10 * time.Second
)

// leakCheck is a node's leak check; a test may adjust it from any
// goroutine.
type leakCheck struct {
	mu sync.Mutex
	s  leakState // guarded by mu
}

// leakState is a node's baseline and what the test said about it.
type leakState struct {
	armed      bool     // a baseline was taken
	optOut     string   // the reason the test gave for no check
	goroutines int      // baseline
	fds        int      // baseline
	slackG     int      // extra goroutines allowed by LeakSlack
	slackFD    int      // extra descriptors allowed by LeakSlack
	why        []string // LeakSlack's reasons
}

// leakClient asks for the figures without keep-alive: an idle connection it
// left in caddy would be counted as one the test leaked.
var leakClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// NoLeakCheck turns the node's leak check off; reason says why the test's
// node may end with more goroutines or descriptors than it started with.
func (n *Node) NoLeakCheck(reason string) {
	n.leaks.mu.Lock()
	defer n.leaks.mu.Unlock()
	n.leaks.s.optOut = reason
}

// LeakSlack allows the node to end with goroutines and fds more than its
// baseline, for reason (e.g. a broker's connection pool that grows with
// concurrent publishes and keeps its idle connections).
func (n *Node) LeakSlack(goroutines, fds int, reason string) {
	n.leaks.mu.Lock()
	defer n.leaks.mu.Unlock()
	n.leaks.s.slackG += goroutines
	n.leaks.s.slackFD += fds
	n.leaks.s.why = append(n.leaks.s.why, reason)
}

// armLeakCheck records the node's baseline and registers the check. tryStart
// calls it once the node is ready, right after registering the node's Stop.
func (n *Node) armLeakCheck() {
	closeIdleAdminConns()
	g, fds, err := n.leakSample()
	if err != nil {
		// No baseline, no check; the test will find out what is wrong.
		n.t.Logf("leak check: no baseline: %v", err)
		return
	}
	n.leaks.mu.Lock()
	n.leaks.s.armed, n.leaks.s.goroutines, n.leaks.s.fds = true, g, fds
	n.leaks.mu.Unlock()
	n.t.Cleanup(n.checkLeaks)
}

// closeIdleAdminConns closes the keep-alive connections the harness's
// clients hold to caddy (admin requests, readiness probes, site requests
// made with the default transport): each is an fd and a goroutine there.
func closeIdleAdminConns() {
	if tr, ok := http.DefaultTransport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
	adminClient.CloseIdleConnections()
	nodesClient.CloseIdleConnections()
}

// checkLeaks waits until the node is back to its baseline and fails the
// test with the figures and a goroutine dump otherwise.
func (n *Node) checkLeaks() {
	lc := n.leakState()
	switch {
	case !lc.armed:
		return
	case lc.optOut != "":
		n.t.Logf("leak check off: %s", lc.optOut)
		return
	case n.t.Failed():
		return // the test ended early; its clients may not have closed
	case n.Exited():
		return // stopped or killed by the test: nothing left to leak
	}
	if msg := n.leakExcess(leakWait); msg != "" {
		n.t.Errorf("leak check: %s\nopen fds:\n%s\ngoroutines:\n%s", msg, n.fdList(), n.goroutineDump())
	}
}

// leakState copies the node's leak check.
func (n *Node) leakState() leakState {
	n.leaks.mu.Lock()
	defer n.leaks.mu.Unlock()
	lc := n.leaks.s
	lc.why = slices.Clone(lc.why)
	return lc
}

// leakExcess waits up to wait until the node's goroutines and fds are back
// within the baseline and its slack, closing the harness's idle
// connections before each sample. It answers "" when they are (or the node
// exited), else what is over.
func (n *Node) leakExcess(wait time.Duration) string {
	lc := n.leakState()
	maxG := lc.goroutines + leakGoroutineSlack + lc.slackG
	maxFD := lc.fds + leakFDSlack + lc.slackFD
	deadline := time.Now().Add(wait)
	var g, fds int
	var err error
	for {
		closeIdleAdminConns()
		g, fds, err = n.leakSample()
		if n.Exited() {
			return ""
		}
		if err == nil && g <= maxG && fds <= maxFD {
			return ""
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
	if err != nil {
		return err.Error()
	}
	slack := ""
	if len(lc.why) > 0 {
		slack = " (slack allowed: " + strings.Join(lc.why, "; ") + ")"
	}
	return fmt.Sprintf("%v after the test closed its clients, caddy has %d goroutines (baseline %d, at most %d) and %d open fds (baseline %d, at most %d)%s",
		wait, g, lc.goroutines, maxG, fds, lc.fds, maxFD, slack)
}

// leakSample reads the node's goroutines (stats) and open descriptors
// (/proc/<pid>/fd).
func (n *Node) leakSample() (goroutines, fds int, err error) {
	resp, err := leakClient.Get(n.Admin + "/push_gateway/stats")
	if err != nil {
		return 0, 0, fmt.Errorf("reading stats: %w", err)
	}
	defer resp.Body.Close()
	var st struct {
		Goroutines int `json:"goroutines"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, 0, fmt.Errorf("decoding stats (%s): %w", resp.Status, err)
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", n.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("listing fds: %w", err)
	}
	return st.Goroutines, len(ents), nil
}

// fdList names the node's open descriptors, for a failure.
func (n *Node) fdList() string {
	dir := fmt.Sprintf("/proc/%d/fd", n.cmd.Process.Pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	counts := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		if strings.HasPrefix(target, "socket:") {
			target = "socket"
		}
		counts[target]++
	}
	var b strings.Builder
	for target, c := range counts {
		fmt.Fprintf(&b, "  %d × %s\n", c, target)
	}
	return b.String()
}

// goroutineDump is caddy's goroutine profile from the admin endpoint's
// pprof page, grouped by stack, truncated for the log.
func (n *Node) goroutineDump() string {
	resp, err := leakClient.Get(n.Admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 24<<10))
	return string(b)
}

// TestLeakCheck proves the harness's leak check against the real binary: it
// sees what a transport leaves open while its clients are connected, and
// passes once they closed.
func TestLeakCheck(t *testing.T) {
	tests := []struct {
		name string
		open func(t *testing.T, n *Node, key string) (closeAll func())
	}{
		{name: "websocket", open: func(t *testing.T, n *Node, key string) func() {
			var cs []*Client
			for range 10 {
				cs = append(cs, Dial(t, n.WSURL(route+"?sdk_key="+key)))
			}
			return func() {
				for _, c := range cs {
					c.Close()
				}
			}
		}},
		{name: "held long polls", open: func(t *testing.T, n *Node, key string) func() {
			tr := &http.Transport{}
			client := &http.Client{Transport: tr}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			for range 10 {
				go func() {
					defer func() { done <- struct{}{} }()
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.HTTP+route+"?sdk_key="+key+"&since=0&wait=60s", nil)
					if resp, err := client.Do(req); err == nil {
						resp.Body.Close()
					}
				}()
			}
			eventually(t, msgTimeout, func() (bool, string) {
				c := n.Stats(t).Connections
				return c.Poll == 10, fmt.Sprintf("held polls %d, want 10", c.Poll)
			})
			return func() {
				cancel()
				for range 10 {
					<-done
				}
				tr.CloseIdleConnections()
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := startCaddy(t, caddyfile(nil, nil))
			closeAll := tc.open(t, n, testKey(t, "k"))
			if msg := n.leakExcess(time.Second); msg == "" {
				t.Fatal("the leak check saw nothing while 10 clients were connected")
			}
			closeAll()
			if msg := n.leakExcess(leakWait); msg != "" {
				t.Fatalf("after the clients closed: %s", msg)
			}
		})
	}
}
