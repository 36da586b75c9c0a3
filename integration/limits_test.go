package integration

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// limitsCaddyfile is the test Caddyfile with a global `limits` block.
func limitsCaddyfile(limits ...string) string {
	opts := append([]string{"limits {"}, limits...)
	return caddyfile(append(opts, "}"), nil)
}

// refusedStats is the "refused" part of GET /push_gateway/stats.
type refusedStats struct {
	Refused struct {
		MaxConnections uint64 `json:"max_connections"`
		PerIP          uint64 `json:"per_ip"`
		PerKey         uint64 `json:"per_key"`
		UpgradeRate    uint64 `json:"upgrade_rate"`
		PublishRate    uint64 `json:"publish_rate"`
	} `json:"refused"`
}

func (n *Node) refused(t testing.TB) refusedStats {
	t.Helper()
	var s refusedStats
	n.statsInto(t, &s)
	return s
}

// upgradeAnswer is the gateway's answer to a WebSocket handshake: the
// connection when it switched protocols (closed at the test's end), else
// the status, Retry-After and body of the refusal.
type upgradeAnswer struct {
	conn       net.Conn
	status     int
	retryAfter int // seconds; 0 when absent
	body       string
}

// rawUpgrade sends a WebSocket handshake for pathQuery from localIP (empty:
// the system's choice) and reads the answer. It returns an error rather
// than failing, for goroutines.
func rawUpgrade(n *Node, localIP, pathQuery string) (upgradeAnswer, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	conn, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port))
	if err != nil {
		return upgradeAnswer{}, err
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	hs := "GET " + pathQuery + " HTTP/1.1\r\nHost: 127.0.0.1:" + strconv.Itoa(n.Port) +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(nonce[:]) + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, hs); err != nil {
		conn.Close()
		return upgradeAnswer{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return upgradeAnswer{}, fmt.Errorf("reading handshake answer: %w", err)
	}
	ans := upgradeAnswer{status: resp.StatusCode}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		_ = conn.SetDeadline(time.Time{})
		ans.conn = conn
		return ans, nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	conn.Close()
	ans.body = string(b)
	if v := resp.Header.Get("Retry-After"); v != "" {
		if ans.retryAfter, err = strconv.Atoi(v); err != nil {
			return ans, fmt.Errorf("Retry-After %q is not seconds", v)
		}
	}
	return ans, nil
}

// upgrade is rawUpgrade failing the test on a transport error; an admitted
// connection is closed when the test ends.
func upgrade(t testing.TB, n *Node, localIP, pathQuery string) upgradeAnswer {
	t.Helper()
	ans, err := rawUpgrade(n, localIP, pathQuery)
	if err != nil {
		t.Fatal(err)
	}
	if ans.conn != nil {
		t.Cleanup(func() { ans.conn.Close() })
	}
	return ans
}

// wantRefused fails unless ans is a refusal with status, a Retry-After of
// at least a second and a JSON error body.
func wantRefused(t testing.TB, ans upgradeAnswer, status int) {
	t.Helper()
	if ans.status != status {
		t.Fatalf("status %d (%s), want %d", ans.status, ans.body, status)
	}
	if ans.retryAfter < 1 {
		t.Fatalf("Retry-After %d, want at least 1", ans.retryAfter)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(ans.body), &body); err != nil || body["error"] == "" {
		t.Fatalf("body %q, want {\"error\":…}", ans.body)
	}
}

func TestLimitsMaxConnections(t *testing.T) {
	n := startCaddy(t, limitsCaddyfile("max_connections 3"))
	key := testKey(t, "k")
	var clients []*Client
	for range 3 {
		clients = append(clients, Dial(t, n.WSURL(route+"?sdk_key="+key)))
		clients[len(clients)-1].ReadMsg(t, msgTimeout) // registered
	}
	// The fourth WebSocket, and a long poll, are refused before anything
	// else happens: 503 with Retry-After.
	wantRefused(t, upgrade(t, n, "", route+"?sdk_key="+key), http.StatusServiceUnavailable)
	resp, err := http.Get(n.HTTP + route + "?sdk_key=" + key + "&wait=0s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("long poll over max_connections: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The admin API still answers, and publishes reach the connected.
	p := n.PublishOK(t, key, "", `"full"`)
	for _, c := range clients {
		c.ExpectMessage(t, key, p.Seq)
	}
	if got := n.refused(t).Refused.MaxConnections; got != 2 {
		t.Fatalf("refused.max_connections %d, want 2", got)
	}
	// Closing one admits another.
	clients[0].Close()
	eventually(t, 5*time.Second, func() (bool, string) {
		ans, err := rawUpgrade(n, "", route+"?sdk_key="+key)
		if err != nil {
			return false, err.Error()
		}
		if ans.conn != nil {
			t.Cleanup(func() { ans.conn.Close() })
			return true, ""
		}
		return false, fmt.Sprintf("status %d", ans.status)
	})
}

func TestLimitsReloadKeepsConnections(t *testing.T) {
	n := startCaddy(t, limitsCaddyfile("max_connections 3"))
	key := testKey(t, "k")
	var clients []*Client
	for range 3 {
		c := Dial(t, n.WSURL(route+"?sdk_key="+key))
		c.ReadMsg(t, msgTimeout)
		clients = append(clients, c)
	}
	// A lower cap applies to new connections at once; those above it stay.
	n.Reload(t, limitsCaddyfile("max_connections 1"))
	wantRefused(t, upgrade(t, n, "", route+"?sdk_key="+key), http.StatusServiceUnavailable)
	p := n.PublishOK(t, key, "", `1`)
	for _, c := range clients {
		c.ExpectMessage(t, key, p.Seq)
	}
	// off lifts it.
	n.Reload(t, limitsCaddyfile("max_connections off"))
	if ans := upgrade(t, n, "", route+"?sdk_key="+key); ans.conn == nil {
		t.Fatalf("max_connections off: status %d %s", ans.status, ans.body)
	}
}

func TestLimitsPerIP(t *testing.T) {
	n := startCaddy(t, limitsCaddyfile("max_connections_per_ip 2"))
	path := route + "?sdk_key=" + testKey(t, "k")
	for i := range 2 {
		if ans := upgrade(t, n, "127.0.0.2", path); ans.conn == nil {
			t.Fatalf("127.0.0.2 connection %d: status %d %s", i, ans.status, ans.body)
		}
	}
	ans := upgrade(t, n, "127.0.0.2", path)
	wantRefused(t, ans, http.StatusTooManyRequests)
	if !strings.Contains(ans.body, "127.0.0.2") {
		t.Fatalf("refusal %q does not name the IP", ans.body)
	}
	// Another address is counted on its own.
	for i := range 2 {
		if ans := upgrade(t, n, "127.0.0.3", path); ans.conn == nil {
			t.Fatalf("127.0.0.3 connection %d: status %d %s", i, ans.status, ans.body)
		}
	}
	if got := n.refused(t).Refused.PerIP; got != 1 {
		t.Fatalf("refused.per_ip %d, want 1", got)
	}
}

func TestLimitsPerKey(t *testing.T) {
	n := startCaddy(t, limitsCaddyfile("max_followers_per_key 2"))
	key, other := testKey(t, "full"), testKey(t, "other")
	a := Dial(t, n.WSURL(route+"?sdk_key="+key))
	a.ReadMsg(t, msgTimeout)
	b := Dial(t, n.WSURL(route+"?sdk_key="+key))
	b.ReadMsg(t, msgTimeout)
	bystander := Dial(t, n.WSURL(route+"?sdk_key="+other))
	bystander.ReadMsg(t, msgTimeout)

	// The third follower's register: the error message, then 4429.
	c := Dial(t, n.WSURL(route))
	c.Register(t, other) // a connection may follow other keys…
	c.Send(t, map[string]any{"type": "register", "sdk_key": key})
	before := c.ExpectClose(t, 4429, msgTimeout)
	if len(before) != 1 || before[0].Type != "error" || before[0].Code != "too_many_followers" {
		t.Fatalf("before the close: %s, want the too_many_followers error", lastRaw(before))
	}
	// SSE is refused with a status before its stream starts.
	req, _ := http.NewRequest(http.MethodGet, n.HTTP+route+"?sdk_key="+key, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("SSE over max_followers_per_key: %d %s", resp.StatusCode, body)
	}
	// Everyone else keeps receiving.
	p := n.PublishOK(t, other, "", `"still here"`)
	bystander.ExpectMessage(t, other, p.Seq)
	q := n.PublishOK(t, key, "", `"full"`)
	a.ExpectMessage(t, key, q.Seq)
	b.ExpectMessage(t, key, q.Seq)
	if got := n.refused(t).Refused.PerKey; got != 2 {
		t.Fatalf("refused.per_key %d, want 2", got)
	}
	// A follower leaving makes room.
	a.Close()
	eventually(t, 5*time.Second, func() (bool, string) {
		_, ki, _ := n.Key(t, key)
		return ki.Followers == 1, fmt.Sprintf("%d followers", ki.Followers)
	})
	d := Dial(t, n.WSURL(route))
	d.Register(t, key)
}

func TestLimitsUpgradeRate(t *testing.T) {
	const rate, burst, storm = 5, 10, 50
	n := startCaddy(t, limitsCaddyfile(fmt.Sprintf("upgrade_rate %d/s burst %d", rate, burst)))
	path := route + "?sdk_key=" + testKey(t, "k")

	// A reconnect storm: every client at once.
	answers := make([]upgradeAnswer, storm)
	errs := make([]error, storm)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range storm {
		wg.Go(func() {
			<-start
			answers[i], errs[i] = rawUpgrade(n, "", path)
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)
	admitted, retryAfters := 0, map[int]int{}
	minRA := 0
	for i, ans := range answers {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if ans.conn != nil {
			admitted++
			t.Cleanup(func() { ans.conn.Close() })
			continue
		}
		wantRefused(t, ans, http.StatusServiceUnavailable)
		retryAfters[ans.retryAfter]++
		if minRA == 0 || ans.retryAfter < minRA {
			minRA = ans.retryAfter
		}
	}
	// The burst gets in at once, plus what the bucket refilled meanwhile.
	if most := burst + int(took.Seconds()*rate) + 1; admitted < burst || admitted > most {
		t.Fatalf("admitted %d of %d in %s, want %d to %d", admitted, storm, took, burst, most)
	}
	// The refused are told to come back at the bucket's pace, not all in
	// the same second.
	if len(retryAfters) < 3 {
		t.Fatalf("Retry-After values %v: want the refused spread over several seconds", retryAfters)
	}
	t.Logf("storm of %d in %s: %d admitted, Retry-After (s: clients) %v", storm, took.Round(time.Millisecond), admitted, retryAfters)
	if got := n.refused(t).Refused.UpgradeRate; got != uint64(storm-admitted) {
		t.Fatalf("refused.upgrade_rate %d, want %d", got, storm-admitted)
	}
	// A client that waits as told gets in. (The wait is the protocol's,
	// not synchronisation.)
	time.Sleep(time.Duration(minRA) * time.Second)
	if ans := upgrade(t, n, "", path); ans.conn == nil {
		t.Fatalf("after Retry-After %ds: status %d %s", minRA, ans.status, ans.body)
	}
}

func TestLimitsPublishRate(t *testing.T) {
	n := startCaddy(t, limitsCaddyfile("publish_rate 2/s burst 2"))
	key := testKey(t, "k")
	body := `{"sdk_key":` + quote(key) + `,"data":1}`
	statuses := make([]int, 0, 3)
	var last *http.Response
	for range 3 {
		resp, err := http.Post(n.Admin+"/push_gateway/publish", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		last = resp
		if resp.StatusCode == http.StatusTooManyRequests {
			var e map[string]string
			if err := json.Unmarshal(b, &e); err != nil || !strings.Contains(e["error"], "publish_rate") {
				t.Fatalf("429 body %s", b)
			}
		}
	}
	if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != http.StatusTooManyRequests {
		t.Fatalf("statuses %v, want 200 200 429", statuses)
	}
	if ra, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", last.Header.Get("Retry-After"))
	}
	// Other admin routes are not paced.
	for range 5 {
		n.Stats(t)
	}
	if got := n.refused(t).Refused.PublishRate; got != 1 {
		t.Fatalf("refused.publish_rate %d, want 1", got)
	}
}
