package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartSentinel runs a Sentinel monitoring master under name (quorum 1,
// down after 2s) and waits until it answers for name. Its URL is
// redis-sentinel://[:password@]127.0.0.1:port/name, the password being the
// master's (the Sentinel itself asks none).
func StartSentinel(tb testing.TB, master *Server, name string) *Server {
	tb.Helper()
	dir := tb.TempDir()
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds %s 2000\n"+
		"sentinel failover-timeout %s 10000\n", name, master.Port, name, name)
	if master.cfg.password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", name, master.cfg.password)
	}
	path := filepath.Join(dir, "sentinel.conf")
	// Sentinel rewrites its config file, so it must be its own and writable.
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		tb.Fatalf("redistest: writing %s: %v", path, err)
	}
	// redis-server <conf> --sentinel: the config file comes first.
	s := start(tb, config{}, dir, []string{path, "--sentinel"}, nil)
	s.sentinel = name
	s.urlPass = master.cfg.password
	deadline := time.Now().Add(readyTimeout)
	for {
		out, err := s.Try("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
		if err == nil && strings.TrimSpace(out) != "" {
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: sentinel %s does not know master %q within %v: %v", s.Addr, name, readyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the Sentinel: nothing to wait on
	}
}
