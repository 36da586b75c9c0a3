package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPieces covers CONTRACT "Pieces": the module IDs, one hub shared by
// every handler and the admin routes, and no listener of the gateway's own.
func TestPieces(t *testing.T) {
	t.Run("module IDs", func(t *testing.T) {
		out, err := (&Node{}).caddyCmdNoNode(t, "list-modules")
		if err != nil {
			t.Fatalf("caddy list-modules: %v\n%s", err, out)
		}
		mods := strings.Fields(string(out))
		for _, id := range []string{"http.handlers.push_gateway", "admin.api.push_gateway"} {
			if !slices.Contains(mods, id) {
				t.Errorf("module %s not registered", id)
			}
		}
	})

	t.Run("one hub for every handler", func(t *testing.T) {
		cfg := "{" + globalOptions + "}\n\nhttp://127.0.0.1:{$PORT} {\n" +
			"\tpush_gateway /realtime*\n\tpush_gateway /other*\n" + fallback
		n := startCaddy(t, cfg)
		key := testKey(t, "k")
		a := Dial(t, n.WSURL("/realtime"))
		a.Register(t, key)
		b := Dial(t, n.WSURL("/other"))
		b.Register(t, key)
		p := n.PublishOK(t, key, "", `"both"`)
		if p.LocalReceivers != 2 {
			t.Fatalf("local_receivers %d, want 2: the handlers do not share the admin's hub", p.LocalReceivers)
		}
		for _, c := range []*Client{a, b} {
			if m := c.ExpectMessage(t, key, 1); m.Epoch != p.Epoch {
				t.Fatalf("epoch %s, publish said %s", m.Epoch, p.Epoch)
			}
		}
	})

	t.Run("no listener of its own", func(t *testing.T) {
		n := startCaddy(t, caddyfile(nil, nil))
		c := Dial(t, n.WSURL(route))
		c.Register(t, testKey(t, "k"))
		ports, err := listeningPorts(n.cmd.Process.Pid)
		if err != nil {
			t.Skipf("cannot read the process's sockets: %v", err)
		}
		for _, p := range ports {
			if p != n.Port && p != n.AdminPort {
				t.Errorf("caddy listens on port %d; configured are %d (site) and %d (admin)", p, n.Port, n.AdminPort)
			}
		}
		if !slices.Contains(ports, n.Port) || !slices.Contains(ports, n.AdminPort) {
			t.Errorf("listening ports %v lack the site %d or admin %d: the check is blind", ports, n.Port, n.AdminPort)
		}
	})
}

// caddyCmdNoNode runs caddy outside any node (list-modules, version).
func (*Node) caddyCmdNoNode(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	n := &Node{Dir: t.TempDir(), env: os.Environ()}
	return n.CaddyCmd(t, args...)
}

// listeningPorts lists the TCP ports pid listens on, from /proc.
func listeningPorts(pid int) ([]int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			_, portHex, _ := strings.Cut(fields[1], ":")
			p, err := strconv.ParseInt(portHex, 16, 32)
			if err == nil && !slices.Contains(ports, int(p)) {
				ports = append(ports, int(p))
			}
		}
		f.Close()
	}
	return ports, nil
}

// TestCaddyfileOptions covers the Caddyfile options of CONTRACT
// "Caddyfile" not proven elsewhere: transports, history_ttl, and the
// global byte cap turning evicted history into resync, never a gap.
func TestCaddyfileOptions(t *testing.T) {
	t.Run("transports without websocket refuse the upgrade", func(t *testing.T) {
		n := startCaddy(t, caddyfile(nil, []string{"transports sse poll"}))
		_, status, err := TryDial(t, n.WSURL(route+"?sdk_key=k"), DialOpts{})
		if err == nil {
			t.Fatal("WebSocket accepted on a route without the websocket transport")
		}
		if status < 400 || status >= 500 {
			t.Fatalf("upgrade answered %d (%v), want a 4xx", status, err)
		}
	})

	t.Run("history_ttl", func(t *testing.T) {
		n := startCaddy(t, caddyfile([]string{"history_ttl 1s"}, nil))
		key := testKey(t, "k")
		p := n.PublishOK(t, key, "", `1`)
		n.PublishOK(t, key, "", `2`)
		published := time.Now()
		// Messages older than the TTL are gone: a resume from before them
		// is told to resync. Expiry may be lazy, hence polling.
		deadline := time.Now().Add(30 * time.Second)
		for attempt := 1; ; attempt++ {
			c := Dial(t, n.WSURL(route))
			c.Send(t, map[string]any{"type": "register", "sdk_key": key, "since": 0, "epoch": p.Epoch})
			reg := c.ReadMsg(t, msgTimeout)
			if reg.Type != "registered" {
				t.Fatalf("want registered, got %s", reg.Raw)
			}
			m, err := c.NextMsg(msgTimeout)
			if err != nil {
				t.Fatalf("attempt %d, %v after publishing, resuming from since 0 in epoch %s: %s, then %v: history expired into silence, not resync",
					attempt, time.Since(published).Round(time.Millisecond), p.Epoch, reg.Raw, err)
			}
			c.Close()
			if m.Type == "resync" {
				break
			}
			if m.Type != "message" || m.Seq != 1 {
				t.Fatalf("resume from 0: want message 1 or resync, got %s", m.Raw)
			}
			if time.Now().After(deadline) {
				t.Fatal("history still replayed 30s after a 1s history_ttl")
			}
			time.Sleep(250 * time.Millisecond) // polling interval
		}
	})

	t.Run("history_max_bytes evicts into resync", func(t *testing.T) {
		n := startCaddy(t, caddyfile([]string{"history_size 256", "history_max_bytes 65536"}, nil))
		key := testKey(t, "k")
		data := `"` + strings.Repeat("y", 8<<10) + `"`
		var last Published
		for range 20 {
			last = n.PublishOK(t, key, "", data)
		}
		tests := []struct {
			name  string
			since uint64
		}{
			{name: "since 0", since: 0},
			{name: "since 10", since: 10},
			{name: "since 17", since: 17},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c := Dial(t, n.WSURL(route))
				c.Send(t, map[string]any{"type": "register", "sdk_key": key, "since": tc.since, "epoch": last.Epoch})
				if m := c.ReadMsg(t, msgTimeout); m.Type != "registered" || m.Seq != last.Seq {
					t.Fatalf("want registered seq %d, got %s", last.Seq, m.Raw)
				}
				// 20 messages of 8 KiB exceed the 64 KiB cap: resuming from
				// 0 must resync; otherwise a replay must be complete.
				m := c.ReadMsg(t, msgTimeout)
				if m.Type == "resync" {
					return
				}
				if tc.since == 0 {
					t.Fatalf("160 KiB of history under a 64 KiB cap, yet no resync: %s", truncate(m.Raw, 100))
				}
				for want := tc.since + 1; ; want++ {
					if m.Type != "message" || m.Seq != want {
						t.Fatalf("replay: want seq %d, got %s", want, truncate(m.Raw, 100))
					}
					if want == last.Seq {
						break
					}
					m = c.ReadMsg(t, msgTimeout)
				}
			})
		}
		if status, b := n.AdminDo(t, http.MethodGet, "/push_gateway/stats", "", nil); status != http.StatusOK {
			t.Fatalf("stats %d %s", status, b)
		}
	})
}
