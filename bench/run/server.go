package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/gwadmin"
	"github.com/pushgateway/push_gateway/bench/internal/procstat"
	"github.com/pushgateway/push_gateway/bench/internal/serverproc"
)

// ErrNoGC is returned when the node reference runs without --expose-gc.
var ErrNoGC = errors.New("the reference server runs without --expose-gc")

// Protocols the load generator speaks.
const (
	protoNative   = "native"
	protoSocketIO = "socketio"
)

// server is one running server under test.
type server struct {
	*serverproc.Proc
	name   string
	proto  string // protoNative or protoSocketIO
	client string // host:port of the client endpoint
	admin  string // host:port of the push_gateway admin routes; "" for the node reference
}

// The gateway's configurations: heartbeats every 25 s (socket.io's
// default, so that both Socket.IO servers ping their clients alike; the
// native protocol gets the same, so its timers run as in production) and
// an idle timeout of 60 s. Both go past the default connection cap (the
// open-files limit minus headroom): the bench measures cost, not limits.
const (
	caddyGlobal = `{
	admin 127.0.0.1:%d
	push_gateway {
		limits {
			max_connections off
		}
	}
	persist_config off
	auto_https off
	# Caddy logs every admin request at INFO: at hundreds of publishes a
	# second the writes to its log, one at a time, hold the publish calls
	# back (the trace shows them waiting on the log file's lock). The bench
	# measures the gateway, not the log; see README, Operations.
	log default {
		exclude admin.api
	}
}
`
	caddyNative = caddyGlobal + `http://127.0.0.1:%d {
	bind 127.0.0.1
	push_gateway /realtime* {
		heartbeat 25s
		idle_timeout 60s
	}
}
`
	caddySocketIO = caddyGlobal + `http://127.0.0.1:%d {
	bind 127.0.0.1
	push_gateway /realtime* {
		transports websocket socketio
		socketio_path /realtime/
		heartbeat 25s
		idle_timeout 60s
	}
}
`
)

// startCaddy runs bin on a Caddyfile in dir/name speaking proto.
func startCaddy(bin, dir, name, proto string) (*server, error) {
	ports, err := serverproc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	cfg := caddyNative
	if proto == protoSocketIO {
		cfg = caddySocketIO
	}
	p, err := serverproc.StartCaddy(bin, filepath.Join(dir, name), fmt.Appendf(nil, cfg, ports[0], ports[1]))
	if err != nil {
		return nil, err
	}
	s := &server{Proc: p, name: name, proto: proto,
		client: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		admin:  fmt.Sprintf("127.0.0.1:%d", ports[0])}
	return s, s.waitReady(30 * time.Second)
}

// startBaseline runs the baseline and reads its addresses from its stdout.
func startBaseline(bin, dir, name string) (*server, error) {
	cmd := exec.Command(bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("piping baseline stdout: %w", err)
	}
	addrs := make(chan map[string]string, 1)
	p, err := serverproc.Start(name, cmd, filepath.Join(dir, name+".log"), func() {
		var m map[string]string
		line, _ := bufio.NewReader(out).ReadBytes('\n')
		_ = json.Unmarshal(line, &m)
		addrs <- m
		_, _ = io.Copy(io.Discard, out)
	})
	if err != nil {
		return nil, err
	}
	s := &server{Proc: p, name: name, proto: protoNative}
	select {
	case m := <-addrs:
		if m["client"] == "" || m["admin"] == "" {
			s.Stop()
			return nil, fmt.Errorf("%w: baseline printed no addresses: %s", serverproc.ErrNotReady, s.LogTail())
		}
		s.client, s.admin = m["client"], m["admin"]
	case <-time.After(10 * time.Second):
		s.Stop()
		return nil, fmt.Errorf("%w: baseline printed no addresses in 10s", serverproc.ErrNotReady)
	}
	return s, s.waitReady(30 * time.Second)
}

// startReference runs the socket.io reference script with node.
func startReference(node, script, dir, name string) (*server, error) {
	ports, err := serverproc.FreePorts(1)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(node, "--expose-gc", script, strconv.Itoa(ports[0]))
	cmd.Dir = filepath.Dir(script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := serverproc.Start(name, cmd, filepath.Join(dir, name+".log"), nil)
	if err != nil {
		return nil, err
	}
	s := &server{Proc: p, name: name, proto: protoSocketIO, client: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	if err := s.waitReady(30 * time.Second); err != nil {
		return nil, fmt.Errorf("%w (is socket.io installed? run npm ci at the repository root)", err)
	}
	return s, nil
}

// srvStats is the part of GET /push_gateway/stats the runner reads; the
// node reference answers only Sockets, at GET /stats.
type srvStats struct {
	Connections struct {
		Total int64 `json:"total"`
	} `json:"connections"`
	Dropped    int64 `json:"dropped"`
	SlowCloses int64 `json:"slow_consumer_closes"`
	Goroutines int   `json:"goroutines"`
	Sockets    int64 `json:"sockets"`
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// maxAnswer bounds what is read of the reference's answers.
const maxAnswer = 1 << 20

// stats reads the server's stats.
func (s *server) stats() (srvStats, error) {
	var st srvStats
	if s.admin != "" {
		err := gwadmin.Stats(httpClient, s.admin, &st)
		return st, err
	}
	err := s.getJSON("/stats", &st)
	st.Connections.Total = st.Sockets
	return st, err
}

// waitReady polls the stats route until it answers, the process exits or
// limit is up; a server that does not start is stopped.
func (s *server) waitReady(limit time.Duration) error {
	err := s.WaitReady(limit, func() error {
		_, err := s.stats()
		return err
	})
	if err != nil {
		s.Stop()
	}
	return err
}

// gc makes the server collect its garbage before RSS is read: twice
// through pprof's gc=1 on the Go servers (objects with finalizers, closed
// sockets, go in the second), global.gc() twice on node. It answers the Go
// heap statistics, zero for node.
func (s *server) gc() (procstat.MemStats, error) {
	if s.admin != "" {
		if _, err := procstat.GCMemStats(httpClient, s.admin); err != nil {
			return procstat.MemStats{}, err
		}
		return procstat.GCMemStats(httpClient, s.admin)
	}
	var ans struct {
		GC bool `json:"gc"`
	}
	if err := s.getJSON("/gc", &ans); err != nil {
		return procstat.MemStats{}, err
	}
	if !ans.GC {
		return procstat.MemStats{}, ErrNoGC
	}
	return procstat.MemStats{}, nil
}

// getJSON reads GET http://<client>/<path> of the reference into v.
func (s *server) getJSON(path string, v any) error {
	resp, err := httpClient.Get("http://" + s.client + path)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: decoding: %w", path, err)
	}
	return nil
}

// published is what a publish answered.
type published struct {
	seq   int64 // the server's seq; the runner's index for the node reference
	epoch string
	stamp time.Time // the wall clock in the message, taken just before the request
	took  time.Duration
}

// publish sends message idx of key, stamped with the current wall clock
// in ns: data {"i":idx,"t":ns}. The Socket.IO load generator reads idx as
// the seq (Socket.IO has none); the native one reads the server's seq.
func (s *server) publish(key string, idx int64) (published, error) {
	p := published{stamp: time.Now(), seq: idx}
	body := `{"sdk_key":"` + key + `","event":"update","data":{"i":` + strconv.FormatInt(idx, 10) +
		`,"t":` + strconv.FormatInt(p.stamp.UnixNano(), 10) + `}}`
	if s.admin != "" {
		e, err := gwadmin.PublishEntry(httpClient, s.admin, body)
		p.took = time.Since(p.stamp)
		if err == nil && s.proto == protoNative {
			p.seq, p.epoch = int64(e.Seq), e.Epoch
		}
		return p, err
	}
	resp, err := httpClient.Post("http://"+s.client+"/publish", "application/json", strings.NewReader(body))
	if err != nil {
		return p, fmt.Errorf("publishing: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	p.took = time.Since(p.stamp)
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("publishing: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return p, nil
}

// loadgenURL is where the load generator's clients connect.
func (s *server) loadgenURL() string {
	if s.proto == protoSocketIO {
		return "ws://" + s.client + "/realtime/?EIO=4&transport=websocket"
	}
	return "ws://" + s.client + "/realtime"
}

// nodeVersion answers `node --version`.
func nodeVersion(node string) (string, error) {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w", node, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// scriptPath answers the reference script beside this command's sources.
func scriptPath(root string) (string, error) {
	p := filepath.Join(root, "bench", "run", "reference.mjs")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("reference server: %w", err)
	}
	return p, nil
}
