package redistest

import (
	"strings"
	"testing"
)

func TestStartKillRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if got := s.Do(t, "SET", "k", "v"); got != "OK" {
		t.Fatalf("SET = %q", got)
	}
	if got := s.Do(t, "GET", "k"); got != "v" {
		t.Fatalf("GET = %q", got)
	}
	s.Kill(t)
	if s.Alive() {
		t.Fatal("alive after Kill")
	}
	if _, err := s.Try("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	port := s.Port
	s.Restart(t)
	if s.Port != port {
		t.Fatalf("port %d after restart, want %d", s.Port, port)
	}
	if got := s.Do(t, "GET", "k"); got != "" {
		t.Fatalf("GET after restart = %q, want empty (no persistence)", got)
	}
	if got := s.Do(t, "RPUSH", "l", "a", "b"); got != "2" {
		t.Fatalf("RPUSH = %q", got)
	}
	if got := s.Do(t, "LRANGE", "l", "0", "-1"); got != "a\nb" {
		t.Fatalf("LRANGE = %q", got)
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	s := Start(t, WithPassword("p@ss word"))
	if got := s.Do(t, "PING"); got != "PONG" {
		t.Fatalf("PING = %q", got)
	}
	if want := "redis://:p@ss%20word@" + s.Addr + "/0"; s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)
	for _, n := range c.Nodes {
		if info := n.Do(t, "CLUSTER", "INFO"); !strings.Contains(info, "cluster_known_nodes:3") {
			t.Fatalf("%s: %s", n.Addr, info)
		}
	}
	if !strings.HasPrefix(c.URL(), "redis-cluster://127.0.0.1:") || strings.Count(c.URL(), ",") != 2 {
		t.Fatalf("URL = %q", c.URL())
	}
	n := c.Nodes[1]
	n.Restart(t)
	c.WaitOK(t)
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	m := Start(t, WithPassword("pw"))
	s := StartSentinel(t, m, "mymaster")
	out := s.Do(t, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
	if want := "127.0.0.1\n" + m.Addr[len("127.0.0.1:"):]; out != want {
		t.Fatalf("master addr = %q, want %q", out, want)
	}
	if want := "redis-sentinel://:pw@" + s.Addr + "/mymaster"; s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
}
