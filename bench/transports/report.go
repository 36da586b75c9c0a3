package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// Results is one run: results.json holds it as is.
type Results struct {
	Command    string            `json:"command"`
	Started    string            `json:"started"`
	Seconds    float64           `json:"seconds"`
	Machine    report.Machine    `json:"machine"`
	N          int               `json:"n"`
	Publishes  int               `json:"publishes"`
	Transports []TransportResult `json:"transports"`
}

// TransportResult is what one transport cost.
type TransportResult struct {
	Transport             string  `json:"transport"`
	N                     int     `json:"n"`
	TCPConns              int     `json:"tcp_conns"`     // connections carrying the N clients (sse-h2: a few)
	TLS                   string  `json:"tls,omitempty"` // TLS version and ALPN protocol the clients got; "" for plain HTTP
	ConnectSeconds        float64 `json:"connect_seconds"`
	RSSBeforeKB           int64   `json:"rss_before_kb"`
	RSSAfterKB            int64   `json:"rss_after_kb"`
	RSSPerConnBytes       float64 `json:"rss_per_conn_bytes"`
	HeapStackPerConnBytes float64 `json:"heap_stack_per_conn_bytes"`
	GoroutinesBefore      int     `json:"goroutines_before"`
	GoroutinesAfter       int     `json:"goroutines_after"`
	GoroutinesPerConn     float64 `json:"goroutines_per_conn"`
	Deliveries            int     `json:"deliveries"`
	P50Ms                 float64 `json:"p50_ms"`
	P99Ms                 float64 `json:"p99_ms"`
	MaxMs                 float64 `json:"max_ms"`
	CPUSeconds            float64 `json:"cpu_seconds"`
	CPUPerDeliveryUs      float64 `json:"cpu_per_delivery_us"`
	Dropped               int64   `json:"dropped"`
	SlowCloses            int64   `json:"slow_consumer_closes"`
	Error                 string  `json:"error,omitempty"`
}

// markdown renders the results as a table with the run's context.
func (r Results) markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# push_gateway: cost per transport\n\n")
	fmt.Fprintf(&b, "`%s` — %s, %d CPUs, Linux %s, %s; %s, %.0f s.\n\n",
		r.Command, r.Machine.CPU, r.Machine.CPUs, r.Machine.Kernel, r.Machine.Go, r.Started, r.Seconds)
	fmt.Fprintf(&b, "%d idle clients per transport, each transport in a fresh caddy process; "+
		"deltas of caddy's VmRSS and of heap+stack in use (after a forced GC) and of its goroutines, divided by %d. "+
		"Latency: %d publishes per transport to its %d followers, publisher's stamp to the client's receipt "+
		"(clients in one process on the same machine). CPU: caddy's utime+stime over those publishes, "+
		"per delivery (publish handling and long-poll re-polls included).\n\n",
		r.N, r.N, r.Publishes, r.N)
	b.WriteString("| transport | TCP conns | RSS / idle client | heap+stack / idle client | goroutines / idle client | p50 | p99 | max | server CPU / delivery |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, t := range r.Transports {
		if t.Error != "" {
			fmt.Fprintf(&b, "| %s | failed: %s ||||||||\n", t.Transport, strings.ReplaceAll(t.Error, "|", "/"))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.2f KB | %.2f KB | %.2f | %.2f ms | %.2f ms | %.2f ms | %.2f µs |\n",
			t.Transport, t.TCPConns, t.RSSPerConnBytes/1000, t.HeapStackPerConnBytes/1000, t.GoroutinesPerConn,
			t.P50Ms, t.P99Ms, t.MaxMs, t.CPUPerDeliveryUs)
	}
	fmt.Fprintf(&b, "\nKB = 1,000 bytes. VmRSS excludes the kernel's socket buffers. websocket, sse and poll run on plain HTTP/1.1 "+
		"(one TCP connection per client). websocket-tls is the same native WebSocket as wss:// on caddy's `tls internal` site "+
		"(%s: a browser's WebSocket offers only http/1.1 by ALPN), one TCP connection per client; sse-h2 runs on that site (%s), "+
		"its streams multiplexed on the TCP connections shown.\n",
		r.tlsOf(transportWSTLS, "TLS, http/1.1"), r.tlsOf(transportSSEH2, "TLS, h2"))
	b.WriteString("\n" + tlsRowNote + "\n")
	return b.Bytes()
}

// tlsRowNote says what the websocket-tls row adds to the websocket one
// (netpoll: Poller.Add, Conn.read) and where go1.26's heap profiles of this
// command (-heap-profiles) found it.
const tlsRowNote = "The websocket-tls row includes what a TLS connection keeps beyond a plain one: the server's crypto/tls state " +
	"and the TCP connection under it. The gateway takes a plain socket away from Go's runtime (it keeps a dup of the descriptor " +
	"and closes the net.Conn), but a TLS one must stay under its *tls.Conn: netpoll watches the raw descriptor of the socket " +
	"on its own epoll and, when a record arrives, reads through the tls.Conn under a short deadline, so the socket also keeps " +
	"its netFD and Go runtime poll descriptor. Like a plain one, an idle TLS connection has no goroutine. " +
	"Heap profiles (-heap-profiles, go1.26) place the difference in crypto/tls: the *tls.Conn (896 B), the AES-GCM states " +
	"of the two application traffic keys (896 B each), and two buffers the handshake grew and the connection keeps for its life: " +
	"the handshake buffer that held the ClientHello (1.5 KB, most of it the X25519MLKEM768 key share) and the raw-input buffer (2 KB)."

// tlsOf answers the TLS version and ALPN protocol the clients of transport
// got, or def when the run has none.
func (r Results) tlsOf(transport, def string) string {
	for _, t := range r.Transports {
		if t.Transport == transport && t.TLS != "" {
			return t.TLS
		}
	}
	return def
}

// write prints the table and, with a directory, writes results.json and
// results.md into it.
func (r Results) write(dir string) error {
	md := r.markdown()
	os.Stdout.Write(md)
	if dir == "" {
		return nil
	}
	return report.WriteFiles(dir, r, md)
}
