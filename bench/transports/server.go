package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/gwadmin"
	"github.com/pushgateway/push_gateway/bench/internal/serverproc"
)

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

// tlsSite is added for WebSocket over TLS and SSE over HTTP/2: Caddy's
// default protocols on a TLS site are h1, h2 and h3, so each client's ALPN
// offer picks (http/1.1 for websocket-tls, h2 for sse-h2), and tls internal
// needs no outside CA.
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
	*serverproc.Proc
	client string // host:port of the site
	tls    string // host:port of the TLS site; "" when there is none
	admin  string // host:port of the admin endpoint
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// startCaddy writes the Caddyfile into dir, runs bin with it and waits
// until the admin endpoint answers; withTLS adds a TLS site.
func startCaddy(bin, dir string, withTLS bool) (*server, error) {
	// Admin, site and, withTLS, the TLS site.
	ports, err := serverproc.FreePorts(3)
	if err != nil {
		return nil, err
	}
	ap, cp, tp := ports[0], ports[1], ports[2]
	cfg := fmt.Appendf(nil, caddyfile, ap, cp, route)
	tlsAddr := ""
	if withTLS {
		cfg = fmt.Appendf(cfg, tlsSite, tp, route)
		tlsAddr = fmt.Sprintf("127.0.0.1:%d", tp)
	}
	p, err := serverproc.StartCaddy(bin, dir, cfg)
	if err != nil {
		return nil, err
	}
	s := &server{
		Proc:   p,
		tls:    tlsAddr,
		client: fmt.Sprintf("127.0.0.1:%d", cp),
		admin:  fmt.Sprintf("127.0.0.1:%d", ap),
	}
	err = s.WaitReady(30*time.Second, func() error {
		_, err := s.stats()
		return err
	})
	if err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
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
	case transportWS, transportWSTLS:
		return st.Connections.WebSocket
	case transportSSE, transportSSEH2:
		return st.Connections.SSE
	default:
		return st.Connections.Poll
	}
}

// stats reads caddy's stats.
func (s *server) stats() (srvStats, error) {
	var st srvStats
	err := gwadmin.Stats(httpClient, s.admin, &st)
	return st, err
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
	return gwadmin.Publish(httpClient, s.admin, body)
}

// waitTLS polls the TLS site with an immediate long poll until it answers
// over HTTP/2: caddy issues its internal certificate after it starts, and
// that must be done before the baseline snapshot (for websocket-tls too,
// whose clients then speak http/1.1 to the same site).
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
	return fmt.Errorf("%w: TLS site: %w; log: %s", serverproc.ErrNotReady, last, s.LogTail())
}

// heapProfile saves caddy's heap profile, after a GC, as dir/name; an
// empty dir saves nothing. Compare two with
// go tool pprof -sample_index=inuse_space -top -diff_base=before after.
func (s *server) heapProfile(dir, name string) error {
	if dir == "" {
		return nil
	}
	resp, err := httpClient.Get("http://" + s.admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return fmt.Errorf("fetching the heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching the heap profile: %s", resp.Status)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("profile directory: %w", err)
	}
	out, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("saving the heap profile: %w", err)
	}
	if _, err := io.Copy(out, io.LimitReader(resp.Body, 256<<20)); err != nil {
		out.Close()
		return fmt.Errorf("saving the heap profile: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("saving the heap profile: %w", err)
	}
	return nil
}
