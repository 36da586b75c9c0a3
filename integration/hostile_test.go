package integration

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostileInputBattery runs every kind of bad input a scanner, a broken
// client or a misbehaving publisher sends against one real caddy node, each
// answered with the contract's exact close code or JSON error. After every
// case the process still runs, its admin API answers, a bystander following
// another key on its own native WebSocket (connected before the first case)
// receives a message published after the case, and the node holds no
// connection but the bystander's (CONTRACT "Never"). Cases already in
// TestCloseCodes, TestAdminPublish and TestSocketIOBadPacketClosesOnlyItsConnection
// are not repeated here.
func TestHostileInputBattery(t *testing.T) {
	n := startCaddy(t, hostileCaddyfile())
	h := &hostileEnv{n: n, byKey: testKey(t, "bystander")}
	h.bystander = Dial(t, n.WSURL(route))
	h.bystander.Register(t, h.byKey)

	cases := hostileCases()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("case %q twice", tc.name)
		}
		seen[tc.name] = true
	}
	t.Logf("hostile-input battery: %d distinct cases", len(cases))
	base := n.Stats(t).Goroutines
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, h)
		})
		// Outside the case's subtest, so that its clients are closed
		// (their Cleanup ran) before the node is checked.
		t.Run(tc.name+"/after", func(t *testing.T) { h.checkAlive(t) })
	}
	// Nothing the cases started lives on: no handshake parked in a
	// goroutine, no session left behind (a few of Caddy's own come and go).
	var last int
	eventually(t, 15*time.Second, func() (bool, string) {
		last = n.Stats(t).Goroutines
		return last <= base+10, fmt.Sprintf("goroutines %d after the battery, %d before", last, base)
	})
	t.Logf("goroutines: %d before the battery, %d after", base, last)
}

func hostileCases() []hostileCase {
	var cs []hostileCase
	cs = append(cs, frameCases()...)
	cs = append(cs, jsonCases()...)
	cs = append(cs, urlCases()...)
	cs = append(cs, socketIOCases()...)
	cs = append(cs, adminCases()...)
	cs = append(cs, httpCases()...)
	cs = append(cs, slowCases()...)
	return cs
}

// frameCases: RFC 6455 violations on the native endpoint.
func frameCases() []hostileCase {
	text := []byte(`{"type":"ping"}`)
	const proto, utf, big = 1002, 1007, 1009
	cs := []hostileCase{
		wsCase("unmasked binary frame", rawFrames(encodeFrame(true, opBinary, []byte("x"), false)), proto, "protocol_error"),
		wsCase("unmasked close frame", rawFrames(encodeFrame(true, opClose, closePayload(1000, ""), false)), proto, "protocol_error"),
		wsCase("unmasked ping", rawFrames(encodeFrame(true, opPing, nil, false)), proto, "protocol_error"),
		wsCase("RSV1 set", rawFrames(withHeaderBits(frame(true, opText, text), 0x40)), proto, "protocol_error"),
		wsCase("RSV2 set", rawFrames(withHeaderBits(frame(true, opText, text), 0x20)), proto, "protocol_error"),
		wsCase("RSV3 set on a ping", rawFrames(withHeaderBits(frame(true, opPing, nil), 0x10)), proto, "protocol_error"),
		wsCase("close frame over 125 bytes", rawFrames(frame(true, opClose, closePayload(1000, strings.Repeat("r", 124)))), proto, "protocol_error"),
		wsCase("pong over 125 bytes", rawFrames(frame(true, opPong, bytes.Repeat([]byte("p"), 126))), proto, "protocol_error"),
		wsCase("ping announcing 64 KiB", rawFrames(frame(true, opPing, bytes.Repeat([]byte("p"), 1<<16))), proto, "protocol_error"),
		wsCase("fragmented close frame", rawFrames(frame(false, opClose, closePayload(1000, ""))), proto, "protocol_error"),
		wsCase("fragmented pong", rawFrames(frame(false, opPong, []byte("p"))), proto, "protocol_error"),
		wsCase("text then text inside a fragmented message",
			rawFrames(frame(false, opText, []byte(`{"type":`)), frame(true, opText, text)), proto, "protocol_error"),
		wsCase("binary inside a fragmented text",
			rawFrames(frame(false, opText, []byte(`{"type":`)), frame(true, opBinary, []byte("x"))), proto, "protocol_error"),
		wsCase("unfinished continuation without a start", rawFrames(frame(false, opCont, text)), proto, "protocol_error"),
		wsCase("opcode 0x7", rawFrames(frame(true, 0x7, nil)), proto, "protocol_error"),
		wsCase("opcode 0xB", rawFrames(frame(true, 0xB, nil)), proto, "protocol_error"),
		wsCase("opcode 0xF", rawFrames(frame(true, 0xF, []byte("x"))), proto, "protocol_error"),
		wsCase("64-bit length with the top bit set", rawFrames(func() []byte {
			b := binary.BigEndian.AppendUint64([]byte{0x81, 0x80 | 127}, 1<<63)
			return append(b, 1, 2, 3, 4)
		}()), proto, "protocol_error"),
		wsCase("16-bit length over max_message_size", rawFrames([]byte{0x81, 0x80 | 126, 0xff, 0xff, 1, 2, 3, 4}), big, "too_large"),
		wsCase("binary message over max_message_size", rawFrames(frame(true, opBinary, make([]byte, hostileMaxMsg+1))), big, "too_large"),
		wsCase("overlong UTF-8", rawFrames(frame(true, opText, []byte("{\"type\":\"ping\",\"x\":\"\xc0\xaf\"}"))), utf, "bad_utf8"),
		wsCase("UTF-8 surrogate", rawFrames(frame(true, opText, []byte("{\"type\":\"ping\",\"x\":\"\xed\xa0\x80\"}"))), utf, "bad_utf8"),
		wsCase("UTF-8 cut at the end", rawFrames(frame(true, opText, []byte("{\"type\":\"ping\"}\xe2\x82"))), utf, "bad_utf8"),
		wsCase("bad UTF-8 across fragments", rawFrames(
			frame(false, opText, []byte("{\"type\":\"ping\",\"x\":\"\xe2\x82")), frame(true, opCont, []byte("(\"}"))), utf, "bad_utf8"),
		wsCase("binary frame", rawFrames(frame(true, opBinary, text)), 4400, "bad_request"),
		wsCase("fragmented binary message", rawFrames(frame(false, opBinary, text[:5]), frame(true, opCont, text[5:])), 4400, "bad_request"),
		wsCase("close frame with a 1-byte payload", rawFrames(frame(true, opClose, []byte{3})), proto, "protocol_error"),
		wsCase("close reason not UTF-8", rawFrames(frame(true, opClose, closePayload(1000, "\xff"))), proto, "protocol_error"),
		// A valid close is answered with the same code and no error.
		wsCase("close with application code 3000 is echoed", rawFrames(frame(true, opClose, closePayload(3000, "bye"))), 3000, ""),
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		cs = append(cs, wsCase(fmt.Sprintf("close code %d", code), rawFrames(frame(true, opClose, closePayload(code, ""))), proto, "protocol_error"))
	}
	// Control frames may come between the fragments of a message: allowed,
	// answered, and the message still arrives whole.
	cs = append(cs, hostileCase{name: "ws/ping between fragments is answered", run: func(t testing.TB, h *hostileEnv) {
		c := Dial(t, h.n.WSURL(route))
		rawFrames(frame(false, opText, text[:4]), frame(true, opPing, []byte("mid")), frame(true, opCont, text[4:]))(t, c)
		if m := c.ReadMsg(t, msgTimeout); m.Type != "pong" {
			t.Fatalf("want the pong message, got %s", m.Raw)
		}
		eventually(t, msgTimeout, func() (bool, string) {
			return c.LastPong() == "mid", fmt.Sprintf("last pong frame %q, want \"mid\"", c.LastPong())
		})
	}})
	return cs
}

// jsonCases: malformed native messages, all 4400 with a bad_request error.
func jsonCases() []hostileCase {
	bad := func(name, msg string) hostileCase {
		return wsCase("json/"+name, sends(msg), 4400, "bad_request")
	}
	long := strings.Repeat("k", 257)
	return []hostileCase{
		bad("empty message", ""),
		bad("whitespace only", " \t\r\n"),
		bad("array nested 2000 deep in an unknown field", `{"type":"ping","x":`+strings.Repeat("[", 2000)+strings.Repeat("]", 2000)+`}`),
		bad("objects nested 100 deep", `{"type":"ping","x":`+strings.Repeat(`{"a":`, 100)+"1"+strings.Repeat("}", 100)+`}`),
		bad("top-level array 1000 deep", strings.Repeat("[", 1000)),
		bad("NUL byte", "{\"type\":\"ping\"\x00}"),
		bad("duplicate type", `{"type":"ping","type":"ping"}`),
		bad("type a number", `{"type":1}`),
		bad("object then more", `{"type":"ping"} {}`),
		bad("since 2^70", `{"type":"register","sdk_key":"k","since":1180591620717411303424,"epoch":"e"}`),
		bad("since -1", `{"type":"register","sdk_key":"k","since":-1,"epoch":"e"}`),
		bad("since 1.5", `{"type":"register","sdk_key":"k","since":1.5,"epoch":"e"}`),
		bad("since true", `{"type":"register","sdk_key":"k","since":true,"epoch":"e"}`),
		bad("epoch of 129 bytes", `{"type":"register","sdk_key":"k","since":1,"epoch":"`+strings.Repeat("e", 129)+`"}`),
		bad("epoch a number", `{"type":"register","sdk_key":"k","since":1,"epoch":7}`),
		bad("empty sdk_key", `{"type":"register","sdk_key":""}`),
		bad("sdk_key of 257 bytes", `{"type":"register","sdk_key":"`+long+`"}`),
		bad("sdk_key with a control character", `{"type":"register","sdk_key":"a\u0001b"}`),
		bad("sdk_key with a C1 control", `{"type":"register","sdk_key":"a\u0085b"}`),
		bad("invalid escape", `{"type":"register","sdk_key":"a\x"}`),
		bad("unterminated string", `{"type":"register","sdk_key":"abc`),
		bad("ack with seq -1", `{"type":"ack","sdk_key":"k","seq":-1}`),
		bad("unregister without key", `{"type":"unregister"}`),
	}
}

// urlCases: bad keys, since and epoch on the URL of each transport, and
// wrong methods on the client endpoint: 400 or 405 with a JSON error.
func urlCases() []hostileCase {
	long := strings.Repeat("k", 300)
	const bad, notAllowed = http.StatusBadRequest, http.StatusMethodNotAllowed
	sse := "Accept: text/event-stream"
	return []hostileCase{
		httpCase("ws empty sdk_key", wsUpgrade(route+"?sdk_key="), bad, true),
		httpCase("ws since=-1", wsUpgrade(route+"?sdk_key=k&since=-1&epoch=e"), bad, true),
		httpCase("ws since=abc", wsUpgrade(route+"?sdk_key=k&since=abc"), bad, true),
		httpCase("ws since=2^70", wsUpgrade(route+"?sdk_key=k&since=1180591620717411303424"), bad, true),
		httpCase("ws since with two keys", wsUpgrade(route+"?sdk_key=a&sdk_key=b&since=1"), bad, true),
		httpCase("ws sdk_key with NUL", wsUpgrade(route+"?sdk_key=a%00b"), bad, true),
		httpCase("ws sdk_key of 300 bytes", wsUpgrade(route+"?sdk_key="+long), bad, true),
		httpCase("poll without sdk_key", get(route+"?since=1"), bad, true),
		httpCase("poll since=-1", get(route+"?sdk_key=k&since=-1"), bad, true),
		httpCase("poll since=abc", get(route+"?sdk_key=k&since=abc"), bad, true),
		httpCase("poll since=2^70", get(route+"?sdk_key=k&since=1180591620717411303424"), bad, true),
		httpCase("poll wait=abc", get(route+"?sdk_key=k&wait=abc"), bad, true),
		httpCase("poll wait=-1s", get(route+"?sdk_key=k&wait=-1s"), bad, true),
		httpCase("poll same key twice", get(route+"?sdk_key=k&sdk_key=k"), bad, true),
		httpCase("poll since for a key not requested", get(route+"?sdk_key=k&since.other=1"), bad, true),
		httpCase("poll key with a newline", get(route+"?sdk_key=a%0Ab"), bad, true),
		httpCase("poll epoch twice", get(route+"?sdk_key=k&epoch=a&epoch=b"), bad, true),
		httpCase("sse without sdk_key", get(route, sse), bad, true),
		httpCase("sse two keys", get(route+"?sdk_key=a&sdk_key=b", sse), bad, true),
		httpCase("sse since=-1", get(route+"?sdk_key=k&since=-1", sse), bad, true),
		httpCase("sse since=abc", get(route+"?sdk_key=k&since=abc", sse), bad, true),
		httpCase("sse epoch without since", get(route+"?sdk_key=k&epoch=e", sse), bad, true),
		httpCase("sse key of 300 bytes", get(route+"?sdk_key="+long, sse), bad, true),
		{name: "http/sse garbage Last-Event-ID is answered with resync", run: sseGarbageLastEventID},
		{name: "ws/epoch of 1000 bytes on the URL is answered with resync", run: wsLongEpoch},
		{name: "http/poll epoch with control characters is answered with resync", run: pollBadEpoch},
		httpCase("PUT on the client endpoint", request(http.MethodPut, route+"?sdk_key=k", "{}"), notAllowed, true),
		httpCase("DELETE on the client endpoint", request(http.MethodDelete, route+"?sdk_key=k", ""), notAllowed, true),
		httpCase("POST on the client endpoint", request(http.MethodPost, route+"?sdk_key=k", "x"), notAllowed, true),
		httpCase("PATCH on the client endpoint", request(http.MethodPatch, route+"?sdk_key=k", "x"), notAllowed, true),
		httpCase("POST with an Upgrade", request(http.MethodPost, route, "", upgradeHeaders...), notAllowed, true),
	}
}

// sseGarbageLastEventID: a Last-Event-ID the gateway never sent is a
// position it cannot trust: resync, not 400 (an EventSource gives up for
// good on an error status).
func sseGarbageLastEventID(t testing.TB, h *hostileEnv) {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.n.Port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(msgTimeout))
	key := testKey(t, "k")
	req := get(route+"?sdk_key="+key, "Accept: text/event-stream", "Last-Event-ID: garbage:not-a-seq")
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d %q, want a 200 event stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "event: resync" {
			return
		}
	}
	t.Fatalf("no resync event: %v", sc.Err())
}

// socketIOCases: bad Engine.IO and Socket.IO packets and requests.
func socketIOCases() []hostileCase {
	const bad = http.StatusBadRequest
	eio := "/realtime/?EIO=4"
	return []hostileCase{
		httpCase("eio version 3", get("/realtime/?EIO=3&transport=polling"), bad, true),
		httpCase("eio version abc", get("/realtime/?EIO=abc&transport=websocket"), bad, true),
		httpCase("eio unknown transport", get(eio+"&transport=flashsocket"), bad, true),
		httpCase("eio polling GET with a bogus sid", get(eio+"&transport=polling&sid=bogus"), bad, true),
		httpCase("eio polling POST with a bogus sid", request(http.MethodPost, eio+"&transport=polling&sid=bogus", "40"), bad, true),
		httpCase("eio websocket upgrade with a bogus sid", wsUpgrade(eio+"&transport=websocket&sid=bogus"), bad, true),
		httpCase("eio polling open with POST", request(http.MethodPost, eio+"&transport=polling", "40"), http.StatusMethodNotAllowed, true),
		httpCase("eio websocket transport without an upgrade", get(eio+"&transport=websocket"), bad, true),
		sioCase("empty engine.io packet", sends(""), 4400),
		sioCase("engine.io type 7", sends("7"), 4400),
		sioCase("engine.io open from the client", sends(`0{"sid":"x"}`), 4400),
		sioCase("socket.io type 8", sends("48"), 4400),
		sioCase("namespace with a control character", sends("40/real\x01time,"), 4400),
		sioCase("attachments count not a number", sends(`45x-["a"]`), 4400),
		sioCase("attachments count of 7 digits", sends(`451234567-["a"]`), 4400),
		sioCase("binary event", sends(`451-/realtime,["a",{"_placeholder":true,"num":0}]`), 1003),
		sioCase("binary frame", rawFrames(frame(true, opBinary, []byte("4"))), 1003),
		sioCase("message over maxPayload", sends(`42/realtime,["x","`+strings.Repeat("x", hostileMaxMsg)+`"]`), 1009),
		sioCase("register with a string argument", sends(`42/realtime,["register","k"]`), 4400),
		sioCase("register with a bad key", sends(`42/realtime,["register",{"key":"a\u0001b"}]`), 4400),
		sioCase("event without a name", sends(`42/realtime,[]`), 4400),
		sioCase("connect_error from the client", sends(`44/realtime,{"message":"x"}`), 4400),
		sioCase("ack id over 2^53", sends(`42/realtime,9007199254740992["x"]`), 4400),
		sioCase("frame rule: unmasked frame", rawFrames(encodeFrame(true, opText, []byte("2"), false)), 1002),
		{name: "socketio/polling POST over maxPayload is 413", run: sioPollingOversize},
	}
}

// sioPollingOversize: a polling session's POST over maxPayload is refused
// with 413 and ends the session.
func sioPollingOversize(t testing.TB, h *hostileEnv) {
	status, body := siteGet(t, h.n, "/realtime/?EIO=4&transport=polling")
	if status != http.StatusOK || !strings.HasPrefix(string(body), `0{"sid":"`) {
		t.Fatalf("open: %d %q", status, body)
	}
	sid := strings.SplitN(strings.TrimPrefix(string(body), `0{"sid":"`), `"`, 2)[0]
	req := request(http.MethodPost, "/realtime/?EIO=4&transport=polling&sid="+sid, "4"+strings.Repeat("x", hostileMaxMsg+1),
		"Content-Type: text/plain;charset=UTF-8")
	r, err := rawHTTP(t, fmt.Sprintf("127.0.0.1:%d", h.n.Port), []byte(req), msgTimeout)
	if err != nil {
		t.Fatal(err)
	}
	expectAPIError(t, r.status, r.body, http.StatusRequestEntityTooLarge)
}

// siteGet is a plain GET on the node's site (not its admin endpoint).
func siteGet(t testing.TB, n *Node, pathQuery string) (int, []byte) {
	t.Helper()
	resp, err := adminClient.Get(n.HTTP + pathQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// adminCases: bad publish bodies and methods on the admin routes.
func adminCases() []hostileCase {
	const bad = http.StatusBadRequest
	pub := "/push_gateway/publish"
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	many := "[" + strings.TrimSuffix(strings.Repeat("{},", 50000), ",") + "]"
	return []hostileCase{
		adminCase("data NaN", http.MethodPost, pub, `{"sdk_key":"k","data":NaN}`, bad),
		adminCase("data single-quoted", http.MethodPost, pub, `{"sdk_key":"k","data":'x'}`, bad),
		adminCase("data nested 20000 deep", http.MethodPost, pub, `{"sdk_key":"k","data":`+deep+`}`, bad),
		adminCase("confirm not a duration", http.MethodPost, pub, `{"sdk_key":"k","data":1,"confirm":"forever"}`, bad),
		adminCase("confirm negative", http.MethodPost, pub, `{"sdk_key":"k","data":1,"confirm":"-1s"}`, bad),
		adminCase("event of 200 bytes", http.MethodPost, pub, `{"sdk_key":"k","event":"`+strings.Repeat("e", 200)+`","data":1}`, bad),
		adminCase("50000 entries without keys", http.MethodPost, pub, many, bad),
		adminCase("sdk_keys with an empty key", http.MethodPost, pub, `{"sdk_keys":["k",""],"data":1}`, bad),
		adminCase("PUT on publish", http.MethodPut, pub, `{"sdk_key":"k","data":1}`, http.StatusMethodNotAllowed),
		adminCase("DELETE on stats", http.MethodDelete, "/push_gateway/stats", "", http.StatusMethodNotAllowed),
		adminCase("PATCH on a key", http.MethodPatch, "/push_gateway/keys/k", "{}", http.StatusMethodNotAllowed),
		adminCase("sdk_key not UTF-8", http.MethodPost, pub, "{\"sdk_key\":\"a\xffb\",\"data\":1}", http.StatusBadRequest),
		{name: "admin/Content-Length 10 MiB, 1 MiB+ sent, then silence", run: adminLyingLength},
	}
}

// adminLyingLength: the 1 MiB limit holds on the bytes read, without
// waiting for a body the Content-Length promises and never comes.
func adminLyingLength(t testing.TB, h *hostileEnv) {
	head := "POST /push_gateway/publish HTTP/1.1\r\nHost: 127.0.0.1:" + fmt.Sprint(h.n.AdminPort) +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(10<<20) + "\r\n\r\n"
	body := `{"sdk_key":"k","data":"` + strings.Repeat("x", 1<<20+100)
	r, err := rawHTTP(t, fmt.Sprintf("127.0.0.1:%d", h.n.AdminPort), []byte(head+body), msgTimeout)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	expectAPIError(t, r.status, r.body, http.StatusRequestEntityTooLarge)
}

// httpCases: what Caddy's HTTP server answers before the gateway sees a
// request, and handshakes gobwas refuses.
func httpCases() []hostileCase {
	huge := strings.Repeat("a", 2<<20)
	return []hostileCase{
		httpCase("header of 2 MiB", get(route+"?sdk_key=k", "X-Big: "+huge), http.StatusRequestHeaderFieldsTooLarge, false),
		httpCase("URL of 2 MiB", get(route+"?sdk_key=k&pad="+huge), http.StatusRequestHeaderFieldsTooLarge, false),
		httpCase("garbage request line", "HELLO\r\n\r\n", http.StatusBadRequest, false),
		httpCase("header line without a colon", "GET "+route+" HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", http.StatusBadRequest, false),
		httpCase("header value with a control character", get(route+"?sdk_key=k", "X-Bad: a\x01b"), http.StatusBadRequest, false),
		httpCase("HTTP/1.1 without Host", "GET "+route+"?sdk_key=k HTTP/1.1\r\n\r\n", http.StatusBadRequest, false),
		httpCase("websocket version 8", get(route+"?sdk_key=k", "Upgrade: websocket", "Connection: Upgrade",
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8"), http.StatusUpgradeRequired, false),
		httpCase("websocket without Sec-WebSocket-Key", get(route+"?sdk_key=k", "Upgrade: websocket", "Connection: Upgrade",
			"Sec-WebSocket-Version: 13"), http.StatusBadRequest, false),
		httpCase("websocket with a short Sec-WebSocket-Key", get(route+"?sdk_key=k", "Upgrade: websocket", "Connection: Upgrade",
			"Sec-WebSocket-Key: c2hvcnQ=", "Sec-WebSocket-Version: 13"), http.StatusBadRequest, false),
	}
}

// slowCases: clients that hold resources without finishing anything.
func slowCases() []hostileCase {
	return []hostileCase{
		{name: "slow/slowloris handshake is cut at read_header", run: slowloris},
		{name: "slow/half a frame header then silence is closed 4408", run: halfFrame},
		{name: "slow/half-open socket is dropped by idle_timeout", run: halfOpen},
	}
}

// slowloris trickles a handshake's header lines one byte at a time: Caddy
// must close the connection once read_header has passed, without ever
// handing it to the gateway.
func slowloris(t testing.TB, h *hostileEnv) {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.n.Port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET "+route+"?sdk_key=slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan []byte, 1)
	go func() {
		b, _ := readClosed(conn, 30*time.Second)
		closed <- b
	}()
	trickle := []byte("Upgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: " + strings.Repeat("z", 200))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case got := <-closed:
			took := time.Since(start)
			// Go's server answers a header read cut by its deadline with
			// 400 (or, between two reads, with nothing): never 101.
			if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 400 Bad Request\r\n")) {
				t.Fatalf("the trickled handshake was answered %q, want 400 or a close", truncate(got, 200))
			}
			if took < hostileReadHeader-200*time.Millisecond || took > hostileReadHeader+5*time.Second {
				t.Fatalf("closed after %v, want about read_header (%v)", took, hostileReadHeader)
			}
			t.Logf("slowloris closed after %v (read_header %v), answer %q", took.Round(time.Millisecond), hostileReadHeader, truncate(got, 60))
			return
		case <-tick.C:
			if i >= len(trickle) {
				t.Fatal("the whole trickle was accepted without a close")
			}
			_, _ = conn.Write(trickle[i : i+1])
		}
	}
}

// halfFrame sends the first byte of a frame and nothing more: a worker does
// not wait for the rest (I5), and the idle timeout ends the connection with
// 4408.
func halfFrame(t testing.TB, h *hostileEnv) {
	c := Dial(t, h.n.WSURL(route))
	c.SetAutoPong(false)
	c.Register(t, testKey(t, "k"))
	start := time.Now()
	if err := c.WriteRaw([]byte{0x81}); err != nil {
		t.Fatal(err)
	}
	before, code := readUntilClose(t, c, hostileIdle+10*time.Second)
	if code != 4408 || len(before) == 0 || before[len(before)-1].Code != "idle_timeout" {
		t.Fatalf("close %d after %s, want 4408 after an idle_timeout error", code, lastRaw(before))
	}
	if took := time.Since(start); took < hostileIdle-500*time.Millisecond {
		t.Fatalf("closed after %v, before idle_timeout %v", took, hostileIdle)
	}
}

// halfOpen: a client that vanishes without a FIN (it neither reads nor
// writes, so it answers no ping) is closed by idle_timeout and leaves the
// stats; what it would have read is the 4408 close.
func halfOpen(t testing.TB, h *hostileEnv) {
	key := testKey(t, "k")
	c := DialWith(t, h.n.WSURL(route+"?sdk_key="+key), DialOpts{NoReader: true, NoAutoPong: true})
	eventually(t, msgTimeout, func() (bool, string) {
		s := h.n.Stats(t)
		return s.Connections.WebSocket == 2, fmt.Sprintf("%d websockets, want the bystander's and this one", s.Connections.WebSocket)
	})
	start := time.Now()
	eventually(t, hostileIdle+15*time.Second, func() (bool, string) {
		s := h.n.Stats(t)
		return s.Connections.WebSocket == 1, fmt.Sprintf("%d websockets %v after going silent", s.Connections.WebSocket, time.Since(start))
	})
	t.Logf("half-open socket dropped after %v (idle_timeout %v)", time.Since(start).Round(time.Millisecond), hostileIdle)
	c.StartReader()
	if m := c.ReadMsg(t, msgTimeout); m.Type != "registered" {
		t.Fatalf("first message %s, want registered", m.Raw)
	}
	expectCloseAfterError(t, c, 4408, "idle_timeout")
}

// wsLongEpoch: an epoch the gateway never made, however long, cannot match:
// registered, then resync, and the connection stays usable.
func wsLongEpoch(t testing.TB, h *hostileEnv) {
	key := testKey(t, "k")
	h.n.PublishOK(t, key, "", "1")
	c := Dial(t, h.n.WSURL(route+"?sdk_key="+key+"&since=0&epoch="+strings.Repeat("e", 1000)))
	if m := c.ReadMsg(t, msgTimeout); m.Type != "registered" || m.Seq != 1 {
		t.Fatalf("want registered at seq 1, got %s", m.Raw)
	}
	if m := c.ReadMsg(t, msgTimeout); m.Type != "resync" || m.Seq != 1 {
		t.Fatalf("want resync at seq 1, got %s", m.Raw)
	}
	h.n.PublishOK(t, key, "", "2")
	c.ExpectMessage(t, key, 2)
}

// pollBadEpoch: a long poll from an epoch that cannot exist is told to
// resync at once, not held and not refused.
func pollBadEpoch(t testing.TB, h *hostileEnv) {
	key := testKey(t, "k")
	h.n.PublishOK(t, key, "", "1")
	status, body := siteGet(t, h.n, route+"?sdk_key="+key+"&since=0&epoch=%01%02%7F&wait=5s")
	var ans struct {
		Keys map[string]struct {
			Seq    uint64 `json:"seq"`
			Resync bool   `json:"resync"`
		} `json:"keys"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &ans) != nil {
		t.Fatalf("status %d %s, want 200 with JSON", status, truncate(body, 300))
	}
	if k := ans.Keys[key]; !k.Resync || k.Seq != 1 {
		t.Fatalf("answer %s, want resync at seq 1", truncate(body, 300))
	}
}
