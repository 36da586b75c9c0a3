package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

func startTLSNode(t testing.TB) *Node {
	t.Helper()
	return startNode(t, nodeSpec{config: tlsCaddyfile(nil), adapter: "caddyfile", waitTLS: true})
}

// TestTLS covers the gateway behind Caddy's TLS: wss works, and an upgrade
// attempt over HTTP/2 gets 426 rather than a failed hijack.
func TestTLS(t *testing.T) {
	n := startTLSNode(t)

	t.Run("wss round trip", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSSURL(route))
		c.Register(t, key)
		n.PublishOK(t, key, "", `{"tls":true}`)
		if m := c.ExpectMessage(t, key, 1); string(m.Data) != `{"tls":true}` {
			t.Fatalf("data %s", m.Data)
		}
		c.Send(t, `{"type":"ping"}`)
		if m := c.ReadMsg(t, msgTimeout); m.Type != "pong" {
			t.Fatalf("want pong, got %s", m.Raw)
		}
	})

	t.Run("websocket attempt over HTTP/2 is 426", func(t *testing.T) {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: true,
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s?sdk_key=%s", n.HTTPSPort, route, testKey(t, "k")), nil)
		if err != nil {
			t.Fatal(err)
		}
		// HTTP/2 forbids Upgrade and Connection (RFC 9113 8.2.2: Go's client
		// refuses to send them, Go's server answers 400 before any handler),
		// so a WebSocket attempt over h2 carries only the Sec-WebSocket-*
		// headers of the handshake.
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.ProtoMajor != 2 {
			t.Fatalf("request went over %s, want HTTP/2", resp.Proto)
		}
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("status %s (%q), want 426", resp.Status, body)
		}
		if n.Exited() {
			t.Fatal("caddy exited")
		}
	})
}
