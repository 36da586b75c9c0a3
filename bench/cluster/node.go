package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/gwadmin"
	"github.com/pushgateway/push_gateway/bench/internal/serverproc"
)

// route is where the gateway serves clients, as in
// caddyfile-examples/plain.
const route = "/realtime"

// caddyfile is a node's configuration: the global push_gateway block
// (clusterOptions, empty for the single node), a heartbeat and idle
// timeout far beyond the run so that no ping or close falls inside a
// measurement.
const caddyfile = `{
	admin 127.0.0.1:%d
	persist_config off
	auto_https off
%s}
http://127.0.0.1:%d {
	bind 127.0.0.1
	push_gateway %s* {
		heartbeat 1h
		idle_timeout 2h
	}
}
`

// clusterOptions makes a node of the cluster on the Redis at redisURL.
const clusterOptions = `	push_gateway {
		broker redis %s
		node_id %s
		node_address ws://127.0.0.1:%d%s
	}
`

// node is one running caddy.
type node struct {
	*serverproc.Proc
	name   string // "a" or "b"
	client string // host:port of the site
	admin  string // host:port of the admin endpoint
}

// adminClient publishes and reads stats. Its transport keeps a keep-alive
// connection per concurrent publisher: the default keeps two, and every
// other publisher would dial, and time, a new connection per publish.
var adminClient = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     time.Minute,
	},
}

// startNode runs caddy bin as node name in dir/name; redisURL "" is the
// single node with its in-process hub.
func startNode(bin, dir, name, redisURL string) (*node, error) {
	ports, err := serverproc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	ap, cp := ports[0], ports[1]
	opts := ""
	if redisURL != "" {
		opts = fmt.Sprintf(clusterOptions, redisURL, name, cp, route)
	}
	cfg := fmt.Appendf(nil, caddyfile, ap, opts, cp, route)
	p, err := serverproc.StartCaddy(bin, filepath.Join(dir, name), cfg)
	if err != nil {
		return nil, err
	}
	n := &node{
		Proc:   p,
		name:   name,
		client: fmt.Sprintf("127.0.0.1:%d", cp),
		admin:  fmt.Sprintf("127.0.0.1:%d", ap),
	}
	if err := n.WaitReady(30*time.Second, func() error {
		_, err := n.stats()
		return err
	}); err != nil {
		n.Stop()
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	return n, nil
}

// nodeStats is the part of GET /push_gateway/stats the run reads. Broker
// is kept raw: its fields are the broker's own.
type nodeStats struct {
	Connections struct {
		WebSocket int64 `json:"websocket"`
	} `json:"connections"`
	Published int64           `json:"published"`
	Delivered int64           `json:"delivered"`
	Dropped   int64           `json:"dropped"`
	Broker    json.RawMessage `json:"broker"`
}

func (n *node) stats() (nodeStats, error) {
	var st nodeStats
	err := gwadmin.Stats(adminClient, n.admin, &st)
	return st, err
}

// brokerCounts answers the "publishes" and "round_trips" counters of the
// stats' broker object; ok is false when either is absent.
func (st nodeStats) brokerCounts() (publishes, roundTrips int64, ok bool) {
	if len(st.Broker) == 0 {
		return 0, 0, false
	}
	var b struct {
		Publishes  *int64 `json:"publishes"`
		RoundTrips *int64 `json:"round_trips"`
	}
	if err := json.Unmarshal(st.Broker, &b); err != nil || b.Publishes == nil || b.RoundTrips == nil {
		return 0, 0, false
	}
	return *b.Publishes, *b.RoundTrips, true
}

// publishBody is one message to key: its index and the wall clock, which
// the followers read back.
func publishBody(key string, i int, now time.Time) string {
	return `{"sdk_key":"` + key + `","data":{"i":` + strconv.Itoa(i) + `,"t":` + strconv.FormatInt(now.UnixNano(), 10) + `}}`
}

// publish posts one message to key on n and answers how long the admin
// took to answer.
func (n *node) publish(key string, i int) (time.Duration, error) {
	start := time.Now()
	if _, err := gwadmin.Publish(adminClient, n.admin, publishBody(key, i, start)); err != nil {
		return 0, fmt.Errorf("node %s: %w", n.name, err)
	}
	return time.Since(start), nil
}

// waitConns polls n's stats until it counts want WebSocket connections.
func (n *node) waitConns(want int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := n.stats()
		if err != nil {
			return err
		}
		if st.Connections.WebSocket == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: %d websocket connections after %v, want %d", n.name, st.Connections.WebSocket, limit, want)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}
