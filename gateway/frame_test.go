package gateway

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

func clientFrame(t testing.TB, f ws.Frame) []byte {
	t.Helper()
	return ws.MustCompileFrame(ws.MaskFrameInPlace(f))
}

func TestParseFrameHeader(t *testing.T) {
	long := bytes.Repeat([]byte("a"), 300)
	huge := clientFrame(t, ws.NewTextFrame(bytes.Repeat([]byte("b"), 70000)))
	tests := []struct {
		name    string
		in      []byte
		wantN   int
		wantLen int64
		wantOp  ws.OpCode
		wantErr error
	}{
		{name: "empty", in: nil},
		{name: "one byte", in: []byte{0x81}},
		{name: "small text", in: clientFrame(t, ws.NewTextFrame([]byte("hi"))), wantN: 6, wantLen: 2, wantOp: ws.OpText},
		{name: "16-bit length", in: clientFrame(t, ws.NewTextFrame(long)), wantN: 8, wantLen: 300, wantOp: ws.OpText},
		{name: "64-bit length", in: huge, wantN: 14, wantLen: 70000, wantOp: ws.OpText},
		{name: "16-bit length cut", in: clientFrame(t, ws.NewTextFrame(long))[:3]},
		{name: "mask cut", in: clientFrame(t, ws.NewTextFrame([]byte("hi")))[:5]},
		{name: "ping", in: clientFrame(t, ws.NewPingFrame([]byte("p"))), wantN: 6, wantLen: 1, wantOp: ws.OpPing},
		{name: "unmasked", in: ws.MustCompileFrame(ws.NewTextFrame([]byte("hi"))), wantErr: errUnmasked},
		{name: "rsv1", in: []byte{0xC1, 0x80, 0, 0, 0, 0}, wantErr: errReservedBits},
		{name: "reserved opcode", in: []byte{0x83, 0x80, 0, 0, 0, 0}, wantErr: errReservedOp},
		{name: "fragmented ping", in: []byte{0x09, 0x80, 0, 0, 0, 0}, wantErr: errControlFrag},
		{name: "long ping", in: []byte{0x89, 0x80 | 126, 0, 200, 0, 0, 0, 0}, wantErr: errControlLength},
		{name: "length overflow", in: []byte{0x82, 0x80 | 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, wantErr: errLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := parseFrameHeader(tt.in)
			if err != tt.wantErr {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n != tt.wantN {
				t.Fatalf("n = %d, want %d", n, tt.wantN)
			}
			if n > 0 && (h.length != tt.wantLen || h.op != tt.wantOp) {
				t.Fatalf("header = %+v", h)
			}
		})
	}
}

// FuzzParseFrameHeader: never panics; a header it accepts agrees with
// gobwas' blocking reader on the same bytes.
func FuzzParseFrameHeader(f *testing.F) {
	f.Add(ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte("hello")))))
	f.Add([]byte{0x81, 0xfe, 0x01, 0x00, 1, 2, 3, 4})
	f.Add([]byte{0x88, 0x82, 1, 2, 3, 4, 5, 6})
	f.Add([]byte{0x02, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseFrameHeader(b)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) || h.length < 0 {
			t.Fatalf("n=%d len=%d length=%d", n, len(b), h.length)
		}
		ref, rerr := ws.ReadHeader(bytes.NewReader(b[:n]))
		if rerr != nil {
			t.Fatalf("gobwas rejects a header we accept: %v", rerr)
		}
		if ref.Length != h.length || ref.OpCode != h.op || ref.Fin != h.fin || ref.Mask != h.mask {
			t.Fatalf("ours %+v, gobwas %+v", h, ref)
		}
	})
}
