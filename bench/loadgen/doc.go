// Command loadgen holds many idle WebSocket connections to one URL, speaking
// either the gateway's native protocol or Socket.IO v5 over Engine.IO v4
// (as FeatureProbe's SDKs do), and measures how long each published message
// takes to reach each of them. The runner (../run) starts several of them,
// because one process may hold at most ~20,000 open files.
//
// Each outgoing connection is bound to a source address in
// 127.0.0.2–127.0.0.254 (chosen round-robin from -ip-offset) so that 19,000
// connections to one server port never run out of ephemeral ports. Connecting
// is bounded in concurrency, retries and time.
//
// Frames are parsed by hand (the server's frames are small, unmasked text
// frames) to keep the generator's own CPU per delivery low. By default
// (-mode epoll) each handshaken socket is then taken off Go's netpoller and
// read by one epoll loop per process, one read(2) per ready socket, so the
// generator takes as little as possible of the CPU it shares with the server
// under test; -mode goroutine reads with a goroutine per connection instead. A received
// live message is timestamped at once; the latency is receipt time minus the
// publisher's stamp found in the message's data as {"t":<Unix ns>}, so both
// clocks are this machine's wall clock.
//
// # Flags
//
//	-url U              native: ws://host:port/realtime?sdk_key=K;
//	                    socketio: ws://host:port/realtime/?EIO=4&transport=websocket
//	-n N                connections to hold (1000)
//	-proto P            native (default) or socketio
//	-namespace NS       Socket.IO namespace (/realtime)
//	-key K -keys N -first F
//	                    connection j (0-based) follows K when N == 1, else
//	                    K-<(F+j) mod N>; native sets the URL's sdk_key to it
//	                    (replacing any; without -key the URL is used as given),
//	                    socketio registers it and needs -key. Defaults: "", 1, 0
//	-since S -epoch E   native only: resume after seq S of epoch E (since=S&epoch=E
//	                    on the URL); each connection's last seq starts at S and
//	                    `registered` does not change it. -1 (default): no resume
//	-mode M             epoll (default) or goroutine
//	-read B             false holds the connections without reading (true)
//	-ip-offset I        first source address index (0)
//	-concurrency C      handshakes in flight (64)
//	-retries R          attempts per connection after the first (3)
//	-dial-timeout D     per attempt, dial to registration (10s)
//	-connect-timeout D  the whole connect phase (120s)
//	-max-seq M          highest seq with per-seq latency arrays (64)
//
// A connection counts as connected once registered: native on its
// `registered` message; socketio once it has answered the Engine.IO open
// `0{...}` with `40<ns>,`, the namespace ack `40<ns>,{...}` with
// `42<ns>,["register",{"sdk_key":"K"}]`, and got `42<ns>,["update",""]`
// (packets are taken in whatever order they come). Live messages: native
// `{"type":"message","seq":S,...,"data":{"t":T}}`; socketio
// `42<ns>,["update",{"i":I,"t":T}]`, with I taken as the seq. Per
// connection, a seq not above the last one counts as a duplicate and a jump
// as gaps; a native `resync` is counted and its seq becomes the last one.
// Engine.IO pings `2` are answered `3`, WebSocket pings with pongs;
// `41<ns>,`, `44<ns>,...` or Engine.IO close `1` end the connection with
// the close code "socketio disconnect".
//
// Every live message counts in `received`, and, when stamped, in a
// process-wide log-linear latency histogram (1 µs buckets below 128 µs, then
// 128 per power of two, under 0.8% wide, up to 2^26 µs ≈ 67 s, then one
// overflow bucket), whatever its seq; only the per-seq arrays stop at
// -max-seq.
//
// # Control
//
// After connecting, loadgen prints one JSON line to stdout:
//
//	{"type":"connected","connected":C,"failed":F,"seconds":S,
//	 "handshake_p50_ms":..,"handshake_p99_ms":..,"handshake_max_ms":..[,"error":".."]}
//
// (seconds: the whole connect phase; handshake_*: per connection, from the
// start of its successful dial to its registration) and then reads commands
// from stdin, one a line, answering each with one JSON line:
//
//	wait SEQ TIMEOUT_MS   {"type":"broadcast","seq":S,"expected":E,"received":R,"lat_ns":[...]}
//	                      (SEQ in 1..max-seq)
//	summary LAST_SEQ      {"type":"summary","connections","alive","closes":{code:n},
//	                      "duplicates","gaps","missing","resyncs","received",
//	                      "unparsed","cpu_seconds","max_rss_kb"}
//	closed TIMEOUT_MS     waits until every connection is closed, then answers as summary
//	hist reset            zeroes the histogram and received: {"type":"hist","received":0}
//	hist                  {"type":"hist","received":R,"lat_us":[[upper_bound_us,count],...]}
//	                      non-empty buckets, ascending; the overflow bucket's
//	                      bound is the largest latency seen
//	count TARGET TIMEOUT_MS
//	                      waits until received >= TARGET or the timeout:
//	                      {"type":"count","received":R}
//	quit                  exit (EOF on stdin too)
//
// Anything else is answered {"type":"error","error":".."}.
//
// Goroutines: main runs the control loop; in epoll mode one poll goroutine
// reads every connection, in goroutine mode each connection has a reader
// goroutine; both live until their connections close or the process exits.
// Counters shared with the control loop, the histogram included, are atomics.
package main
