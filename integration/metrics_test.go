package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// metricsScrape is one GET of the admin endpoint's /metrics: every sample
// line as written (`name{labels}` → value), and how often each appeared.
type metricsScrape struct {
	values map[string]float64
	seen   map[string]int
}

// scrapeMetrics reads Caddy's /metrics on the admin endpoint.
func (n *Node) scrapeMetrics(t testing.TB) metricsScrape {
	t.Helper()
	status, b := n.AdminDo(t, http.MethodGet, "/metrics", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, truncate(b, 300))
	}
	s := metricsScrape{values: map[string]float64{}, seen: map[string]int{}}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q: %v", line, err)
		}
		s.values[line[:i]] = v
		s.seen[line[:i]]++
	}
	return s
}

// get returns the sample named name and whether it was there.
func (s metricsScrape) get(name string) (float64, bool) {
	v, ok := s.values[name]
	return v, ok
}

// check describes how the samples in want differ from the scrape ("" when
// they all hold). Each want is a predicate on the sample's value.
func (s metricsScrape) check(want map[string]func(float64) bool) string {
	var bad []string
	for name, ok := range want {
		v, present := s.get(name)
		switch {
		case !present:
			bad = append(bad, name+" missing")
		case s.seen[name] != 1:
			bad = append(bad, fmt.Sprintf("%s appears %d times", name, s.seen[name]))
		case !ok(v):
			bad = append(bad, fmt.Sprintf("%s = %v", name, v))
		}
	}
	return strings.Join(bad, "; ")
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func atLeast(want float64) func(float64) bool {
	return func(v float64) bool { return v >= want }
}

// TestMetrics: Caddy's own /metrics on the admin endpoint serves the
// gateway's series with the values of a WebSocket, an SSE stream and a held
// long poll receiving one publish; after a reload they are served once,
// still counting from before.
func TestMetrics(t *testing.T) {
	n := startCaddy(t, caddyfile(nil, nil))
	key := testKey(t, "k")

	ws := Dial(t, n.WSURL(route))
	epoch := ws.Register(t, key).Epoch
	sse := openSSE(t, sseHTTP1, sseURL(n.HTTP, key, ""), nil)
	sse.event(t) // the position the stream starts at
	poll := HeldPoll(t, n, pollClient, n.HTTP, pollQuery("25s", "", pollPos{key: key, since: 0, epoch: epoch}), 0)

	eventually(t, msgTimeout, func() (bool, string) {
		bad := n.scrapeMetrics(t).check(map[string]func(float64) bool{
			`push_gateway_connections{transport="websocket"}`: eq(1),
			`push_gateway_connections{transport="sse"}`:       eq(1),
			`push_gateway_connections{transport="poll"}`:      eq(1),
			`push_gateway_connections{transport="socketio"}`:  eq(0),
		})
		return bad == "", bad
	})

	p := n.PublishOK(t, key, "", `{"on":true}`)
	ws.ExpectMessage(t, key, p.Seq)
	sse.expectEvent(t, p.Epoch, p.Seq, `{"on":true}`)
	recvPoll(t, poll)

	after := map[string]func(float64) bool{
		`push_gateway_publishes_total`:  eq(1),
		`push_gateway_deliveries_total`: atLeast(3), // websocket, sse, poll
		`push_gateway_registers_total`:  atLeast(3),
		`push_gateway_history_bytes`:    atLeast(1),
		`push_gateway_history_messages`: eq(1),
		`push_gateway_keys`:             eq(1),
		// The WebSocket's and the SSE stream's writes: long polls are
		// answered by their handler, not measured.
		`push_gateway_publish_write_latency_seconds_count`:             atLeast(2),
		`push_gateway_publish_write_latency_seconds_bucket{le="+Inf"}`: atLeast(2),
		`push_gateway_publish_write_latency_seconds_sum`:               func(v float64) bool { return v > 0 && v < 60 },
		`push_gateway_broker_state{state="up"}`:                        eq(1),
		`push_gateway_broker_state{state="down"}`:                      eq(0),
		`push_gateway_refusals_total{reason="upgrade_rate"}`:           eq(0),
		`push_gateway_slow_consumer_closes_total`:                      eq(0),
		`push_gateway_shedding_active`:                                 eq(0),
	}
	var before metricsScrape
	eventually(t, msgTimeout, func() (bool, string) {
		before = n.scrapeMetrics(t)
		bad := before.check(after)
		return bad == "", bad
	})

	// A reload makes a new registry: the series are there once, and the
	// counters go on from where they were (the Engine outlived the config).
	n.Reload(t, caddyfile([]string{"history_size 64"}, nil))
	eventually(t, msgTimeout, func() (bool, string) {
		s := n.scrapeMetrics(t)
		bad := s.check(after)
		if v, _ := s.get(`push_gateway_deliveries_total`); bad == "" && v < before.values[`push_gateway_deliveries_total`] {
			bad = fmt.Sprintf("deliveries %v after the reload, %v before", v, before.values[`push_gateway_deliveries_total`])
		}
		return bad == "", bad
	})

	// A reload that fails in provisioning leaves Caddy's admin endpoint on
	// the failed config's registry (Caddy replaces the admin server before
	// it provisions the apps): the admin module registered there too. The
	// failure comes before any push_gateway piece is provisioned: a route
	// in front of the gateway's with a handler that does not exist.
	status, cfg := n.AdminDo(t, http.MethodGet, "/config/", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /config/: %d %s", status, cfg)
	}
	var doc map[string]any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	servers := doc["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)
	for _, srv := range servers {
		srv := srv.(map[string]any)
		routes, _ := srv["routes"].([]any)
		srv["routes"] = append([]any{map[string]any{"handle": []any{map[string]any{"handler": "no_such_handler"}}}}, routes...)
	}
	bad, _ := json.Marshal(doc)
	if status, b := n.AdminDo(t, http.MethodPost, "/load", "application/json", bytes.NewReader(bad)); status == http.StatusOK {
		t.Fatalf("POST /load with an unknown handler: %d %s", status, b)
	}
	if bad := n.scrapeMetrics(t).check(after); bad != "" {
		t.Fatalf("after a failed reload: %s", bad)
	}

	n.PublishOK(t, key, "", `2`)
	ws.ExpectMessage(t, key, p.Seq+1)
	eventually(t, msgTimeout, func() (bool, string) {
		bad := n.scrapeMetrics(t).check(map[string]func(float64) bool{`push_gateway_publishes_total`: eq(2)})
		return bad == "", bad
	})
	if log := n.LogTail(400); strings.Contains(log, "registering metrics") || strings.Contains(log, "duplicate metrics") {
		t.Fatalf("metrics registration complained:\n%s", log)
	}
}
