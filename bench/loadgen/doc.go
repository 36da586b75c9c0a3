// Command loadgen holds many idle native-protocol WebSocket connections to one
// URL and measures how long each broadcast takes to reach each of them. The
// runner (../run) starts several of them, because one process may hold at
// most ~20,000 open files.
//
// Each outgoing connection is bound to a source address in
// 127.0.0.2–127.0.0.254 (chosen round-robin from -ip-offset) so that 19,000
// connections to one server port never run out of ephemeral ports. Connecting
// is bounded in concurrency, retries and time. A connection counts as
// connected once its `registered` message has arrived.
//
// Frames are parsed by hand (the server's frames are small, unmasked text
// frames) to keep the generator's own CPU per delivery low. By default
// (-mode epoll) each handshaken socket is then taken off Go's netpoller and
// read by one epoll loop per process, one read(2) per ready socket, so the
// generator takes as little as possible of the CPU it shares with the server
// under test; -mode goroutine reads with a goroutine per connection instead. A received
// `message` is timestamped at once; the latency is receipt time minus the
// publisher's stamp found in the message's data as {"t":<Unix ns>}, so both
// clocks are this machine's wall clock.
//
// Control: after connecting, loadgen prints one JSON line
// {"type":"connected",...} to stdout and then reads commands from stdin, one
// a line, answering each with one JSON line:
//
//	wait SEQ TIMEOUT_MS   {"type":"broadcast","seq":S,"expected":E,"received":R,"lat_ns":[...]}
//	summary LAST_SEQ      {"type":"summary",...} lost/duplicated seqs, closes, own CPU
//	closed TIMEOUT_MS     waits until every connection is closed, then answers as summary
//	quit                  exit (EOF on stdin too)
//
// Goroutines: main runs the control loop; in epoll mode one poll goroutine
// reads every connection, in goroutine mode each connection has a reader
// goroutine; both live until their connections close or the process exits.
// Counters shared with the control loop are atomics.
package main
