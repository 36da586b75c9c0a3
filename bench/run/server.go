package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrNotReady is returned when a server does not come up in time.
var ErrNotReady = errors.New("server not ready")

// server is one running server under test.
type server struct {
	name   string
	cmd    *exec.Cmd
	client string // host:port of the client endpoint
	admin  string // host:port of the admin endpoint
	logf   string // where its stderr goes
	exited chan struct{}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// freePort binds :0 on loopback and answers the port the kernel chose. The
// port is free again when it returns; caddy binds it a moment later, the
// small race every "pick a port for a child" has.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// caddyfile is the gateway's configuration for a run: long heartbeat and
// idle timeout so that no ping or close happens during a measurement.
const caddyfile = `{
	admin 127.0.0.1:%d
	persist_config off
	auto_https off
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	push_gateway /realtime* {
		heartbeat 1h
		idle_timeout 2h
	}
}
`

// startCaddy writes a Caddyfile into dir and runs bin with it.
func startCaddy(bin, dir, name string) (*server, error) {
	ap, err := freePort()
	if err != nil {
		return nil, err
	}
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	cf := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(cf, fmt.Appendf(nil, caddyfile, ap, cp), 0o644); err != nil {
		return nil, fmt.Errorf("writing Caddyfile: %w", err)
	}
	cmd := exec.Command(bin, "run", "--config", cf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	s := &server{
		name:   name,
		cmd:    cmd,
		client: fmt.Sprintf("127.0.0.1:%d", cp),
		admin:  fmt.Sprintf("127.0.0.1:%d", ap),
		logf:   filepath.Join(dir, name+".log"),
	}
	if err := s.start(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// startBaseline runs the baseline and reads its addresses from its stdout.
func startBaseline(bin, dir, name string) (*server, error) {
	cmd := exec.Command(bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("piping baseline stdout: %w", err)
	}
	s := &server{name: name, cmd: cmd, logf: filepath.Join(dir, name+".log")}
	addrs := make(chan map[string]string, 1)
	if err := s.start(func() {
		var m map[string]string
		line, _ := bufio.NewReader(out).ReadBytes('\n')
		_ = json.Unmarshal(line, &m)
		addrs <- m
		_, _ = io.Copy(io.Discard, out)
	}); err != nil {
		return nil, err
	}
	select {
	case m := <-addrs:
		if m["client"] == "" || m["admin"] == "" {
			s.stop()
			return nil, fmt.Errorf("%w: baseline printed no addresses: %s", ErrNotReady, s.logTail())
		}
		s.client, s.admin = m["client"], m["admin"]
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, fmt.Errorf("%w: baseline printed no addresses in 10s", ErrNotReady)
	}
	return s, nil
}

// start runs s.cmd with stderr to s.logf; drain, if set, reads its stdout.
func (s *server) start(drain func()) error {
	logf, err := os.Create(s.logf)
	if err != nil {
		return fmt.Errorf("creating server log: %w", err)
	}
	s.cmd.Stderr = logf
	if s.cmd.Stdout == nil && drain == nil {
		s.cmd.Stdout = logf
	}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", s.name, err)
	}
	s.exited = make(chan struct{})
	go func() {
		if drain != nil {
			drain()
		}
		_ = s.cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	return nil
}

// stop asks the server to exit (SIGINT), then kills it after 15s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// logTail answers the end of the server's log, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logf)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// srvStats is the part of GET /push_gateway/stats the runner reads.
type srvStats struct {
	Connections struct {
		Total int64 `json:"total"`
	} `json:"connections"`
	Published  int64 `json:"published"`
	Delivered  int64 `json:"delivered"`
	Dropped    int64 `json:"dropped"`
	SlowCloses int64 `json:"slow_consumer_closes"`
	Goroutines int   `json:"goroutines"`
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// stats reads the server's stats.
func (s *server) stats() (srvStats, error) {
	var st srvStats
	resp, err := httpClient.Get("http://" + s.admin + "/push_gateway/stats")
	if err != nil {
		return st, fmt.Errorf("getting stats: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("getting stats: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decoding stats: %w", err)
	}
	return st, nil
}

// waitReady polls the stats route until it answers, the process exits or
// limit is up.
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
			return fmt.Errorf("%w: %s exited: %s", ErrNotReady, s.name, s.logTail())
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: %s: %w; log: %s", ErrNotReady, s.name, last, s.logTail())
}

// publish sends one broadcast stamped with the current wall clock in ns and
// answers the seq the server gave it, the stamp and how long the publish
// call took.
func (s *server) publish(key string) (seq int64, stamp time.Time, took time.Duration, err error) {
	start := time.Now()
	stamp = start
	body := fmt.Sprintf(`{"sdk_key":%q,"event":"update","data":{"t":%d}}`, key, start.UnixNano())
	resp, err := httpClient.Post("http://"+s.admin+"/push_gateway/publish", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, stamp, 0, fmt.Errorf("publishing: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	took = time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return 0, stamp, took, fmt.Errorf("publishing: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var ans struct {
		Published []struct {
			Seq int64 `json:"seq"`
		} `json:"published"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || len(ans.Published) != 1 {
		return 0, stamp, took, fmt.Errorf("publishing: unexpected answer %q", b)
	}
	return ans.Published[0].Seq, stamp, took, nil
}
