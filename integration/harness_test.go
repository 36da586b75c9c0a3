package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// caddyBin is the binary TestMain built from ../cmd/caddy.
var caddyBin string

// Deadlines sized for a loaded 2-core machine: they bound a hang, they are
// not performance targets.
const (
	startTimeout = 90 * time.Second // process start until admin and site answer
	stopTimeout  = 20 * time.Second // SIGTERM until SIGKILL
	msgTimeout   = 10 * time.Second // one expected message
)

// TestMain builds caddy once for the whole run and raises the open-files soft
// limit, since the scale tests hold a few thousand sockets in this process.
// PG_CADDY_BIN=<path> skips the build and uses that binary.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if bin := os.Getenv("PG_CADDY_BIN"); bin != "" {
		caddyBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "pg-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "./cmd/caddy")
	build.Dir = ".." // the repository root; go test runs in the package directory
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: building caddy: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// Node is one running caddy process.
type Node struct {
	t         testing.TB
	Dir       string
	Port      int    // {$PORT}: the plain HTTP site
	HTTPSPort int    // {$HTTPS_PORT}
	AdminPort int    // {$ADMIN}
	Admin     string // http://127.0.0.1:<AdminPort>
	HTTP      string // http://127.0.0.1:<Port>

	env     []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	stopMu  sync.Mutex
	leaks   leakCheck // leak_test.go: baseline goroutines and fds
}

// nodeSpec says how to start a node.
type nodeSpec struct {
	config  string            // Caddyfile text, or Caddy JSON when adapter is "json"
	adapter string            // "caddyfile" or "json"
	env     map[string]string // extra environment, e.g. BACKEND
	// ports decides which placeholders the readiness check dials. Nil: those
	// that appear in config.
	waitPorts func(n *Node) []int
	waitTLS   bool   // the HTTPS port must complete a TLS handshake
	tlsName   string // server name for that handshake; empty: none (IP)
	// prepare runs after the ports are chosen and before the process starts;
	// it may rewrite the config (examples are adapted here).
	prepare func(t testing.TB, n *Node, config string) string
}

// globalOptions is the head of every Caddyfile the tests write: ports come
// from the environment so that Reload can post the same text again.
const globalOptions = `
	admin 127.0.0.1:{$ADMIN}
	http_port {$PORT}
	https_port {$HTTPS_PORT}
	skip_install_trust
	grace_period 5s
`

// startCaddy writes caddyfile to a temp dir, starts caddy on free ports and
// waits until its admin API and its site ports answer. The Caddyfile reaches
// the ports through {$PORT}, {$HTTPS_PORT} and {$ADMIN}.
func startCaddy(t testing.TB, caddyfile string) *Node {
	t.Helper()
	return startNode(t, nodeSpec{config: caddyfile, adapter: "caddyfile"})
}

func startNode(t testing.TB, spec nodeSpec) *Node {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		n, err := tryStart(t, spec)
		if err == nil {
			return n
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
		t.Logf("port collision, retrying: %v", err)
	}
	t.Fatalf("starting caddy: %v", lastErr)
	return nil
}

var errPortTaken = errors.New("port already in use")

func tryStart(t testing.TB, spec nodeSpec) (*Node, error) {
	t.Helper()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	n := &Node{
		t: t, Dir: dir,
		Port: ports[0], HTTPSPort: ports[1], AdminPort: ports[2],
		logPath: filepath.Join(dir, "caddy.log"),
		done:    make(chan struct{}),
	}
	n.Admin = fmt.Sprintf("http://127.0.0.1:%d", n.AdminPort)
	n.HTTP = fmt.Sprintf("http://127.0.0.1:%d", n.Port)
	n.env = append(os.Environ(),
		"PORT="+strconv.Itoa(n.Port),
		"HTTP_PORT="+strconv.Itoa(n.Port),
		"HTTPS_PORT="+strconv.Itoa(n.HTTPSPort),
		"ADMIN="+strconv.Itoa(n.AdminPort),
		"CADDY_ADMIN="+fmt.Sprintf("127.0.0.1:%d", n.AdminPort),
		"HOME="+dir,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
	for k, v := range spec.env {
		n.env = append(n.env, k+"="+v)
	}
	config := spec.config
	if spec.prepare != nil {
		config = spec.prepare(t, n, config)
	}
	name := "Caddyfile"
	if spec.adapter == "json" {
		name = "caddy.json"
	}
	cfgPath := filepath.Join(dir, name)
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(n.logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--config", cfgPath}
	if spec.adapter != "json" { // JSON needs no adapter, and there is none by that name
		args = append(args, "--adapter", spec.adapter)
	}
	n.cmd = exec.Command(caddyBin, args...)
	n.cmd.Dir = dir
	n.cmd.Env = n.env
	// A test binary killed by -timeout runs no Cleanup: take caddy along.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	n.cmd.Stdout = logf
	n.cmd.Stderr = logf
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", caddyBin, err)
	}
	go func() {
		_ = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			t.Logf("caddy log tail (%s):\n%s", n.logPath, n.LogTail(80))
		}
	})

	var wait []int
	if spec.waitPorts != nil {
		wait = spec.waitPorts(n)
	} else {
		// Sites on a port placeholder listen on it; the global options
		// name both ports whether or not a site uses them.
		sites := strings.Replace(spec.config, globalOptions, "", 1)
		if strings.Contains(sites, "{$PORT}") {
			wait = append(wait, n.Port)
		}
		if strings.Contains(sites, "{$HTTPS_PORT}") {
			wait = append(wait, n.HTTPSPort)
		}
	}
	if err := n.waitReady(wait, spec.waitTLS, spec.tlsName); err != nil {
		n.Stop()
		if strings.Contains(n.LogTail(200), "address already in use") {
			return nil, fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return nil, fmt.Errorf("%w\nlog tail:\n%s", err, n.LogTail(80))
	}
	n.armLeakCheck() // its Cleanup runs after the test's clients closed, before Stop
	return n, nil
}

// freePorts picks count distinct ports that are free on every address, for
// TCP and UDP (Caddy binds sites on all interfaces and HTTP/3 on UDP). They
// come from below the kernel's ephemeral range: on a machine where other
// tests open tens of thousands of connections, a port from bind(:0) is
// soon some connection's source port, and Caddy's wildcard bind then fails.
func freePorts(count int) ([]int, error) {
	lo, hi := 15000, 32767
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if start, err := strconv.Atoi(f[0]); err == nil && start-1 > lo+1000 {
				hi = start - 1
			}
		}
	}
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for tries := 0; len(ports) < count && tries < 1000; tries++ {
		p := lo + rand.IntN(hi-lo+1)
		if slices.Contains(ports, p) {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", p))
		if err != nil {
			ln.Close()
			continue
		}
		held = append(held, ln, pc)
		ports = append(ports, p)
	}
	if len(ports) < count {
		return nil, errors.New("no free ports found")
	}
	return ports, nil
}

func (n *Node) waitReady(ports []int, waitTLS bool, tlsName string) error {
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			return fmt.Errorf("caddy exited during start (%v)", n.cmd.ProcessState)
		default:
		}
		last = n.probe(client, ports, waitTLS, tlsName)
		if last == nil {
			return nil
		}
		select {
		case <-n.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("caddy not ready after %v: %v", startTimeout, last)
}

func (n *Node) probe(client *http.Client, ports []int, waitTLS bool, tlsName string) error {
	resp, err := client.Get(n.Admin + "/config/")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /config/: %s", resp.Status)
	}
	for _, p := range ports {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
		if err != nil {
			return err
		}
		c.Close()
	}
	if waitTLS {
		d := &net.Dialer{Timeout: 2 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", n.HTTPSPort),
			&tls.Config{InsecureSkipVerify: true, ServerName: tlsName})
		if err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		c.Close()
	}
	return nil
}

// Stop sends SIGTERM, waits for the exit, and kills the process after
// stopTimeout. It returns once the process has exited; it is idempotent.
func (n *Node) Stop() { n.end(syscall.SIGTERM) }

// end sends sig to the process unless it has exited, and waits for the
// exit, killing it after stopTimeout. Stop and Kill share it, so that
// either after the other is a no-op.
func (n *Node) end(sig os.Signal) {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	if n.Exited() {
		return
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(stopTimeout):
		n.t.Logf("caddy did not exit %v after %v; killing it", stopTimeout, sig)
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

// Exited reports whether the process has exited.
func (n *Node) Exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// WaitExit waits up to d for the process to exit by itself.
func (n *Node) WaitExit(d time.Duration) bool {
	select {
	case <-n.done:
		return true
	case <-time.After(d):
		return false
	}
}

// LogTail returns the last lines of the process's stdout and stderr.
func (n *Node) LogTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	var all []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		// The readiness probe's requests would fill the tail.
		if !strings.Contains(l, `"msg":"received request"`) {
			all = append(all, l)
		}
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// WSURL is the ws:// URL of path (with query) on the plain site.
func (n *Node) WSURL(pathQuery string) string {
	return fmt.Sprintf("ws://127.0.0.1:%d%s", n.Port, pathQuery)
}

// WSSURL is the wss:// URL of path (with query) on the TLS site.
func (n *Node) WSSURL(pathQuery string) string {
	return fmt.Sprintf("wss://127.0.0.1:%d%s", n.HTTPSPort, pathQuery)
}

var adminClient = &http.Client{Timeout: 30 * time.Second}

// AdminDo sends one request to the admin endpoint and returns the status and
// body.
func (n *Node) AdminDo(t testing.TB, method, path, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, n.Admin+path, body)
	if err != nil {
		t.Fatalf("admin request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// Publish posts body to /push_gateway/publish. A string or []byte is sent as
// is; anything else is marshalled. It returns the status and the decoded
// JSON object of the answer.
func (n *Node) Publish(t testing.TB, body any) (int, map[string]any) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatalf("marshal publish body: %v", err)
		}
	}
	status, out := n.AdminDo(t, http.MethodPost, "/push_gateway/publish", "application/json", bytes.NewReader(raw))
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("publish answered %d with non-JSON %q", status, out)
	}
	return status, m
}

// Published is one entry of a publish answer.
type Published struct {
	SDKKey         string `json:"sdk_key"`
	Epoch          string `json:"epoch"`
	Seq            uint64 `json:"seq"`
	LocalReceivers int    `json:"local_receivers"`
}

// PublishOK publishes data (raw JSON) to key with event (empty: default)
// and fails the test unless the answer is 200 with one entry.
func (n *Node) PublishOK(t testing.TB, key, event, data string) Published {
	t.Helper()
	body := `{"sdk_key":` + quote(key) + `,"data":` + data
	if event != "" {
		body += `,"event":` + quote(event)
	}
	body += "}"
	status, out := n.AdminDo(t, http.MethodPost, "/push_gateway/publish", "application/json", strings.NewReader(body))
	if status != http.StatusOK {
		t.Fatalf("publish %s: %d %s", body, status, out)
	}
	var ans struct {
		Published []Published `json:"published"`
	}
	if err := json.Unmarshal(out, &ans); err != nil || len(ans.Published) != 1 {
		t.Fatalf("publish answer %s: %v", out, err)
	}
	return ans.Published[0]
}

// Stats is GET /push_gateway/stats.
type Stats struct {
	Connections struct {
		Total     int64 `json:"total"`
		WebSocket int64 `json:"websocket"`
		SSE       int64 `json:"sse"`
		Poll      int64 `json:"poll"`
		SocketIO  int64 `json:"socketio"`
	} `json:"connections"`
	Keys               int    `json:"keys"`
	Published          uint64 `json:"published"`
	Delivered          uint64 `json:"delivered"`
	Dropped            uint64 `json:"dropped"`
	SlowConsumerCloses uint64 `json:"slow_consumer_closes"`
	Goroutines         int    `json:"goroutines"`
}

// Stats reads the gateway's counters.
func (n *Node) Stats(t testing.TB) Stats {
	t.Helper()
	var s Stats
	n.statsInto(t, &s)
	return s
}

// statsInto decodes GET /push_gateway/stats into v, which picks the fields
// it reads, and returns the raw answer.
func (n *Node) statsInto(t testing.TB, v any) []byte {
	t.Helper()
	status, b := n.AdminDo(t, http.MethodGet, "/push_gateway/stats", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /push_gateway/stats: %d %s", status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("stats %s: %v", b, err)
	}
	return b
}

// KeyInfo is GET /push_gateway/keys/{K}.
type KeyInfo struct {
	SDKKey    string `json:"sdk_key"`
	Epoch     string `json:"epoch"`
	Seq       uint64 `json:"seq"`
	History   int    `json:"history"`
	Followers int    `json:"followers"`
}

// Key reads one key; the status tells 404 apart.
func (n *Node) Key(t testing.TB, key string) (int, KeyInfo, []byte) {
	t.Helper()
	status, b := n.AdminDo(t, http.MethodGet, "/push_gateway/keys/"+key, "", nil)
	var ki KeyInfo
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &ki); err != nil {
			t.Fatalf("key info %s: %v", b, err)
		}
	}
	return status, ki, b
}

// Reload posts a new Caddyfile to the admin API (POST /load), the way
// `caddy reload` does.
func (n *Node) Reload(t testing.TB, caddyfile string) {
	t.Helper()
	status, b := n.AdminDo(t, http.MethodPost, "/load", "text/caddyfile", strings.NewReader(caddyfile))
	if status != http.StatusOK {
		t.Fatalf("POST /load: %d %s", status, b)
	}
}

// CaddyCmd runs the caddy binary with args in the node's environment (used
// for `caddy adapt`, `caddy stop`, `caddy reload`).
func (n *Node) CaddyCmd(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Dir = n.Dir
	cmd.Env = n.env
	return cmd.CombinedOutput()
}

// eventually polls cond until it holds or timeout passes, then fails with
// the last description cond gave.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %s", timeout, why)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// testKey returns an SDK key unique to this test (and suffix), safe in a URL
// path and a query.
func testKey(t testing.TB, suffix string) string {
	t.Helper()
	var b strings.Builder
	for _, r := range t.Name() + "-" + suffix {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	k := b.String()
	if len(k) > 200 {
		k = k[len(k)-200:]
	}
	return k
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TryPublish publishes data (raw JSON) to key without a testing.TB, for
// publisher goroutines; any answer but 200 is an error.
func (n *Node) TryPublish(key, data string) (Published, error) {
	ps, err := n.TryPublishBody([]byte(`{"sdk_key":` + quote(key) + `,"data":` + data + `}`))
	if err != nil {
		return Published{}, err
	}
	if len(ps) != 1 {
		return Published{}, fmt.Errorf("publish answered %d entries, want 1", len(ps))
	}
	return ps[0], nil
}

// TryPublishBody posts a raw publish body and returns the published entries.
func (n *Node) TryPublishBody(body []byte) ([]Published, error) {
	resp, err := adminClient.Post(n.Admin+"/push_gateway/publish", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("publish: reading answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("publish: %s %s", resp.Status, b)
	}
	var ans struct {
		Published []Published `json:"published"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return nil, fmt.Errorf("publish: answer %q: %w", b, err)
	}
	return ans.Published, nil
}
