package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"
)

// The FeatureProbe tests run the real, pinned npm packages (package.json)
// against a toggle backend behind Caddy running caddyfile-examples/featureprobe/:
// featureprobe-server-sdk-node and featureprobe-client-sdk-js (in node and
// in headless Chromium) must see a toggle change after the backend changes
// it and publishes `{"sdk_keys":[server, client],"data":""}`, and plain
// socket.io-client must receive what is published. Times from publish to
// the SDK are logged; the scripts stamp lines with the wall clock.
//
// PG_FP_REFERENCE=1 runs the same tests against the reference socket.io
// 4.8.4 server (integration/sdk/reference_server.mjs) instead of Caddy: it
// tells a script or backend mistake apart from a gateway one.

const (
	fpToggle     = "pg_toggle"
	sdkTimeout   = 30 * time.Second // an SDK script start until ready (Chromium included)
	sdkSeeChange = 10 * time.Second // publish until the SDK sees the change
	fpRounds     = 3                // toggle flips per SDK
)

// fpExample is the FeatureProbe setup the tests run, unchanged: the
// realtime paths to push_gateway, everything else to the backend.
const fpExample = examplesDir + "/featureprobe/Caddyfile"

// fpSite is where the SDKs connect: Caddy with push_gateway, or the
// reference server, in front of a toggle backend.
type fpSite struct {
	Name string
	URL  string
	// publish sends data (raw JSON) as `update` to keys and returns how
	// many connections it reached.
	publish func(t testing.TB, keys []string, data string) int
	// followers counts the connections registered to key.
	followers func(t testing.TB, key string) int
}

// fpTools finds node and checks the npm packages the tests need (CI runs
// `npm ci`): their absence is a failure, not a skip.
func fpTools(t testing.TB) string {
	t.Helper()
	node, err := browserTools()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"socket.io-client", "featureprobe-server-sdk-node", "featureprobe-client-sdk-js", "semver", "socket.io"} {
		if _, err := os.Stat("../node_modules/" + pkg + "/package.json"); err != nil {
			t.Fatalf("%v: %s is not installed: run `npm ci` at the repository root (%v)", errBrowserTools, pkg, err)
		}
	}
	return node
}

// startFPSite starts the site in front of b: Caddy, or the reference
// server with PG_FP_REFERENCE=1.
func startFPSite(t testing.TB, node string, b *toggleBackend) *fpSite {
	t.Helper()
	if os.Getenv("PG_FP_REFERENCE") == "1" {
		return startReferenceSite(t, node, b)
	}
	src, err := os.ReadFile(fpExample)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, nodeSpec{
		config:    string(src),
		adapter:   "json",
		env:       map[string]string{"BACKEND": b.Addr()},
		waitPorts: func(n *Node) []int { return []int{n.Port} },
		prepare:   adaptExample, // as TestExamples: the example's own ports and admin
	})
	return &fpSite{
		Name: "gateway",
		URL:  n.HTTP,
		publish: func(t testing.TB, keys []string, data string) int {
			t.Helper()
			body, _ := json.Marshal(map[string]any{"sdk_keys": keys, "data": json.RawMessage(data)})
			status, out := n.AdminDo(t, http.MethodPost, "/push_gateway/publish", "application/json", bytes.NewReader(body))
			var ans struct {
				Published []Published `json:"published"`
			}
			if status != http.StatusOK || json.Unmarshal(out, &ans) != nil || len(ans.Published) != len(keys) {
				t.Fatalf("publish %s: %d %s", body, status, out)
			}
			sum := 0
			for _, p := range ans.Published {
				sum += p.LocalReceivers
			}
			return sum
		},
		followers: func(t testing.TB, key string) int {
			t.Helper()
			status, ki, b := n.Key(t, key)
			switch status {
			case http.StatusOK:
				return ki.Followers
			case http.StatusNotFound:
				return 0
			}
			t.Fatalf("GET /push_gateway/keys/%s: %d %s", key, status, b)
			return 0
		},
	}
}

// startReferenceSite runs integration/sdk/reference_server.mjs in front of b.
func startReferenceSite(t testing.TB, node string, b *toggleBackend) *fpSite {
	t.Helper()
	p := runSDKScript(t, node, "sdk/reference_server.mjs", map[string]string{"PG_BACKEND": b.URL()})
	l := p.await(t, sdkTimeout, "listening", func(l sdkLine) bool { return l.Event == "listening" })
	site := fmt.Sprintf("http://127.0.0.1:%d", l.Port)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(t testing.TB, req *http.Request, v any) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, v) != nil {
			t.Fatalf("%s %s: %s %s", req.Method, req.URL, resp.Status, body)
		}
	}
	return &fpSite{
		Name: "reference",
		URL:  site,
		publish: func(t testing.TB, keys []string, data string) int {
			t.Helper()
			body, _ := json.Marshal(map[string]any{"sdk_keys": keys, "data": json.RawMessage(data)})
			req, _ := http.NewRequest(http.MethodPost, site+"/_pg/publish", bytes.NewReader(body))
			var ans struct{ Receivers int }
			get(t, req, &ans)
			return ans.Receivers
		},
		followers: func(t testing.TB, key string) int {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, site+"/_pg/followers?key="+url.QueryEscape(key), nil)
			var ans struct{ Followers int }
			get(t, req, &ans)
			return ans.Followers
		},
	}
}

// sdkLine is one line a script in integration/sdk prints.
type sdkLine struct {
	Event     string            `json:"event"`
	Value     *bool             `json:"value"`
	Args      []json.RawMessage `json:"args"`
	Transport string            `json:"transport"`
	Error     string            `json:"error"`
	Port      int               `json:"port"`
	T         float64           `json:"t"` // Unix ms (fractional) when the script saw it
	raw       string
}

// sdkProc is a running node script; its stdout lines arrive on lines.
type sdkProc struct {
	name  string
	lines chan sdkLine
	mu    sync.Mutex
	log   bytes.Buffer // stderr, for failures
	seen  []sdkLine    // lines passed over by await, in order
}

// runSDKScript starts node on script with env added; it stops when the test
// ends (stdin closes, then a kill after a grace period).
func runSDKScript(t testing.TB, node, script string, env map[string]string) *sdkProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &sdkProc{name: script, lines: make(chan sdkLine, 256)}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.log.Write(b)
	})
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l sdkLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = sdkLine{Event: "error", Error: "not JSON: " + sc.Text()}
			}
			l.raw = sc.Text()
			p.lines <- l
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", script, p.stderr())
		}
	})
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *sdkProc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// await returns the first line not yet returned that match accepts,
// within timeout: lines an earlier await passed over count too, since
// some events (an Engine.IO upgrade) may come before or after others.
// Error lines are logged: a Chromium console error such as a missing
// favicon is no failure by itself, but it explains one.
func (p *sdkProc) await(t testing.TB, timeout time.Duration, what string, match func(sdkLine) bool) sdkLine {
	t.Helper()
	if i := slices.IndexFunc(p.seen, match); i >= 0 {
		l := p.seen[i]
		p.seen = slices.Delete(p.seen, i, i+1)
		return l
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited before %s; lines passed over: %s; stderr:\n%s", p.name, what, p.seenText(), p.stderr())
			}
			if match(l) {
				return l
			}
			if l.Event == "error" {
				t.Logf("%s: %s", p.name, l.Error)
			}
			p.seen = append(p.seen, l)
		case <-deadline.C:
			t.Fatalf("%s: no %s within %v; lines passed over: %s; stderr:\n%s", p.name, what, timeout, p.seenText(), p.stderr())
		}
	}
}

func (p *sdkProc) seenText() string {
	var b bytes.Buffer
	for _, l := range p.seen {
		b.WriteString("\n\t")
		b.WriteString(l.raw)
	}
	return b.String()
}

// at is when the script saw the line.
func (l sdkLine) at() time.Time { return time.UnixMicro(int64(l.T * 1000)) }

// isValue matches a ready or value line carrying v.
func isValue(event string, v bool) func(sdkLine) bool {
	return func(l sdkLine) bool { return l.Event == event && l.Value != nil && *l.Value == v }
}

// TestFeatureProbeSDKs runs each FeatureProbe SDK, unchanged, against the
// site: it connects, registers, and after each toggle change in the backend
// plus a publish to both SDK keys it shows the new value. The SDKs poll
// every 10 minutes here, so the change can only have come by push; the
// backend must also have answered a toggle request after the publish.
func TestFeatureProbeSDKs(t *testing.T) {
	node := fpTools(t)
	cases := []struct {
		name   string
		script string
		server bool // the SDK uses the server key
	}{
		{"server-sdk-node", "sdk/server_sdk.mjs", true},
		{"client-sdk-node", "sdk/client_sdk_node.mjs", false},
		{"client-sdk-chromium", "sdk/client_sdk_browser.mjs", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			serverKey, clientKey := testKey(t, "server"), testKey(t, "client")
			b := newToggleBackend(t, serverKey, clientKey, map[string]bool{fpToggle: false})
			site := startFPSite(t, node, b)
			key := clientKey
			if tc.server {
				key = serverKey
			}
			p := runSDKScript(t, node, tc.script, map[string]string{
				"PG_URL": site.URL, "PG_KEY": key, "PG_TOGGLE": fpToggle, "PG_CHROMIUM": chromiumPath,
			})
			start := time.Now()
			p.await(t, sdkTimeout, "ready with false", isValue("ready", false))
			// Registered, and the refetch that answers `register` is done:
			// the start's fetch plus that one. Only then is a change
			// proof of the push.
			eventually(t, sdkTimeout, func() (bool, string) {
				f, n := site.followers(t, key), b.Fetches(key)
				return f >= 1 && n >= 2, fmt.Sprintf("%d followers of %s, %d toggle fetches", f, key, n)
			})
			t.Logf("%s: ready and registered on %s after %v", tc.name, site.Name, time.Since(start).Round(time.Millisecond))

			var lat []time.Duration
			for round := 1; round <= fpRounds; round++ {
				want := round%2 == 1
				before := b.Fetches(key)
				b.Set(fpToggle, want)
				sent := time.Now()
				if got := site.publish(t, []string{serverKey, clientKey}, `""`); got != 1 {
					t.Fatalf("round %d: the publish reached %d connections, want the SDK's one", round, got)
				}
				l := p.await(t, sdkSeeChange, fmt.Sprintf("value %v (round %d)", want, round), isValue("value", want))
				d := l.at().Sub(sent)
				lat = append(lat, d.Round(10*time.Microsecond))
				if after := b.Fetches(key); after <= before {
					t.Fatalf("round %d: the SDK saw the change with no new toggle request (%d, %d)", round, before, after)
				}
			}
			t.Logf("%s on %s: publish → SDK shows the new value: %v (includes the SDK's toggle refetch through the site)", tc.name, site.Name, lat)
		})
	}
}

// TestSocketIOClient runs plain socket.io-client against the site: connect
// to a namespace on an Engine.IO path, `register`, get the `update ""`
// answer, then what is published.
func TestSocketIOClient(t *testing.T) {
	node := fpTools(t)
	cases := []struct {
		name       string
		path       string
		namespace  string
		field      string
		transports string // empty: the client's default, polling then the upgrade
		noSlash    bool   // request path as is (socket.io-client adds a slash by default)
	}{
		{"websocket server-sdk path", "/realtime/", "/realtime", "key", "websocket", false},
		{"websocket client-sdk path", "/server/realtime/", "/realtime", "sdk_key", "websocket", false},
		{"websocket no trailing slash", "/realtime", "/realtime", "key", "websocket", true},
		{"websocket prefixed namespace", "/server/realtime/", "/fp/realtime", "sdk_key", "websocket", false},
		{"websocket main namespace", "/server/realtime/", "/", "sdk_key", "websocket", false},
		{"polling then upgrade", "/server/realtime/", "/realtime", "sdk_key", "", false},
	}
	b := newToggleBackend(t, "unused-server", "unused-client", nil)
	site := startFPSite(t, node, b)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(t, "k")
			slash := "1"
			if tc.noSlash {
				slash = "0"
			}
			p := runSDKScript(t, node, "sdk/sioclient.mjs", map[string]string{
				"PG_URL": site.URL, "PG_PATH": tc.path, "PG_NAMESPACE": tc.namespace,
				"PG_KEY": key, "PG_FIELD": tc.field, "PG_TRANSPORTS": tc.transports,
				"PG_TRAILING_SLASH": slash,
			})
			open := p.await(t, sdkTimeout, "open", func(l sdkLine) bool { return l.Event == "open" })
			want := tc.transports
			if want == "" {
				want = "polling"
			}
			if open.Transport != want {
				t.Fatalf("the Engine.IO session opened over %q, want %q", open.Transport, want)
			}
			p.await(t, msgTimeout, "connect", func(l sdkLine) bool { return l.Event == "connect" })
			isUpdate := func(arg string) func(sdkLine) bool {
				return func(l sdkLine) bool {
					return l.Event == "update" && len(l.Args) == 1 && string(l.Args[0]) == arg
				}
			}
			p.await(t, msgTimeout, `update "" (the answer to register)`, isUpdate(`""`))
			if f := site.followers(t, key); f != 1 {
				t.Fatalf("%d followers of %s after register, want 1", f, key)
			}
			if tc.transports == "" {
				p.await(t, msgTimeout, "upgrade to websocket", func(l sdkLine) bool {
					return l.Event == "upgrade" && l.Transport == "websocket"
				})
			}
			for i, data := range []string{`{"n":1}`, `"two"`, `""`} {
				sent := time.Now()
				if got := site.publish(t, []string{key}, data); got != 1 {
					t.Fatalf("publish %d reached %d connections, want 1", i, got)
				}
				l := p.await(t, msgTimeout, "update "+data, isUpdate(data))
				if !slices.Contains([]string{"websocket"}, l.Transport) {
					t.Fatalf("update %d arrived over %q, want websocket", i, l.Transport)
				}
				t.Logf("update %s: publish → socket.io-client %v", data, l.at().Sub(sent).Round(10*time.Microsecond))
			}
		})
	}
}
