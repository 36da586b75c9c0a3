package protocol_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
)

// readFrame parses b as exactly one frame with gobwas/ws.
func readFrame(tb testing.TB, b []byte) ws.Frame {
	tb.Helper()
	r := bytes.NewReader(b)
	f, err := ws.ReadFrame(r)
	if err != nil {
		tb.Fatalf("ws.ReadFrame: %v", err)
	}
	if r.Len() != 0 {
		tb.Fatalf("%d bytes after the frame", r.Len())
	}
	if !f.Header.Fin || f.Header.Masked || f.Header.Rsv != 0 {
		tb.Fatalf("header %+v: want final, unmasked, no rsv bits", f.Header)
	}
	return f
}

func TestTextFrame(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		hdrSize int
	}{
		{name: "empty", size: 0, hdrSize: 2},
		{name: "125", size: 125, hdrSize: 2},
		{name: "126", size: 126, hdrSize: 4},
		{name: "65535", size: 65535, hdrSize: 4},
		{name: "65536", size: 65536, hdrSize: 10},
		{name: "1 MiB", size: 1 << 20, hdrSize: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte{'x'}, tt.size)
			b := protocol.TextFrame([]byte("keep"), payload)
			if string(b[:4]) != "keep" {
				t.Fatal("dst prefix overwritten")
			}
			b = b[4:]
			if len(b) != tt.hdrSize+tt.size {
				t.Fatalf("frame of %d bytes, want %d header + %d", len(b), tt.hdrSize, tt.size)
			}
			f := readFrame(t, b)
			if f.Header.OpCode != ws.OpText || !bytes.Equal(f.Payload, payload) {
				t.Fatalf("opcode %v, payload of %d bytes", f.Header.OpCode, len(f.Payload))
			}
		})
	}
}

func TestControlFrames(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes: cut at a rune boundary
	tests := []struct {
		name    string
		frame   []byte
		op      ws.OpCode
		payload []byte
	}{
		{name: "close with reason", frame: protocol.CloseFrame(protocol.CloseOverLimit, "slow_consumer"), op: ws.OpClose,
			payload: append(binary.BigEndian.AppendUint16(nil, 4429), "slow_consumer"...)},
		{name: "close going away", frame: protocol.CloseFrame(protocol.CloseGoingAway, ""), op: ws.OpClose,
			payload: binary.BigEndian.AppendUint16(nil, 1001)},
		{name: "close without code", frame: protocol.CloseFrame(0, "ignored"), op: ws.OpClose, payload: []byte{}},
		{name: "close with long reason", frame: protocol.CloseFrame(protocol.CloseMalformed, long), op: ws.OpClose,
			payload: append(binary.BigEndian.AppendUint16(nil, 4400), strings.Repeat("é", 61)...)},
		{name: "ping", frame: protocol.PingFrame(), op: ws.OpPing, payload: []byte{}},
		{name: "pong", frame: protocol.PongFrame([]byte("hi")), op: ws.OpPong, payload: []byte("hi")},
		{name: "pong cut", frame: protocol.PongFrame(bytes.Repeat([]byte{'p'}, 200)), op: ws.OpPong, payload: bytes.Repeat([]byte{'p'}, 125)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := readFrame(t, tt.frame)
			if f.Header.OpCode != tt.op || !bytes.Equal(f.Payload, tt.payload) {
				t.Fatalf("frame %v %q, want %v %q", f.Header.OpCode, f.Payload, tt.op, tt.payload)
			}
			if tt.op == ws.OpClose && len(f.Payload) >= 2 {
				code, reason := ws.ParseCloseFrameData(f.Payload)
				if err := ws.CheckCloseFrameData(code, reason); err != nil {
					t.Fatalf("close frame refused by gobwas/ws: %v", err)
				}
			}
		})
	}
	// The shared ping frame cannot be corrupted by appending to it.
	p := append(protocol.PingFrame(), 'x')
	p[0] = 0
	if f := readFrame(t, protocol.PingFrame()); f.Header.OpCode != ws.OpPing {
		t.Fatal("shared ping frame modified")
	}
}

func TestNativeFormat(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{name: "small", data: []byte(`{"on":true}`)},
		{name: "empty string", data: []byte(`""`)},
		{name: "no data", data: nil},
		{name: "126 byte payload boundary", data: []byte(`"` + strings.Repeat("x", 40) + `"`)},
		{name: "large", data: []byte(`"` + strings.Repeat("x", 70000) + `"`)},
	}
	h := hub.New()
	defer h.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []*hub.Message
			s := h.Subscribe(follower(func(m *hub.Message) bool { got = append(got, m); return true }))
			defer s.Close()
			if err := s.Follow("native", 0, "", false); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Publish("native", "", tt.data); err != nil {
				t.Fatal(err)
			}
			m := got[0]
			frame := m.Encoded(protocol.Native)
			if len(frame) != cap(frame) {
				t.Fatalf("encoded frame has spare capacity %d: appends would write into shared memory", cap(frame)-len(frame))
			}
			f := readFrame(t, frame)
			if want := protocol.AppendMessage(nil, m); f.Header.OpCode != ws.OpText || !bytes.Equal(f.Payload, want) {
				t.Fatalf("native frame payload %q, want %q", f.Payload, want)
			}
			if again := m.Encoded(protocol.Native); &again[0] != &frame[0] {
				t.Fatal("second Encoded call encoded again")
			}
		})
	}
}

// follower adapts a function to hub.Follower.
type follower func(*hub.Message) bool

func (f follower) Deliver(m *hub.Message) bool { return f(m) }
func (f follower) Notify(hub.Notice) bool      { return true }
func (f follower) Close(hub.Reason)            {}
