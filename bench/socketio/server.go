package main

import (
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

// The servers under test, as the results name them.
const (
	serverGateway   = "push_gateway"
	serverReference = "socket.io"
)

// caddyfile is the gateway's configuration: Socket.IO at /realtime/ with
// the heartbeat and ping timeout socket.io uses by default (25s, 20s), so
// that both servers ping their clients alike.
const caddyfile = `{
	admin 127.0.0.1:%d
	# The runs go up to 19,000 connections, past the default cap (the
	# open-files limit minus headroom): the bench measures cost, not limits.
	push_gateway {
		limits {
			max_connections off
		}
	}
	persist_config off
	auto_https off
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	push_gateway /realtime* {
		transports websocket socketio
		socketio_path /realtime/
		heartbeat 25s
		idle_timeout 60s
	}
}
`

var httpClient = &http.Client{Timeout: 10 * time.Second}

// maxAnswer bounds what is read of the reference's answers.
const maxAnswer = 1 << 20

// server is one running server under test.
type server struct {
	*serverproc.Proc
	name   string
	client string // host:port the clients connect to
	admin  string // host:port of the gateway's admin endpoint; "" for the reference
}

// startGateway writes the Caddyfile into dir, runs bin with it and waits
// until the admin endpoint answers.
func startGateway(bin, dir string) (*server, error) {
	ports, err := serverproc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	p, err := serverproc.StartCaddy(bin, dir, fmt.Appendf(nil, caddyfile, ports[0], ports[1]))
	if err != nil {
		return nil, err
	}
	s := &server{Proc: p, name: serverGateway,
		client: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		admin:  fmt.Sprintf("127.0.0.1:%d", ports[0])}
	if err := s.WaitReady(30*time.Second, func() error { _, err := s.conns(); return err }); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// startReference runs the node reference server script with node and
// waits until it answers.
func startReference(node, script, dir string) (*server, error) {
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("reference server: %w", err)
	}
	ports, err := serverproc.FreePorts(1)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the reference's directory: %w", err)
	}
	cmd := exec.Command(node, "--expose-gc", script, strconv.Itoa(ports[0]))
	cmd.Dir = filepath.Dir(script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := serverproc.Start("node", cmd, filepath.Join(dir, "node.log"), nil)
	if err != nil {
		return nil, err
	}
	s := &server{Proc: p, name: serverReference, client: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	if err := s.WaitReady(30*time.Second, func() error { _, err := s.conns(); return err }); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w (is socket.io installed? run npm ci at the repository root)", err)
	}
	return s, nil
}

// gwStats is the part of the gateway's /push_gateway/stats the run reads.
type gwStats struct {
	Connections struct {
		SocketIO int64 `json:"socketio"`
	} `json:"connections"`
	Dropped    int64 `json:"dropped"`
	SlowCloses int64 `json:"slow_consumer_closes"`
	Goroutines int   `json:"goroutines"`
}

// refStats is the part of the reference's /stats the run reads.
type refStats struct {
	Sockets int64 `json:"sockets"`
}

func (s *server) gatewayStats() (gwStats, error) {
	var st gwStats
	err := gwadmin.Stats(httpClient, s.admin, &st)
	return st, err
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
	return decodeJSON(b, v)
}

// conns answers the Socket.IO connections the server counts.
func (s *server) conns() (int64, error) {
	if s.admin != "" {
		st, err := s.gatewayStats()
		return st.Connections.SocketIO, err
	}
	var st refStats
	err := s.getJSON("/stats", &st)
	return st.Sockets, err
}

// gc makes the server collect its garbage: twice through pprof's gc=1 on
// the gateway (objects with finalizers, closed sockets, go in the second),
// global.gc() twice on the reference.
func (s *server) gc() error {
	if s.admin != "" {
		for range 2 {
			if _, err := procstat.GCMemStats(httpClient, s.admin); err != nil {
				return err
			}
		}
		return nil
	}
	var ans struct {
		GC bool `json:"gc"`
	}
	if err := s.getJSON("/gc", &ans); err != nil {
		return err
	}
	if !ans.GC {
		return errors.New("the reference server runs without --expose-gc")
	}
	return nil
}

// publishBody is one broadcast: its index and the wall clock in data.
func publishBody(key string, idx int, now time.Time) string {
	return `{"sdk_key":"` + key + `","event":"update","data":{"i":` + strconv.Itoa(idx) +
		`,"t":` + strconv.FormatInt(now.UnixNano(), 10) + `}}`
}

// publish broadcasts update idx to key, stamped now.
func (s *server) publish(key string, idx int) error {
	body := publishBody(key, idx, time.Now())
	if s.admin != "" {
		_, err := gwadmin.Publish(httpClient, s.admin, body)
		return err
	}
	resp, err := httpClient.Post("http://"+s.client+"/publish", "application/json", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publishing: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// waitConns polls the server until it counts want connections.
func (s *server) waitConns(want int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got, err := s.conns()
		if err != nil {
			return err
		}
		if got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s counts %d connections after %v, want %d", s.name, got, limit, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}
