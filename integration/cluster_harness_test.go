package integration

import (
	"encoding/json"
	"errors"
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

// This file starts gateway nodes in cluster mode (`broker redis <url>`) and
// reads what cluster mode adds: the node list, the broker's state in stats.
// Redis itself comes from internal/redistest.

// clusterNodeTTL is the node_ttl of test nodes: short, so that a killed node
// leaves the discovery list within a test's time.
const clusterNodeTTL = 3 * time.Second

// clusterNode is one gateway node of a test cluster.
type clusterNode struct {
	*Node
	ID      string
	Zone    string
	Address string // its node_address, ws://127.0.0.1:<port>/realtime
}

// clusterCaddyfile is caddyfile with a Redis broker and the node's identity.
// The address reaches the node's port through {$PORT}, which Caddy replaces
// when it adapts the Caddyfile.
func clusterCaddyfile(brokerURL, id, zone string) string {
	return caddyfile([]string{
		"broker redis " + brokerURL,
		"node_id " + id,
		"node_address ws://127.0.0.1:{$PORT}" + route,
		"node_zone " + zone,
		"node_ttl " + clusterNodeTTL.String(),
		"history_size 1024",
	}, []string{"transports websocket sse poll socketio", "poll_max_wait 5s"})
}

// startCluster starts count nodes sharing brokerURL, at once, named gw-a,
// gw-b, … in zones z1, z2 alternately.
func startCluster(t testing.TB, count int, brokerURL string) []*clusterNode {
	t.Helper()
	ids := make([]string, count)
	for i := range ids {
		ids[i] = "gw-" + string(rune('a'+i))
	}
	return startClusterNodes(t, brokerURL, ids...)
}

// startClusterNodes starts one node per id, concurrently, in zones z1, z2
// alternately.
func startClusterNodes(t testing.TB, brokerURL string, ids ...string) []*clusterNode {
	t.Helper()
	specs := make([]nodeSpec, len(ids))
	zones := make([]string, len(ids))
	for i, id := range ids {
		zones[i] = fmt.Sprintf("z%d", i%2+1)
		specs[i] = nodeSpec{config: clusterCaddyfile(brokerURL, id, zones[i]), adapter: "caddyfile"}
	}
	nodes := make([]*clusterNode, len(ids))
	for i, n := range startNodes(t, ids, specs) {
		nodes[i] = &clusterNode{Node: n, ID: ids[i], Zone: zones[i],
			Address: fmt.Sprintf("ws://127.0.0.1:%d%s", n.Port, route)}
	}
	return nodes
}

// startNodes starts one node per spec, concurrently: caddy takes a while to
// start on a loaded machine, and the nodes do not need each other. A start
// whose free ports were taken meanwhile is tried once more. names[i] names
// specs[i] in a failure.
func startNodes(t testing.TB, names []string, specs []nodeSpec) []*Node {
	t.Helper()
	nodes := make([]*Node, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; attempt < 2; attempt++ {
				nodes[i], errs[i] = tryStart(t, spec)
				if !errors.Is(errs[i], errPortTaken) {
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("starting node %s: %v", names[i], err)
		}
	}
	return nodes
}

// Kill ends the process with SIGKILL, as a crash would: no 1001, no leaving
// the node list. It returns once the process has exited.
func (n *Node) Kill() { n.end(os.Kill) }

// listedNode is one entry of a node list.
type listedNode struct {
	ID          string `json:"id"`
	Address     string `json:"address"`
	Zone        string `json:"zone"`
	Connections int    `json:"connections"`
}

var nodesClient = &http.Client{Timeout: 10 * time.Second}

// tryPublicNodes reads GET <route>/nodes on the node's site, the list a
// client picks a gateway from. It does not fail the test, for goroutines.
func tryPublicNodes(n *Node) ([]listedNode, error) {
	resp, err := nodesClient.Get(n.HTTP + route + "/nodes")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/nodes: %s %s", route, resp.Status, b)
	}
	var ans struct {
		Nodes []listedNode `json:"nodes"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return nil, fmt.Errorf("GET %s/nodes: %q: %w", route, b, err)
	}
	return ans.Nodes, nil
}

// publicNodes is tryPublicNodes for the test goroutine.
func publicNodes(t testing.TB, n *Node) []listedNode {
	t.Helper()
	ns, err := tryPublicNodes(n)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// adminNodes reads GET /push_gateway/nodes on the admin API.
func adminNodes(t testing.TB, n *Node) (self string, nodes []listedNode) {
	t.Helper()
	status, b := n.AdminDo(t, http.MethodGet, "/push_gateway/nodes", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /push_gateway/nodes: %d %s", status, b)
	}
	var ans struct {
		Self  string       `json:"self"`
		Nodes []listedNode `json:"nodes"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		t.Fatalf("GET /push_gateway/nodes: %q: %v", b, err)
	}
	return ans.Self, ans.Nodes
}

func nodeIDs(ns []listedNode) []string {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.ID
	}
	return ids
}

func listed(ns []listedNode, id string) bool {
	return slices.ContainsFunc(ns, func(n listedNode) bool { return n.ID == id })
}

// waitListed waits until n's public list holds exactly the ids given, in any
// order.
func waitListed(t testing.TB, n *Node, ids ...string) []listedNode {
	t.Helper()
	want := slices.Clone(ids)
	slices.Sort(want)
	var got []listedNode
	eventually(t, 2*clusterNodeTTL+5*time.Second, func() (bool, string) {
		got = publicNodes(t, n)
		have := nodeIDs(got)
		slices.Sort(have)
		return slices.Equal(have, want), fmt.Sprintf("listed %v, want %v", have, want)
	})
	return got
}

// clusterStats is what cluster mode adds to GET /push_gateway/stats.
type clusterStats struct {
	Node struct {
		ID      string `json:"id"`
		Address string `json:"address"`
		Zone    string `json:"zone"`
	} `json:"node"`
	Broker struct {
		Mode       string `json:"mode"`
		State      string `json:"state"`
		Reconnects uint64 `json:"reconnects"` // Pub/Sub connections re-established
	} `json:"broker"`
}

// ClusterStats reads the node's identity and broker state, with the raw
// answer for messages.
func (n *Node) ClusterStats(t testing.TB) (clusterStats, string) {
	t.Helper()
	var s clusterStats
	b := n.statsInto(t, &s)
	return s, string(b)
}

// waitBrokerState waits until the node's stats show the broker state.
func waitBrokerState(t testing.TB, n *Node, state string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() (bool, string) {
		s, raw := n.ClusterStats(t)
		return s.Broker.State == state, "stats " + raw
	})
}

// registerSince sends register for key, resuming after since in epoch, and
// expects registered.
func registerSince(t testing.TB, c *Client, key string, since uint64, epoch string) ServerMsg {
	t.Helper()
	c.Send(t, map[string]any{"type": "register", "sdk_key": key, "since": since, "epoch": epoch})
	m := c.ReadMsg(t, msgTimeout)
	if m.Type != "registered" || m.SDKKey != key {
		t.Fatalf("want registered for %s, got %s", key, m.Raw)
	}
	return m
}

// readRun reads messages from..to of key in epoch, in order, each exactly
// once: anything else first is an error. Data must be the seq unless
// anyData. It does not fail the test, for goroutines.
func readRun(c *Client, key, epoch string, from, to uint64, anyData bool) error {
	for want := from; want <= to; want++ {
		m, err := c.NextMsg(msgTimeout)
		if err != nil {
			return fmt.Errorf("waiting for seq %d: %w", want, err)
		}
		if m.Type != "message" || m.SDKKey != key || m.Seq != want || m.Epoch != epoch {
			return fmt.Errorf("want message %s seq %d epoch %s, got %s", key, want, epoch, truncate(m.Raw, 200))
		}
		if !anyData && string(m.Data) != fmt.Sprint(want) {
			return fmt.Errorf("seq %d carries data %s", want, truncate(m.Data, 100))
		}
	}
	return nil
}

// follow dials per clients on each node and registers each on key.
func follow(t testing.TB, key string, per int, nodes ...*clusterNode) []*Client {
	t.Helper()
	var followers []*Client
	for _, n := range nodes {
		for range per {
			f := Dial(t, n.WSURL(route))
			f.Register(t, key)
			followers = append(followers, f)
		}
	}
	return followers
}

// readTotalOrder reads key's messages seq 1..total on every follower at
// once, each seq exactly once and in order whatever the data, and returns
// the one epoch they all saw.
func readTotalOrder(t testing.TB, followers []*Client, key string, total uint64) string {
	t.Helper()
	epochs := make([]string, len(followers))
	inParallel(t, len(followers), len(followers), func(i int) error {
		f := followers[i]
		for want := uint64(1); want <= total; want++ {
			m, err := f.NextMsg(msgTimeout)
			if err != nil {
				return fmt.Errorf("follower %d waiting for seq %d: %w", i, want, err)
			}
			if m.Type != "message" || m.SDKKey != key || m.Seq != want || (epochs[i] != "" && m.Epoch != epochs[i]) {
				return fmt.Errorf("follower %d: want seq %d, got %s", i, want, truncate(m.Raw, 200))
			}
			epochs[i] = m.Epoch
		}
		return nil
	})
	for i, e := range epochs {
		if e != epochs[0] {
			t.Fatalf("follower %d saw epoch %s, follower 0 %s", i, e, epochs[0])
		}
	}
	return epochs[0]
}

// expectPong sends an application ping and expects the pong as the very
// next message: the connection is open and served, with nothing queued
// before the pong.
func expectPong(t testing.TB, c *Client) {
	t.Helper()
	c.Send(t, `{"type":"ping"}`)
	if m := c.ReadMsg(t, msgTimeout); m.Type != "pong" {
		t.Fatalf("want pong, got %s", m.Raw)
	}
}

// publishRange publishes seqs from..to to key on n, each carrying its seq
// as data, and checks the answers follow on from each other.
func publishRange(t testing.TB, n *Node, key string, from, to uint64) Published {
	t.Helper()
	var p Published
	for i := from; i <= to; i++ {
		p = n.PublishOK(t, key, "", fmt.Sprint(i))
		if p.Seq != i {
			t.Fatalf("publish %d of %s answered seq %d", i, key, p.Seq)
		}
	}
	return p
}

// isJSONError reports whether b is the admin API's {"error":"…"}.
func isJSONError(b []byte) bool {
	var e struct {
		Error string `json:"error"`
	}
	return json.Unmarshal(b, &e) == nil && strings.TrimSpace(e.Error) != ""
}
