package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Errors of the server side of the run.
var (
	// ErrNotReady is returned when caddy does not answer in time.
	ErrNotReady = errors.New("caddy not ready")
	// ErrNoField is returned when /proc or a profile lacks a field.
	ErrNoField = errors.New("field not found")
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
const clockTicks = 100

// caddyfile is the gateway's configuration: a heartbeat and idle timeout
// far beyond the run, so that no ping, comment or close falls inside a
// measurement, and a long-poll cap at the 60s the clients ask for.
const caddyfile = `{
	admin 127.0.0.1:%d
	persist_config off
	auto_https disable_redirects
	skip_install_trust
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	push_gateway %s* {
		heartbeat 1h
		idle_timeout 2h
	}
}
`

// tlsSite is added for SSE over HTTP/2: Caddy's default protocols on a TLS
// site include h2, and tls internal needs no outside CA.
const tlsSite = `https://127.0.0.1:%d {
	bind 127.0.0.1
	tls internal
	push_gateway %s* {
		heartbeat 1h
		idle_timeout 2h
	}
}
`

// route is where the gateway serves clients.
const route = "/realtime"

// server is the running caddy.
type server struct {
	cmd    *exec.Cmd
	client string // host:port of the site
	tls    string // host:port of the TLS site; "" when there is none
	admin  string // host:port of the admin endpoint
	logf   string
	exited chan struct{}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// buildCaddy builds ./cmd/caddy of the module at root into dir.
func buildCaddy(root, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot finds the directory of go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding the module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// freePort binds :0 on loopback and answers the port the kernel chose; caddy
// binds it a moment later (the race every "pick a port for a child" has).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startCaddy writes the Caddyfile into dir, runs bin with it and waits
// until the admin endpoint answers; withTLS adds a TLS site.
func startCaddy(bin, dir string, withTLS bool) (*server, error) {
	ap, err := freePort()
	if err != nil {
		return nil, err
	}
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating caddy's directory: %w", err)
	}
	cf := filepath.Join(dir, "Caddyfile")
	cfg := fmt.Appendf(nil, caddyfile, ap, cp, route)
	tlsAddr := ""
	if withTLS {
		tp, err := freePort()
		if err != nil {
			return nil, err
		}
		cfg = fmt.Appendf(cfg, tlsSite, tp, route)
		tlsAddr = fmt.Sprintf("127.0.0.1:%d", tp)
	}
	if err := os.WriteFile(cf, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("writing Caddyfile: %w", err)
	}
	s := &server{
		tls:    tlsAddr,
		client: fmt.Sprintf("127.0.0.1:%d", cp),
		admin:  fmt.Sprintf("127.0.0.1:%d", ap),
		logf:   filepath.Join(dir, "caddy.log"),
		exited: make(chan struct{}),
	}
	logf, err := os.Create(s.logf)
	if err != nil {
		return nil, fmt.Errorf("creating caddy log: %w", err)
	}
	s.cmd = exec.Command(bin, "run", "--config", cf, "--adapter", "caddyfile")
	s.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// A runner killed by a signal takes caddy along.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting caddy: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	if err := s.waitReady(30 * time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop asks caddy to exit and kills it after 15s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// logTail answers the end of caddy's log, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logf)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

func (s *server) waitReady(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if _, last = s.stats(); last == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%w: caddy exited: %s", ErrNotReady, s.logTail())
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
	return fmt.Errorf("%w: %w; log: %s", ErrNotReady, last, s.logTail())
}

// srvStats is the part of GET /push_gateway/stats the run reads.
type srvStats struct {
	Connections struct {
		WebSocket int64 `json:"websocket"`
		SSE       int64 `json:"sse"`
		Poll      int64 `json:"poll"`
	} `json:"connections"`
	Delivered  int64 `json:"delivered"`
	Dropped    int64 `json:"dropped"`
	SlowCloses int64 `json:"slow_consumer_closes"`
	Goroutines int   `json:"goroutines"`
}

// conns answers the connection count of transport.
func (st srvStats) conns(transport string) int64 {
	switch transport {
	case transportWS:
		return st.Connections.WebSocket
	case transportSSE, transportSSEH2:
		return st.Connections.SSE
	default:
		return st.Connections.Poll
	}
}

func (s *server) stats() (srvStats, error) {
	var st srvStats
	resp, err := httpClient.Get("http://" + s.admin + "/push_gateway/stats")
	if err != nil {
		return st, fmt.Errorf("getting stats: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("getting stats: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decoding stats: %w", err)
	}
	return st, nil
}

// waitConns polls the stats until transport counts want connections.
func (s *server) waitConns(transport string, want int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := s.stats()
		if err != nil {
			return err
		}
		if got := st.conns(transport); got == want {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s connections: %d after %v, want %d", transport, got, limit, want)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// publish posts one message to key with the wall clock in data and answers
// its seq.
func (s *server) publish(key string) (uint64, error) {
	body := `{"sdk_key":"` + key + `","data":{"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `}}`
	resp, err := httpClient.Post("http://"+s.admin+"/push_gateway/publish", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("publishing: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("publishing: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var ans struct {
		Published []struct {
			Seq uint64 `json:"seq"`
		} `json:"published"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || len(ans.Published) != 1 {
		return 0, fmt.Errorf("publishing: unexpected answer %q", b)
	}
	return ans.Published[0].Seq, nil
}

// memStats is the part of runtime.MemStats read from the heap profile.
type memStats struct {
	HeapInuse  int64 `json:"heap_inuse"`
	StackInuse int64 `json:"stack_inuse"`
}

// gcMemStats forces a GC in caddy and reads its memory statistics: the
// heap profile page runs runtime.GC with gc=1 and ends with MemStats as
// "# Name = value" lines with debug=1.
func (s *server) gcMemStats() (memStats, error) {
	var m memStats
	resp, err := httpClient.Get("http://" + s.admin + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return m, fmt.Errorf("forcing a gc: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("forcing a gc: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok {
			continue
		}
		switch name {
		case "HeapInuse":
			m.HeapInuse, err = strconv.ParseInt(val, 10, 64)
			found++
		case "Stack": // "inuse / sys"
			inuse, _, _ := strings.Cut(val, " / ")
			m.StackInuse, err = strconv.ParseInt(inuse, 10, 64)
			found++
		}
		if err != nil {
			return m, fmt.Errorf("parsing %s: %w", name, err)
		}
	}
	if found < 2 {
		return m, fmt.Errorf("%w: HeapInuse or Stack in the heap profile", ErrNoField)
	}
	return m, nil
}

// rssKB reads VmRSS of pid, in KiB.
func rssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%w: VmRSS", ErrNoField)
}

// settleRSS samples pid's RSS until four samples in a row lie within 256
// KiB of each other or limit is up, and answers the last.
func settleRSS(pid int, limit time.Duration) (int64, error) {
	var window []int64
	deadline := time.Now().Add(limit)
	for {
		v, err := rssKB(pid)
		if err != nil {
			return 0, err
		}
		window = append(window, v)
		if len(window) > 4 {
			window = window[1:]
		}
		if len(window) == 4 {
			lo, hi := window[0], window[0]
			for _, w := range window {
				lo, hi = min(lo, w), max(hi, w)
			}
			if hi-lo <= 256 {
				return v, nil
			}
		}
		if time.Now().After(deadline) {
			return v, nil
		}
		time.Sleep(150 * time.Millisecond) // pacing the samples
	}
}

// cpuSeconds reads utime+stime of pid. The command name (field 2) may hold
// spaces, so fields are counted from the last ')'.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading stat: %w", err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: comm in stat", ErrNoField)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 { // f[0] is field 3 (state): utime is f[11], stime f[12]
		return 0, fmt.Errorf("%w: utime in stat", ErrNoField)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parsing utime/stime: %w", err)
	}
	return float64(u+s) / clockTicks, nil
}

// waitTLS polls the TLS site with an immediate long poll until it answers
// over HTTP/2: caddy issues its internal certificate after it starts, and
// that must be done before the baseline snapshot.
func (s *server) waitTLS(limit time.Duration) error {
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get("https://" + s.tls + route + "?sdk_key=tls-probe&wait=0s")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.ProtoMajor == 2 {
				return nil
			}
			err = fmt.Errorf("%s %s", resp.Proto, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	return fmt.Errorf("%w: TLS site: %w; log: %s", ErrNotReady, last, s.logTail())
}
