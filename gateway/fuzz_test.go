package gateway

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
)

// Fuzz targets for the gateway's parsers of client input: the long-poll
// query, the SSE request (query and Last-Event-ID), the WebSocket URL keys
// and the frame stream (FuzzParseFrameHeader, in frame_test.go, covers one
// header).

// FuzzParsePoll: parsePoll never panics; what it refuses wraps errBadPoll;
// what it accepts is the requested keys, valid, distinct and within
// maxKeys, in the order given, with a wait from 0 to maxWait and a valid cid.
func FuzzParsePoll(f *testing.F) {
	for _, q := range []string{
		"sdk_key=K&since=3&epoch=E&wait=25s&cid=C",
		"sdk_key=A&sdk_key=B&since.A=1&epoch.A=x&since.B=2&wait=0s",
		"sdk_key=A&sdk_key=B&since=1",
		"sdk_key=K&since=-1", "sdk_key=K&since=1180591620717411303424", "sdk_key=K&wait=-1s",
		"sdk_key=K&since=1&since.K=1", "sdk_key=K&sdk_key=K", "sdk_key=a%00b", "since.x=1&sdk_key=K",
		"sdk_key=K&wait=1h&wait=2s", "sdk_key=K&cid=&_=123", "",
	} {
		f.Add(q, uint8(4), uint32(60000))
	}
	f.Fuzz(func(t *testing.T, raw string, maxKeys uint8, maxWaitMS uint32) {
		q, _ := url.ParseQuery(raw) // what parsed, even after an error: the server sees that too
		maxWait := time.Duration(maxWaitMS) * time.Millisecond
		req, err := parsePoll(q, int(maxKeys), maxWait)
		if err != nil {
			if !errors.Is(err, errBadPoll) {
				t.Fatalf("error %v does not wrap errBadPoll", err)
			}
			return
		}
		names := q["sdk_key"]
		if len(req.keys) == 0 || len(req.keys) != len(names) || (maxKeys > 0 && len(req.keys) > int(maxKeys)) {
			t.Fatalf("%d keys accepted from %q (max %d)", len(req.keys), names, maxKeys)
		}
		for i, k := range req.keys {
			if k.key != names[i] || hub.ValidKey(k.key) != nil || slices.Contains(names[:i], k.key) {
				t.Fatalf("key %d %q accepted from %q", i, k.key, names)
			}
		}
		if req.wait < 0 || req.wait > maxWait {
			t.Fatalf("wait %v, max %v", req.wait, maxWait)
		}
		if req.cid != "" && hub.ValidKey(req.cid) != nil {
			t.Fatalf("cid %q accepted", req.cid)
		}
	})
}

// FuzzParseSSERequest: parseSSERequest never panics; it accepts one valid
// key and a valid cid only, and a Last-Event-ID always sets the position:
// the one it names, or one that no history matches (resync).
func FuzzParseSSERequest(f *testing.F) {
	for _, s := range [][2]string{
		{"sdk_key=K", ""},
		{"sdk_key=K&since=4&epoch=E&cid=C", ""},
		{"sdk_key=K&since=4&epoch=E", "E2:9"},
		{"sdk_key=K", "garbage"},
		{"sdk_key=K", "a:b:7"},
		{"sdk_key=K", ":7"},
		{"sdk_key=K&epoch=E", ""},
		{"sdk_key=A&sdk_key=B", ""},
		{"sdk_key=K&since=-1", "x:18446744073709551616"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, raw, lastID string) {
		r := &http.Request{URL: &url.URL{RawQuery: raw}, Header: http.Header{}}
		if lastID != "" {
			r.Header.Set("Last-Event-ID", lastID)
		}
		req, err := parseSSERequest(r)
		if err != nil {
			return
		}
		if hub.ValidKey(req.key) != nil || (req.cid != "" && hub.ValidKey(req.cid) != nil) {
			t.Fatalf("accepted key %q cid %q", req.key, req.cid)
		}
		if lastID == "" {
			return
		}
		epoch, seq, perr := protocol.ParseSSEID(lastID)
		if perr != nil {
			epoch, seq = "", math.MaxUint64
		}
		if !req.resume || req.epoch != epoch || req.since != seq {
			t.Fatalf("Last-Event-ID %q gave resume=%v since=%d epoch=%q", lastID, req.resume, req.since, req.epoch)
		}
	})
}

// FuzzParseURLKeys: parseURLKeys never panics; it accepts valid keys only,
// and a since for exactly one key.
func FuzzParseURLKeys(f *testing.F) {
	for _, q := range []string{
		"sdk_key=K", "sdk_key=A&sdk_key=B", "sdk_key=K&since=42&epoch=E", "sdk_key=A&sdk_key=B&since=1",
		"since=1", "sdk_key=&since=abc", "sdk_key=K&since=-1", "sdk_key=%7F", "",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := &http.Request{URL: &url.URL{RawQuery: raw}}
		follows, err := parseURLKeys(r)
		if err != nil {
			return
		}
		for i, fl := range follows {
			if hub.ValidKey(fl.key) != nil {
				t.Fatalf("accepted key %q", fl.key)
			}
			if fl.resume && (i != 0 || len(follows) != 1) {
				t.Fatalf("since for key %d of %d", i, len(follows))
			}
		}
	})
}

// recordSink is a frameSink that writes down what reached it.
type recordSink struct {
	events []string
	ended  bool
	limit  int64
	t      *testing.T
}

func (s *recordSink) isEnded() bool { return s.ended }

func (s *recordSink) violation(code uint16, errCode, msg string) {
	if code != protocol.CloseProtocolError && code != protocol.CloseTooLarge {
		s.t.Fatalf("violation with close code %d", code)
	}
	s.ended = true
	s.events = append(s.events, fmt.Sprintf("violation %d %s", code, errCode))
}

func (s *recordSink) onPing(payload []byte) {
	if len(payload) > 125 {
		s.t.Fatalf("ping of %d bytes passed", len(payload))
	}
	s.events = append(s.events, fmt.Sprintf("ping %q", payload))
}

func (s *recordSink) onClientClose(code ws.StatusCode) {
	// The code is echoed back: it must be one an endpoint may send.
	if code < 1000 || code > 4999 || code == 1004 || code == 1005 || code == 1006 || code == 1015 {
		s.t.Fatalf("close code %d accepted", code)
	}
	s.ended = true
	s.events = append(s.events, fmt.Sprintf("close %d", code))
}

func (s *recordSink) onMessage(op ws.OpCode, msg []byte) {
	if op != ws.OpText && op != ws.OpBinary {
		s.t.Fatalf("message with opcode %v", op)
	}
	if int64(len(msg)) > s.limit {
		s.t.Fatalf("message of %d bytes passed the limit %d", len(msg), s.limit)
	}
	s.events = append(s.events, fmt.Sprintf("msg %v %d %08x", op, len(msg), crc32.ChecksumIEEE(msg)))
}

// FuzzWSReader: the frame stream reader never panics, lets nothing through
// that breaks RFC 6455 or the size limit, and decides the same whether the
// bytes arrive at once or in two reads cut anywhere (netpoll hands over
// whatever the socket had).
func FuzzWSReader(f *testing.F) {
	masked := func(fr ws.Frame) []byte { return ws.MustCompileFrame(ws.MaskFrame(fr)) }
	text := masked(ws.NewTextFrame([]byte(`{"type":"ping"}`)))
	first := masked(ws.NewFrame(ws.OpText, false, []byte(`{"type":`)))
	cont := masked(ws.NewFrame(ws.OpContinuation, true, []byte(`"ping"}`)))
	ping := masked(ws.NewPingFrame([]byte("hi")))
	closeOK := masked(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "bye")))
	close5000 := masked(ws.NewCloseFrame([]byte{0x13, 0x88}))
	for _, seed := range [][]byte{
		text,
		slices.Concat(first, ping, cont, text),
		slices.Concat(text, closeOK, text),
		close5000,
		masked(ws.NewBinaryFrame([]byte{1, 2, 3})),
		slices.Concat(first, text),
		cont,
		{0x81, 0xfe, 0xff, 0xff, 1, 2, 3, 4},
		{0x89, 0x7e, 0, 200},
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},
	} {
		f.Add(seed, uint16(len(seed)/2), uint16(4096))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut, limit uint16) {
		whole := &recordSink{limit: int64(limit), t: t}
		var r1 wsReader
		buf := slices.Clone(data) // read unmasks in place
		if n := r1.read(buf, int64(limit), whole); n < 0 || n > len(buf) {
			t.Fatalf("consumed %d of %d", n, len(buf))
		}

		split := &recordSink{limit: int64(limit), t: t}
		var r2 wsReader
		c := min(int(cut), len(data))
		buf = slices.Clone(data[:c])
		n := r2.read(buf, int64(limit), split)
		if n < 0 || n > len(buf) {
			t.Fatalf("consumed %d of %d", n, len(buf))
		}
		// What was not consumed comes again, followed by the new bytes.
		rest := append(slices.Clone(buf[n:]), data[c:]...)
		if !split.ended {
			r2.read(rest, int64(limit), split)
		}
		if !slices.Equal(whole.events, split.events) {
			t.Fatalf("cut at %d of %d:\nat once %q\nin two  %q", c, len(data), whole.events, split.events)
		}
	})
}
