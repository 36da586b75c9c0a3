package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// shedStats is the "shedding" object of GET /push_gateway/stats.
type shedStats struct {
	Enabled     bool     `json:"enabled"`
	Active      bool     `json:"active"`
	Reasons     []string `json:"reasons"`
	HeapBytes   int64    `json:"heap_bytes"`
	FanoutLagMS int64    `json:"fanout_lag_ms"`
	Refused     uint64   `json:"refused"`
	Closed      uint64   `json:"closed"`
	ClosedBy    struct {
		Memory    uint64 `json:"memory"`
		FanoutLag uint64 `json:"fanout_lag"`
	} `json:"closed_by"`
	Since int64 `json:"since"`
}

func (n *Node) shedding(t testing.TB) shedStats {
	t.Helper()
	var v struct {
		Shedding shedStats `json:"shedding"`
	}
	n.statsInto(t, &v)
	return v.Shedding
}

// sheddingOption is the global shedding block with the given lines.
func sheddingOption(lines ...string) string {
	return "shedding {\n\t\t\t" + strings.Join(lines, "\n\t\t\t") + "\n\t\t}"
}

// upgradeStatus sends a WebSocket handshake with net/http and returns the
// answer's status and Retry-After (a refused upgrade is a plain response).
func upgradeStatus(t testing.TB, n *Node, pathQuery string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.HTTP+pathQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("upgrade request: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The server now speaks WebSocket on it: not a keep-alive to reuse.
		resp.Body.Close()
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), body.Error
}

// TestShedMemoryBudget: with a budget below what the process needs, the
// gateway sheds for "memory": new WebSockets get 503 with Retry-After and
// the stats say why; a reload raising the budget lets them in again.
func TestShedMemoryBudget(t *testing.T) {
	tight := caddyfile([]string{sheddingOption("memory_budget 1MiB", "retry_after 7s")}, nil)
	roomy := caddyfile([]string{sheddingOption("memory_budget 4GiB", "retry_after 7s")}, nil)
	n := startCaddy(t, tight)
	key := testKey(t, "k")

	eventually(t, 10*time.Second, func() (bool, string) {
		st := n.shedding(t)
		return st.Active && slices.Equal(st.Reasons, []string{"memory"}), fmt.Sprintf("shedding %+v", st)
	})
	status, retry, msg := upgradeStatus(t, n, route+"?sdk_key="+key)
	if status != http.StatusServiceUnavailable || retry != "7" || !strings.Contains(msg, "overloaded") {
		t.Fatalf("upgrade while shedding: %d, Retry-After %q, error %q; want 503, 7, overloaded", status, retry, msg)
	}
	st := n.shedding(t)
	if st.Refused == 0 || st.HeapBytes <= 1<<20 || st.Since == 0 || !st.Enabled {
		t.Fatalf("stats while shedding: %+v", st)
	}
	t.Logf("shedding for memory: heap %d bytes over a budget of 1MiB, %d refused", st.HeapBytes, st.Refused)

	n.Reload(t, roomy)
	eventually(t, 10*time.Second, func() (bool, string) {
		st := n.shedding(t)
		return !st.Active, fmt.Sprintf("shedding %+v after raising the budget", st)
	})
	c := Dial(t, n.WSURL(route))
	c.Register(t, key)
	n.PublishOK(t, key, "", `1`)
	c.ExpectMessage(t, key, 1)
	if st := n.shedding(t); len(st.Reasons) != 0 || st.Since != 0 {
		t.Fatalf("stats after recovery: %+v", st)
	}
}

// TestShedFanoutLag: a few readers that stopped reading (small socket
// buffers, a queue that does not overflow) make the fan-out lag cross
// max_fanout_lag: they are closed with the error message and 4503, while
// the clients that read keep every message in order.
func TestShedFanoutLag(t *testing.T) {
	skipShort(t)
	const healthyN, stalledN, maxPublishes = 20, 3, 600
	n := startCaddy(t, caddyfile([]string{sheddingOption("max_fanout_lag 1s")}, []string{"queue_size 65536"}))
	key := testKey(t, "k")
	healthy := dialMany(t, healthyN, func(int) string { return n.WSURL(route + "?sdk_key=" + key) }, DialOpts{}, true)
	stalled := dialMany(t, stalledN, func(int) string { return n.WSURL(route + "?sdk_key=" + key) },
		DialOpts{NoReader: true, RecvBuf: 4096}, false)
	eventually(t, msgTimeout, func() (bool, string) {
		_, ki, b := n.Key(t, key)
		return ki.Followers == healthyN+stalledN, fmt.Sprintf("key info %s", b)
	})
	readers := startSeqReaders(healthy, key)

	// 64 KiB messages: a stalled reader's backlog soon outgrows what its
	// socket buffers take (the send buffer autotunes up to 4 MiB).
	big := `"` + strings.Repeat("x", 64<<10) + `"`
	published := 0
	var st shedStats
	for published < maxPublishes {
		published++
		n.PublishOK(t, key, "", big)
		eventually(t, 60*time.Second, func() (bool, string) {
			return readers.minSeen()+16 >= uint64(published), fmt.Sprintf("readers at %d of %d", readers.minSeen(), published)
		})
		if published%8 == 0 {
			if st = n.shedding(t); st.ClosedBy.FanoutLag >= stalledN {
				break
			}
		}
	}
	if st.ClosedBy.FanoutLag < stalledN {
		t.Fatalf("after %d messages of 64 KiB: shedding %+v, want %d closes for fanout_lag", published, st, stalledN)
	}
	t.Logf("after %d messages: shedding %+v", published, st)
	if st.ClosedBy.FanoutLag != stalledN || st.Closed != stalledN {
		t.Fatalf("shedding closed %d (%d for lag), want exactly the %d stalled readers", st.Closed, st.ClosedBy.FanoutLag, stalledN)
	}
	// The readers that read go on, untouched.
	for range 5 {
		published++
		n.PublishOK(t, key, "", `"small"`)
	}
	published++
	n.PublishOK(t, key, "end", `"end"`)
	readers.finish(t, uint64(published))
	// The stalled ones find what was in flight, the error, then 4503.
	for i, c := range stalled {
		c.StartReader()
		before := c.ExpectClose(t, 4503, 60*time.Second)
		if len(before) == 0 || before[len(before)-1].Type != "error" || !strings.Contains(string(before[len(before)-1].Raw), `"overloaded"`) {
			t.Fatalf("stalled reader %d: last message before 4503 %s, want the overloaded error", i, lastRaw(before))
		}
	}
	// With the stalled readers gone the lag is too: shedding ends by itself.
	eventually(t, 10*time.Second, func() (bool, string) {
		st := n.shedding(t)
		return !st.Active, fmt.Sprintf("shedding %+v", st)
	})
	closeAll(stalled)
	eventually(t, 10*time.Second, func() (bool, string) {
		got := n.Stats(t).Connections.WebSocket
		return got == healthyN, fmt.Sprintf("%d websockets, want the %d healthy ones", got, healthyN)
	})
}
