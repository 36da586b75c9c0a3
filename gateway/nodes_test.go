package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pushgateway/push_gateway/hub"
)

// fakeRegistry is a hub.Registry whose answers the test sets, recording
// what the engine asks of it.
type fakeRegistry struct {
	mu        sync.Mutex
	nodes     []hub.Node // Nodes' answer
	nodesErr  error      // Nodes' error
	failNext  int        // announcements still to fail
	announced []hub.Node // every successful announcement, in order
	ttls      []time.Duration
	left      []string
	onLeave   func(id string) // called inside Leave, without mu
}

func (f *fakeRegistry) Announce(_ context.Context, n hub.Node, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 {
		f.failNext--
		return hub.ErrUnavailable
	}
	f.announced = append(f.announced, n)
	f.ttls = append(f.ttls, ttl)
	return nil
}

func (f *fakeRegistry) Leave(_ context.Context, id string) error {
	if f.onLeave != nil {
		f.onLeave(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left = append(f.left, id)
	return nil
}

func (f *fakeRegistry) Nodes(context.Context) ([]hub.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hub.Node(nil), f.nodes...), f.nodesErr
}

// snapshot returns copies of what the registry recorded.
func (f *fakeRegistry) snapshot() (announced []hub.Node, left []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hub.Node(nil), f.announced...), append([]string(nil), f.left...)
}

// nodesEngine starts an Engine on cfg behind an HTTP server and returns it
// with the server's base URL.
func nodesEngine(t testing.TB, cfg Config, logger *zap.Logger) (*Engine, string) {
	t.Helper()
	e, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	route := e.Route("test")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = e.ServeHTTP(w, r, route)
	}))
	t.Cleanup(func() { srv.Close(); e.Shutdown() })
	return e, srv.URL
}

func TestNodesEndpoint(t *testing.T) {
	listed := []hub.Node{
		{ID: "busy", Address: "wss://b.example/realtime", Connections: 9},
		{ID: "idle-b", Address: "wss://i2.example/realtime", Zone: "z2", Connections: 1},
		{ID: "idle-a", Address: "wss://i1.example/realtime", Zone: "z1", Connections: 1},
	}
	tests := []struct {
		name     string
		registry *fakeRegistry // nil: single node
		node     NodeInfo
		method   string
		path     string
		header   http.Header
		status   int
		wantIDs  []string // nil: the answer is not a node list
		wantBody string   // substring, when set
	}{
		{name: "least loaded first, ties by id", registry: &fakeRegistry{nodes: listed},
			method: "GET", path: "/realtime/nodes", status: 200, wantIDs: []string{"idle-a", "idle-b", "busy"}},
		{name: "any route prefix", registry: &fakeRegistry{nodes: listed},
			method: "GET", path: "/server/realtime/nodes?x=1", status: 200, wantIDs: []string{"idle-a", "idle-b", "busy"}},
		{name: "empty list is an empty array", registry: &fakeRegistry{},
			method: "GET", path: "/realtime/nodes", status: 200, wantIDs: []string{}, wantBody: `{"nodes":[]}`},
		{name: "single node lists itself", node: NodeInfo{ID: "me", Address: "ws://me.example/realtime", Zone: "here"},
			method: "GET", path: "/realtime/nodes", status: 200, wantIDs: []string{"me"},
			wantBody: `{"id":"me","address":"ws://me.example/realtime","zone":"here","connections":0,"started":`},
		{name: "head", registry: &fakeRegistry{nodes: listed}, method: "HEAD", path: "/realtime/nodes", status: 200},
		{name: "registry down", registry: &fakeRegistry{nodesErr: hub.ErrUnavailable},
			method: "GET", path: "/realtime/nodes", status: 503, wantBody: `{"error":"node list unavailable"}`},
		{name: "post is no node list", method: "POST", path: "/realtime/nodes", status: 405},
		{name: "sse on the path is the sse transport", method: "GET", path: "/realtime/nodes",
			header: http.Header{"Accept": {"text/event-stream"}}, status: 400, wantBody: `sdk_key`},
		{name: "other suffix is a long poll", method: "GET", path: "/realtime/nodesX", status: 400, wantBody: `sdk_key`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Node: tc.node}
			if tc.registry != nil {
				cfg.Registry = tc.registry
			}
			_, base := nodesEngine(t, cfg, nil)
			resp, body := doRequest(t, context.Background(), tc.method, base+tc.path, tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.wantBody != "" && !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("body %s, want it to contain %s", body, tc.wantBody)
			}
			isList := tc.status == 200 || tc.status == 503 && tc.wantIDs == nil && tc.registry != nil
			if isList {
				for k, want := range map[string]string{
					"Content-Type": "application/json", "Cache-Control": "no-store", "Access-Control-Allow-Origin": "*",
				} {
					if got := resp.Header.Get(k); got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
			} else if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("a transport's answer carries Access-Control-Allow-Origin")
			}
			if tc.wantIDs == nil {
				return
			}
			var ans struct{ Nodes []hub.Node }
			if err := json.Unmarshal(body, &ans); err != nil {
				t.Fatalf("answer %s: %v", body, err)
			}
			ids := []string{}
			for _, n := range ans.Nodes {
				ids = append(ids, n.ID)
			}
			if strings.Join(ids, " ") != strings.Join(tc.wantIDs, " ") {
				t.Fatalf("nodes %q, want %q", ids, tc.wantIDs)
			}
		})
	}
}

// TestNodeAnnouncements: the engine announces its identity, load and TTL
// every TTL/3, re-announces at once under a reloaded identity (leaving the
// list under the old ID), and on Shutdown leaves before it closes a single
// connection.
func TestNodeAnnouncements(t *testing.T) {
	reg := &fakeRegistry{}
	const ttl = 60 * time.Millisecond
	cfg := Config{Registry: reg, NodeTTL: ttl, Node: NodeInfo{ID: "a", Address: "ws://a.example/realtime", Zone: "z"}}
	e, base := nodesEngine(t, cfg, nil)
	c := dialWS(t, "ws"+strings.TrimPrefix(base, "http")+"/realtime?sdk_key=k")
	c.expect("registered")

	pollEventually(t, 5*time.Second, "an announcement counting the connection", func() bool {
		a, _ := reg.snapshot()
		return len(a) >= 2 && a[len(a)-1].Connections == 1
	})
	a, _ := reg.snapshot()
	first := a[0]
	if first.ID != "a" || first.Address != "ws://a.example/realtime" || first.Zone != "z" || first.Started == 0 || first.Updated < first.Started {
		t.Fatalf("first announcement %+v", first)
	}
	reg.mu.Lock()
	gotTTL := reg.ttls[0]
	reg.mu.Unlock()
	if gotTTL != ttl {
		t.Fatalf("announced with ttl %v, want %v", gotTTL, ttl)
	}

	cfg.Node.ID, cfg.NodeTTL = "b", time.Hour // no more periodic announcements: the next one is Configure's
	e.Configure(cfg)
	pollEventually(t, 5*time.Second, "an announcement as b", func() bool {
		a, _ := reg.snapshot()
		return a[len(a)-1].ID == "b"
	})
	a, left := reg.snapshot()
	if len(left) != 1 || left[0] != "a" {
		t.Fatalf("left %q after the ID changed, want [a]", left)
	}
	if last := a[len(a)-1]; last.Started != first.Started {
		t.Fatalf("Started changed with the ID: %d, want %d", last.Started, first.Started)
	}
	if got := e.Stats().Node; got != cfg.Node {
		t.Fatalf("stats node %+v, want %+v", got, cfg.Node)
	}

	var connsAtLeave int64 = -1
	reg.onLeave = func(string) { connsAtLeave = e.Stats().Connections.Total }
	stopped := make(chan struct{})
	go func() { defer close(stopped); e.Shutdown() }()
	c.expectClose(1001)
	c.nc.Close() // take the 1001: Shutdown need not wait for us
	<-stopped
	if _, left := reg.snapshot(); len(left) != 2 || left[1] != "b" {
		t.Fatalf("left %q after Shutdown, want [a b]", left)
	}
	if connsAtLeave != 1 {
		t.Fatalf("%d connections when the node left the list, want 1: leave before closing", connsAtLeave)
	}
	n := len(a)
	if a, _ := reg.snapshot(); len(a) != n {
		t.Fatalf("%d announcements after Shutdown", len(a)-n)
	}
}

// TestNodeAnnouncementFailuresLoggedOnce: a registry failing several times
// in a row is logged once, and once more when it recovers.
func TestNodeAnnouncementFailuresLoggedOnce(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	reg := &fakeRegistry{failNext: 4}
	nodesEngine(t, Config{Registry: reg, NodeTTL: 30 * time.Millisecond}, zap.New(core))
	pollEventually(t, 5*time.Second, "an announcement after the failures", func() bool {
		a, _ := reg.snapshot()
		return len(a) > 0
	})
	failed := logs.FilterMessageSnippet("node announcement failed").All()
	recovered := logs.FilterMessageSnippet("node announcement recovered").All()
	if len(failed) != 1 || len(recovered) != 1 {
		t.Fatalf("%d failure and %d recovery logs, want 1 each", len(failed), len(recovered))
	}
	if err, _ := failed[0].ContextMap()["error"].(string); !strings.Contains(err, "broker unavailable") {
		t.Fatalf("failure logged without its error: %v", failed[0].ContextMap())
	}
}

// TestNodeNeverListedDoesNotLeave: a node whose announcements all failed
// does not wait on the registry when it stops.
func TestNodeNeverListedDoesNotLeave(t *testing.T) {
	reg := &fakeRegistry{failNext: 1 << 30}
	e, err := New(Config{Registry: reg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Shutdown()
	if _, left := reg.snapshot(); len(left) != 0 {
		t.Fatalf("left %q", left)
	}
}

func TestSingleNodeIdentity(t *testing.T) {
	e, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	id := e.NodeID()
	if !strings.Contains(id, "-") || len(id) < 8 {
		t.Fatalf("default node id %q, want host-xxxxxx", id)
	}
	nodes, err := e.Nodes(context.Background())
	if err != nil || len(nodes) != 1 || nodes[0].ID != id {
		t.Fatalf("Nodes = %+v, %v; want this node only, at once", nodes, err)
	}
	e.Configure(Config{HistorySize: 10}) // no node_id: the default stays
	if got := e.NodeID(); got != id {
		t.Fatalf("node id %q after a reload, want %q kept", got, id)
	}
	st, err := json.Marshal(e.Stats())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"node":{"id":"` + id + `"}`, `"broker":{"mode":"memory","state":"up"}`} {
		if !strings.Contains(string(st), want) {
			t.Errorf("stats %s, want %s", st, want)
		}
	}
	if other := DefaultNodeID(); other == id {
		t.Errorf("two default node ids are both %q", id)
	}
}

func TestNodesError(t *testing.T) {
	e, err := New(Config{Registry: &fakeRegistry{nodesErr: hub.ErrUnavailable}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	if _, err := e.Nodes(context.Background()); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Nodes error %v, want it to wrap hub.ErrUnavailable", err)
	}
}

// nopBroker is a hub.Broker that shares nothing, recording the history
// settings the engine hands it.
type nopBroker struct {
	mu    sync.Mutex
	sizes []int
	ttls  []time.Duration
}

func (*nopBroker) Start(hub.Sink) {}
func (*nopBroker) Publish(context.Context, string, string, []byte) (hub.Entry, error) {
	return hub.Entry{}, hub.ErrUnavailable
}
func (*nopBroker) Track(string)                  {}
func (*nopBroker) Untrack(string)                {}
func (*nopBroker) Refill(string, string, uint64) {}
func (*nopBroker) State(context.Context, string) (hub.Snapshot, bool, error) {
	return hub.Snapshot{}, false, nil
}
func (*nopBroker) Drop(context.Context, string) (hub.Snapshot, bool, error) {
	return hub.Snapshot{}, false, nil
}
func (b *nopBroker) Configure(size int, ttl time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, size)
	b.ttls = append(b.ttls, ttl)
}

// TestBrokerSettingsAndStatus: a broker keeping history gets the history
// settings, defaults filled in, from New and every Configure; Stats shows
// its status.
func TestBrokerSettingsAndStatus(t *testing.T) {
	b := &nopBroker{}
	e, err := New(Config{Broker: b, BrokerStatus: func() any { return map[string]string{"mode": "test", "state": "down"} }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	e.Configure(Config{HistorySize: 7, HistoryTTL: time.Minute})
	b.mu.Lock()
	sizes, ttls := b.sizes, b.ttls
	b.mu.Unlock()
	if len(sizes) != 2 || sizes[0] != hub.DefaultHistorySize || ttls[0] != hub.DefaultHistoryTTL || sizes[1] != 7 || ttls[1] != time.Minute {
		t.Fatalf("broker configured with sizes %v ttls %v", sizes, ttls)
	}
	st, err := json.Marshal(e.Stats())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), `"broker":{"mode":"test","state":"down"}`) {
		t.Fatalf("stats %s", st)
	}
}
