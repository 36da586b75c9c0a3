package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/gwadmin"
	"github.com/pushgateway/push_gateway/bench/internal/serverproc"
)

// server is one running server under test.
type server struct {
	*serverproc.Proc
	client string // host:port of the client endpoint
	admin  string // host:port of the admin endpoint
}

// caddyfile is the gateway's configuration for a run: long heartbeat and
// idle timeout so that no ping or close happens during a measurement.
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
		heartbeat 1h
		idle_timeout 2h
	}
}
`

// startCaddy writes a Caddyfile into dir and runs bin with it.
func startCaddy(bin, dir, name string) (*server, error) {
	ports, err := serverproc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	ap, cp := ports[0], ports[1]
	cf := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(cf, fmt.Appendf(nil, caddyfile, ap, cp), 0o644); err != nil {
		return nil, fmt.Errorf("writing Caddyfile: %w", err)
	}
	cmd := serverproc.CaddyCommand(bin, cf, dir)
	p, err := serverproc.Start(name, cmd, filepath.Join(dir, name+".log"), nil)
	if err != nil {
		return nil, err
	}
	return &server{
		Proc:   p,
		client: fmt.Sprintf("127.0.0.1:%d", cp),
		admin:  fmt.Sprintf("127.0.0.1:%d", ap),
	}, nil
}

// startBaseline runs the baseline and reads its addresses from its stdout.
func startBaseline(bin, dir, name string) (*server, error) {
	cmd := exec.Command(bin)
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
	s := &server{Proc: p}
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
	return s, nil
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
	err := gwadmin.Stats(httpClient, s.admin, &st)
	return st, err
}

// waitReady polls the stats route until it answers, the process exits or
// limit is up.
func (s *server) waitReady(limit time.Duration) error {
	return s.WaitReady(limit, func() error {
		_, err := s.stats()
		return err
	})
}

// publish sends one broadcast stamped with the current wall clock in ns and
// answers the seq the server gave it, the stamp and how long the publish
// call took.
func (s *server) publish(key string) (seq int64, stamp time.Time, took time.Duration, err error) {
	stamp = time.Now()
	body := fmt.Sprintf(`{"sdk_key":%q,"event":"update","data":{"t":%d}}`, key, stamp.UnixNano())
	u, err := gwadmin.Publish(httpClient, s.admin, body)
	return int64(u), stamp, time.Since(stamp), err
}
