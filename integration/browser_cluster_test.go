package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// This file tests node discovery in the browser client (discover: true)
// against two real gateway nodes on one real Redis, in real Chromium: the
// page is served by node A and follows a key; its node goes away (killed,
// or stopped with 1001) and the client must end up on node B having
// delivered every message once and in order.

// clusterPageConfig is a cluster node whose site also serves an empty page
// at /page, for the browser to run the client in on that node's origin.
// Arguments: global options, broker URL, node id, route, zone, node TTL,
// extra site lines, route.
const clusterPageConfig = `{%s
	push_gateway {
		broker redis %s
		node_id %s
		node_address ws://127.0.0.1:{$PORT}%s
		node_zone %s
		node_ttl %s
	}
}

http://127.0.0.1:{$PORT} {
	%s
	push_gateway %s* {
		heartbeat 5s
	}
	header /page Content-Type "text/html; charset=utf-8"
	respond /page "<!doctype html><title>push_gateway cluster</title>" 200
}
`

// corsLine lets pages of any origin read the gateway's answers: what an
// operator adds for SSE and long poll to work cross-origin, since only
// <route>/nodes sends Access-Control-Allow-Origin by itself.
const corsLine = "header " + route + "* Access-Control-Allow-Origin *"

// startPageNodes starts nodes gw-a (zone z1) and gw-b (zone z2) on
// brokerURL, concurrently.
func startPageNodes(t testing.TB, brokerURL string, cors bool) (a, b *Node) {
	t.Helper()
	extra := ""
	if cors {
		extra = corsLine
	}
	ids := []string{"gw-a", "gw-b"}
	specs := make([]nodeSpec, len(ids))
	for i, id := range ids {
		config := fmt.Sprintf(clusterPageConfig, globalOptions, brokerURL, id, route,
			fmt.Sprintf("z%d", i+1), clusterNodeTTL, extra, route)
		specs[i] = nodeSpec{config: config, adapter: "caddyfile"}
	}
	nodes := startNodes(t, ids, specs)
	return nodes[0], nodes[1]
}

// pageState is what integration/browser/cluster.mjs reports of the page.
type pageState struct {
	Ready bool   `json:"ready"`
	Error string `json:"error"`
	Log   []struct {
		Key       string          `json:"key"`
		Seq       uint64          `json:"seq"`
		Epoch     string          `json:"epoch"`
		Data      json.RawMessage `json:"data"`
		Transport string          `json:"transport"`
		Node      string          `json:"node"` // the client's node when the message arrived
	} `json:"log"`
	Nodes []struct { // every node a connection came up on, in order
		ID      string `json:"id"`
		Address string `json:"address"`
		At      int64  `json:"at"` // Unix ms
	} `json:"nodes"`
	Transports    []string          `json:"transports"`
	Resyncs       []json.RawMessage `json:"resyncs"`
	Errors        []string          `json:"errors"`
	ConsoleErrors []string          `json:"consoleErrors"`
	Node          struct {
		ID      string `json:"id"`
		Address string `json:"address"`
	} `json:"node"`
	Transport string       `json:"transport"`
	List      []listedNode `json:"list"`
}

// seqs lists the seqs the page delivered, in order.
func (s pageState) seqs() []uint64 {
	out := make([]uint64, len(s.Log))
	for i, m := range s.Log {
		out[i] = m.Seq
	}
	return out
}

// browserPage is a running cluster.mjs.
type browserPage struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan []byte // stdout, one JSON state per line; closed at EOF
	logPath string
	done    chan struct{}
}

// startBrowserPage runs cluster.mjs against site for key and waits until
// the page delivers over its first transport.
func startBrowserPage(t testing.TB, nodeBin string, site *Node, key, transports string) (*browserPage, pageState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	p := &browserPage{
		lines:   make(chan []byte, 16),
		logPath: filepath.Join(t.TempDir(), "cluster.mjs.log"),
		done:    make(chan struct{}),
	}
	logf, err := os.Create(p.logPath)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p.cmd = exec.CommandContext(ctx, nodeBin, "browser/cluster.mjs")
	p.cmd.Env = append(os.Environ(),
		"PG_SITE="+site.HTTP,
		"PG_ROUTE="+route,
		"PG_KEY="+key,
		"PG_TRANSPORTS="+transports,
		"PG_CHROMIUM="+chromiumPath,
	)
	p.cmd.Stderr = logf
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting cluster.mjs: %v", err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
		for sc.Scan() {
			p.lines <- bytes.Clone(sc.Bytes())
		}
	}()
	go func() {
		_ = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_, _ = io.WriteString(p.stdin, `{"quit":true}`+"\n")
		_ = p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			cancel() // kills node; Chromium goes with playwright's pipe
			<-p.done
		}
		cancel()
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			t.Logf("cluster.mjs log:\n%s", b)
		}
	})
	s := p.read(t, 45*time.Second)
	if !s.Ready {
		t.Fatalf("page not ready: %+v", s)
	}
	return p, s
}

// read waits up to timeout for the script's next state line; an error in
// the state is left to the caller, a missing line fails the test.
func (p *browserPage) read(t testing.TB, timeout time.Duration) pageState {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			<-p.done
			b, _ := os.ReadFile(p.logPath)
			t.Fatalf("cluster.mjs ended (%v); its log:\n%s", p.cmd.ProcessState, b)
		}
		var s pageState
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("cluster.mjs: %q: %v", line, err)
		}
		return s
	case <-time.After(timeout):
		t.Fatalf("cluster.mjs: no answer after %v", timeout)
	}
	return pageState{}
}

// wait asks the page to wait until it holds count messages and is up on
// node (empty: any), at most timeout.
func (p *browserPage) wait(t testing.TB, count int, node string, timeout time.Duration) pageState {
	t.Helper()
	w := map[string]any{"count": count, "timeout_ms": timeout.Milliseconds()}
	if node != "" {
		w["node"] = node
	}
	b, _ := json.Marshal(map[string]any{"wait": w})
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("cluster.mjs: %v", err)
	}
	return p.read(t, timeout+10*time.Second)
}

// checkRun fails unless the page delivered exactly seqs 1..n of key, in
// order, in one epoch, each carrying its seq as data.
func checkRun(t testing.TB, s pageState, key string, n uint64) {
	t.Helper()
	got := s.seqs()
	if uint64(len(got)) != n {
		t.Fatalf("page delivered seqs %v, want 1..%d", got, n)
	}
	for i, m := range s.Log {
		if m.Key != key || m.Seq != uint64(i)+1 || m.Epoch != s.Log[0].Epoch || string(m.Data) != fmt.Sprint(m.Seq) {
			t.Fatalf("message %d: %+v (data %s); seqs %v, want 1..%d in epoch %s", i, m, m.Data, got, n, s.Log[0].Epoch)
		}
	}
	if len(s.Resyncs) > 0 {
		t.Errorf("resyncs: %s", s.Resyncs)
	}
}

// TestBrowserClusterFailover: the page on node A follows K; 1..5 are
// published through node B's admin API; A goes away; 6..10 through B. The
// page must end on node B with exactly 1..10, in order: it found B in the
// node list (the one it read at start when A died without a word) and
// resumed there from its position.
func TestBrowserClusterFailover(t *testing.T) {
	nodeBin, err := browserTools()
	if err != nil {
		t.Fatal(err)
	}
	kill := func(n *Node) { n.Kill() }
	stop := func(n *Node) { n.Stop() }
	for _, tc := range []struct {
		name       string
		transports string // the client's, in order of preference
		first      string // the transport the page starts on
		cors       bool   // the site lets any origin read the gateway's answers
		goAway     func(*Node)
		// told1001: the client leaves on the 1001 itself, without first
		// trying the node again (as it does after a drop with no word).
		told1001 bool
	}{
		{name: "killed", transports: "websocket,sse,poll", first: "websocket", goAway: kill},
		{name: "graceful stop", transports: "websocket,sse,poll", first: "websocket", goAway: stop, told1001: true},
		// SSE and long poll across origins need the CORS header on the
		// gateway's answers; WebSocket does not.
		{name: "killed, sse", transports: "sse", first: "sse", cors: true, goAway: kill},
		{name: "killed, poll", transports: "poll", first: "poll", cors: true, goAway: kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redis := redistest.Start(t)
			a, b := startPageNodes(t, redis.URL(), tc.cors)
			waitListed(t, a, "gw-a", "gw-b")
			key := testKey(t, "K")

			page, s := startBrowserPage(t, nodeBin, a, key, tc.transports)
			if s.Node.ID != "gw-a" || s.Transport != tc.first {
				t.Fatalf("page starts on node %+v over %q, want gw-a over %s", s.Node, s.Transport, tc.first)
			}
			if !listed(s.List, "gw-b") {
				t.Fatalf("the client's node list at start %v lacks gw-b", nodeIDs(s.List))
			}

			publishRange(t, b, key, 1, 5)
			s = page.wait(t, 5, "", 15*time.Second)
			if s.Error != "" {
				t.Fatalf("%s; page delivered %v", s.Error, s.seqs())
			}
			checkRun(t, s, key, 5)
			for _, m := range s.Log {
				if m.Node != "gw-a" {
					t.Fatalf("seq %d delivered on node %q, want gw-a", m.Seq, m.Node)
				}
			}

			gone := time.Now()
			tc.goAway(a)
			t.Logf("node A gone after %v", time.Since(gone).Round(time.Millisecond))
			publishRange(t, b, key, 6, 10)

			s = page.wait(t, 10, "gw-b", 45*time.Second)
			if s.Error != "" {
				t.Fatalf("%s; page delivered %v, on node %+v over %q; nodes %+v; client errors %v; console errors %q",
					s.Error, s.seqs(), s.Node, s.Transport, s.Nodes, s.Errors, s.ConsoleErrors)
			}
			checkRun(t, s, key, 10)
			for _, m := range s.Log[5:] {
				if m.Node != "gw-b" || m.Transport != tc.first {
					t.Errorf("seq %d delivered on node %q over %s, want gw-b over %s", m.Seq, m.Node, m.Transport, tc.first)
				}
			}
			var ids []string
			for _, n := range s.Nodes {
				ids = append(ids, n.ID)
			}
			if len(ids) == 0 || ids[len(ids)-1] != "gw-b" || strings.Count(strings.Join(ids, ","), "gw-b") != 1 {
				t.Errorf("nodes the client was up on: %v, want … gw-a, gw-b", ids)
			}
			if n := s.Nodes[len(s.Nodes)-1]; n.At > 0 {
				t.Logf("up on gw-b %d ms after node A was told to go; transports %v", n.At-gone.UnixMilli(), s.Transports)
			}
			if tc.told1001 {
				retried := "WebSocket connection to '" + a.WSURL(route) + "' failed"
				for _, e := range s.ConsoleErrors {
					if strings.Contains(e, retried) {
						t.Errorf("the client tried node A again after its 1001: %s", e)
					}
				}
			}
			if len(s.ConsoleErrors) > 0 {
				// A dead node's refused connections log errors by design.
				t.Logf("browser console errors (%d), first: %s", len(s.ConsoleErrors), s.ConsoleErrors[0])
			}
		})
	}
}

// TestBrowserClusterClientUnit runs integration/browser/client_discover.mjs:
// the client's node discovery under node with a fake WebSocket and fetch
// playing several nodes, for what real nodes cannot be made to do on cue
// (a list naming nodes that refuse, a pick overtaken by a reconnect).
func TestBrowserClusterClientUnit(t *testing.T) {
	runClientTests(t, "client_discover.mjs", 6)
}
