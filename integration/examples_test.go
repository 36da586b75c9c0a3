package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// examplesDir holds the Caddyfiles the README points operators to.
const examplesDir = "../caddyfile-examples"

// TestExamples adapts every example with `caddy adapt`, starts the adapted
// config, and makes a round trip on it: a native WebSocket on examples that
// serve it, the Engine.IO open packet and the toggle backend behind
// reverse_proxy on the Socket.IO ones. Examples live in
// caddyfile-examples/<name>/Caddyfile and reach ports and the backend
// through {$PORT}, {$HTTP_PORT}, {$HTTPS_PORT}, {$ADMIN} and {$BACKEND}.
func TestExamples(t *testing.T) {
	examples, err := filepath.Glob(filepath.Join(examplesDir, "*", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	top, _ := filepath.Glob(filepath.Join(examplesDir, "*Caddyfile"))
	examples = append(examples, top...)
	if len(examples) == 0 {
		t.Skip("no examples in " + examplesDir + " yet")
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"backend":true}`)
	}))
	t.Cleanup(backend.Close)

	for _, path := range examples {
		name := filepath.Base(filepath.Dir(path))
		if filepath.Dir(path) == filepath.Clean(examplesDir) {
			name = filepath.Base(path)
		}
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			src := string(text)
			if strings.Contains(src, "broker redis") {
				t.Skip("cluster example: needs redis-server (not this test's scope yet)")
			}
			plainSite := siteLine(src, "PORT")
			tlsSite := siteLine(src, "HTTPS_PORT")
			if plainSite == "" && tlsSite == "" {
				t.Fatal("no site on {$PORT} or {$HTTPS_PORT}: the test cannot reach it")
			}
			spec := nodeSpec{
				config:  src,
				adapter: "json",
				env:     map[string]string{"BACKEND": backend.Listener.Addr().String()},
				waitTLS: tlsSite != "",
				tlsName: hostOf(tlsSite),
				waitPorts: func(n *Node) []int {
					var ps []int
					if plainSite != "" {
						ps = append(ps, n.Port)
					}
					if tlsSite != "" {
						ps = append(ps, n.HTTPSPort)
					}
					return ps
				},
				prepare: adaptExample,
			}
			n := startNode(t, spec)
			wsURL, host := n.WSURL, hostOf(plainSite)
			port := n.Port
			if plainSite == "" {
				wsURL, host, port = n.WSSURL, hostOf(tlsSite), n.HTTPSPort
			}
			hostHeader := ""
			if host != "" {
				hostHeader = fmt.Sprintf("%s:%d", host, port)
			}
			routePath := exampleRoute(src)
			if strings.Contains(src, "{$BACKEND") && plainSite != "" {
				t.Run("backend behind reverse_proxy", func(t *testing.T) {
					expectBackend(t, n, hostHeader)
				})
			}
			if paths := socketIOPaths(src); len(paths) > 0 {
				for _, p := range paths {
					t.Run("engine.io open packet on "+p, func(t *testing.T) {
						// Engine.IO answers the WebSocket with its open packet first.
						c := DialWith(t, wsURL(p+"?EIO=4&transport=websocket"), DialOpts{Host: hostHeader})
						e, ok := c.Next(msgTimeout)
						if !ok || e.Op != opText || !strings.HasPrefix(string(e.Data), "0{") || !strings.Contains(string(e.Data), `"sid"`) {
							t.Fatalf("want the Engine.IO open packet, got %v (within %v: %v)", e, msgTimeout, ok)
						}
					})
				}
				return
			}
			key := testKey(t, "k")
			c := DialWith(t, wsURL(routePath), DialOpts{Host: hostHeader})
			c.Register(t, key)
			n.PublishOK(t, key, "", `{"example":true}`)
			if m := c.ExpectMessage(t, key, 1); string(m.Data) != `{"example":true}` {
				t.Fatalf("data %s", m.Data)
			}
		})
	}
}

// expectBackend checks that a toggle request reaches the backend through
// the example's reverse_proxy.
func expectBackend(t testing.TB, n *Node, host string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.HTTP+"/api/server-sdk/toggles", nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != `{"backend":true}` {
		t.Fatalf("toggles request answered %s %q, want the backend's answer", resp.Status, b)
	}
}

// adaptExample runs `caddy adapt` on the example (in the node's environment,
// so the placeholders take the node's ports), then points the admin
// endpoint at the node's and keeps a `tls internal` CA out of the system
// trust store.
func adaptExample(t testing.TB, n *Node, src string) string {
	t.Helper()
	// The examples take ADMIN as an address, not a port.
	n.env = append(n.env, fmt.Sprintf("ADMIN=127.0.0.1:%d", n.AdminPort))
	in := filepath.Join(n.Dir, "Caddyfile")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, "adapt", "--config", in, "--adapter", "caddyfile")
	cmd.Dir = n.Dir
	cmd.Env = n.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("caddy adapt: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "push_gateway") {
		t.Fatalf("adapted config has no push_gateway:\n%s", stdout.String())
	}
	var cfg map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &cfg); err != nil {
		t.Fatalf("adapted config: %v", err)
	}
	admin, _ := cfg["admin"].(map[string]any)
	if admin == nil {
		admin = map[string]any{}
		cfg["admin"] = admin
	}
	admin["listen"] = fmt.Sprintf("127.0.0.1:%d", n.AdminPort)
	if strings.Contains(stdout.String(), `"internal"`) {
		apps, _ := cfg["apps"].(map[string]any)
		pki, _ := apps["pki"].(map[string]any)
		if pki == nil {
			pki = map[string]any{}
			apps["pki"] = pki
		}
		cas, _ := pki["certificate_authorities"].(map[string]any)
		if cas == nil {
			cas = map[string]any{}
			pki["certificate_authorities"] = cas
		}
		local, _ := cas["local"].(map[string]any)
		if local == nil {
			local = map[string]any{}
			cas["local"] = local
		}
		local["install_trust"] = false
	}
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

var (
	directiveRE      = regexp.MustCompile(`(?m)^\s*push_gateway\s+(/\S*)`)
	namedDirectiveRE = regexp.MustCompile(`(?m)^\s*push_gateway\s+(@\S+)`)
	socketIORE       = regexp.MustCompile(`(?m)^\s*socketio_path\s+([^\n#]+)`)
)

// siteLine returns the address of the first site block on the port
// placeholder {$<name>} (with or without a default), or "".
func siteLine(src, name string) string {
	re := regexp.MustCompile(`(?m)^(\S*\{\$` + name + `(?::[^}]*)?\})\s*\{\s*$`)
	if m := re.FindStringSubmatch(src); m != nil {
		return m[1]
	}
	return ""
}

// hostOf is the host name of a site address, "" when it names none.
func hostOf(site string) string {
	site = strings.TrimPrefix(strings.TrimPrefix(site, "http://"), "https://")
	if i := strings.Index(site, ":{$"); i >= 0 {
		return site[:i]
	}
	return ""
}

// exampleRoute finds the path the first push_gateway directive serves: its
// path matcher, or the first path of its named matcher (`@name path ...`);
// default /.
func exampleRoute(src string) string {
	if m := directiveRE.FindStringSubmatch(src); m != nil {
		return strings.TrimSuffix(m[1], "*")
	}
	if m := namedDirectiveRE.FindStringSubmatch(src); m != nil {
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(m[1]) + `\s+path\s+(/\S*)`)
		if p := re.FindStringSubmatch(src); p != nil {
			return strings.TrimSuffix(p[1], "*")
		}
	}
	return "/"
}

// socketIOPaths lists the Engine.IO paths of an example that enables the
// socketio transport.
func socketIOPaths(src string) []string {
	if !regexp.MustCompile(`(?m)^\s*transports\s[^\n]*\bsocketio\b`).MatchString(src) {
		return nil
	}
	if m := socketIORE.FindStringSubmatch(src); m != nil {
		return strings.Fields(m[1])
	}
	return []string{"/socket.io/", "/realtime/", "/server/realtime/"}
}
