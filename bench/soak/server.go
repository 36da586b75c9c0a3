package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/gwadmin"
	"github.com/pushgateway/push_gateway/bench/internal/procstat"
	"github.com/pushgateway/push_gateway/bench/internal/serverproc"
)

// caddyfile is the node: a 10s heartbeat (the clients answer pings) and
// the default queue and history sizes, which the stallers must overrun.
const caddyfile = `{
	admin 127.0.0.1:%d
	persist_config off
	skip_install_trust
	push_gateway {
		history_size %d
%s	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	push_gateway %s* {
		heartbeat 10s
		idle_timeout 60s
	}
}
`

// route is where the gateway serves clients.
const route = "/realtime"

// server is the running caddy.
type server struct {
	*serverproc.Proc
	client string // host:port of the site
	admin  string // host:port of the admin endpoint
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// startCaddy writes the Caddyfile into dir, runs bin with it and waits
// until the gateway's stats answer.
func startCaddy(bin, dir string, o options) (*server, error) {
	ports, err := serverproc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	broker := ""
	if o.redis != "" {
		broker = "\t\tbroker redis " + o.redis + "\n\t\tnode_id soak\n"
	}
	cfg := fmt.Appendf(nil, caddyfile, ports[0], o.history, broker, ports[1], route)
	p, err := serverproc.StartCaddy(bin, dir, cfg)
	if err != nil {
		return nil, err
	}
	s := &server{Proc: p, admin: fmt.Sprintf("127.0.0.1:%d", ports[0]), client: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	if err := s.WaitReady(60*time.Second, func() error { _, err := s.stats(); return err }); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// srvStats is the part of GET /push_gateway/stats the run reads.
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

func (s *server) stats() (srvStats, error) {
	var st srvStats
	err := gwadmin.Stats(httpClient, s.admin, &st)
	return st, err
}

// Snapshot is caddy's memory, goroutines and descriptors with the load
// paused, after forced collections and once its RSS settled.
type Snapshot struct {
	RSSKB      int64 `json:"rss_kb"`
	Settled    bool  `json:"rss_settled"`
	HeapInuse  int64 `json:"heap_inuse"`
	StackInuse int64 `json:"stack_inuse"`
	Goroutines int   `json:"goroutines"`
	FDs        int   `json:"fds"`
}

// snapshot reads the figures; with profile set it also saves caddy's heap
// profile there, for `go tool pprof -base start end` when memory grew.
func (s *server) snapshot(profile string) (Snapshot, error) {
	var snap Snapshot
	// Two collections: objects with finalizers (closed sockets) go in the
	// second.
	for range 2 {
		m, err := procstat.GCMemStats(httpClient, s.admin)
		if err != nil {
			return snap, err
		}
		snap.HeapInuse, snap.StackInuse = m.HeapInuse, m.StackInuse
	}
	var err error
	if snap.RSSKB, snap.Settled, err = procstat.SettleRSS(s.Pid(), 250*time.Millisecond, 15*time.Second); err != nil {
		return snap, err
	}
	st, err := s.stats()
	if err != nil {
		return snap, err
	}
	snap.Goroutines = st.Goroutines
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.Pid()))
	if err != nil {
		return snap, fmt.Errorf("listing caddy's fds: %w", err)
	}
	snap.FDs = len(ents)
	if profile != "" {
		if err := s.saveHeapProfile(profile); err != nil {
			return snap, err
		}
	}
	return snap, nil
}

// saveHeapProfile writes caddy's heap profile (pprof's binary format) to
// path.
func (s *server) saveHeapProfile(path string) error {
	resp, err := httpClient.Get("http://" + s.admin + "/debug/pprof/heap")
	if err != nil {
		return fmt.Errorf("reading the heap profile: %w", err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("saving the heap profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("saving the heap profile: %w", err)
	}
	return f.Close()
}
