package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/benchcmd"
)

// serverFrame is an unmasked text frame, as a server sends it.
func serverFrame(payload string) string {
	return string([]byte{0x81, byte(len(payload))}) + payload
}

// wssServer answers a WebSocket upgrade over TLS with the native protocol's
// registered message and one message stamped now, then holds the
// connection until the client closes it. It offers h2 as well as
// http/1.1, as caddy does, and refuses an upgrade over HTTP/2.
func wssServer(tb testing.TB) *httptest.Server {
	tb.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 || r.TLS == nil || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want a WebSocket upgrade over TLS with HTTP/1.1", http.StatusUpgradeRequired)
			return
		}
		nc, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		msg := fmt.Sprintf(`{"type":"message","sdk_key":"k","epoch":"e","seq":1,"event":"update","data":{"t":%d},"ts":1}`, time.Now().UnixNano())
		_, _ = io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"+
			serverFrame(`{"type":"registered","sdk_key":"k"}`)+serverFrame(msg))
		_, _ = io.Copy(io.Discard, bufio.NewReader(nc))
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv
}

func TestWebSocketTLSClients(t *testing.T) {
	srv := wssServer(t)
	tlsAddr := strings.TrimPrefix(srv.URL, "https://")
	tests := []struct {
		name string
		n    int
	}{
		{name: "one client", n: 1},
		{name: "several clients", n: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(transportWSTLS, "k", "127.0.0.1:1", tlsAddr, 1, 0)
			defer f.close()
			f.measureFrom.Store(1)
			f.open(tc.n)
			err := benchcmd.WaitFor(10*time.Second, func() bool { return f.received(1) == int64(tc.n) || f.err() != nil })
			if err := f.err(); err != nil {
				t.Fatal(err)
			}
			if err != nil {
				t.Fatalf("%d of %d clients received the message: %v", f.received(1), tc.n, err)
			}
			if got := f.ready.Load(); got != int64(tc.n) {
				t.Fatalf("ready = %d, want %d", got, tc.n)
			}
			if got := f.tlsInfo(); !strings.HasSuffix(got, ", http/1.1") || !strings.HasPrefix(got, "TLS 1.") {
				t.Fatalf("tlsInfo = %q, want TLS 1.x, http/1.1", got)
			}
			if got := len(f.measured()); got != tc.n {
				t.Fatalf("%d delays recorded, want %d", got, tc.n)
			}
		})
	}
}
