package wsframe

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

// unmask turns a client frame into the server frame of the same payload,
// so that Read can read it back.
func unmask(t *testing.T, frame []byte) []byte {
	t.Helper()
	if frame[1]&0x80 == 0 {
		t.Fatal("client frame not masked")
	}
	hdr := 2
	switch frame[1] & 0x7F {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	key := frame[hdr : hdr+4]
	out := append([]byte(nil), frame[:hdr]...)
	out[1] &^= 0x80
	for i, c := range frame[hdr+4:] {
		out = append(out, c^key[i&3])
	}
	return out
}

func TestFrameRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 125, 126, 300, 0xFFFF, 0x10000} {
		payload := bytes.Repeat([]byte("ab3"), size/3+1)[:size]
		frame := AppendClient(nil, OpText, payload)
		if frame[0] != 0x80|OpText {
			t.Fatalf("size %d: first byte %#x", size, frame[0])
		}
		op, got, err := Read(bufio.NewReader(bytes.NewReader(unmask(t, frame))), nil)
		if err != nil || op != OpText || !bytes.Equal(got, payload) {
			t.Fatalf("size %d: op %d, err %v, payload equal %v", size, op, err, bytes.Equal(got, payload))
		}
	}
}

func TestReadRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{name: "masked", in: []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, want: ErrBadFrame},
		{name: "too large", in: []byte{0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 0}, want: ErrBadFrame},
		{name: "truncated", in: []byte{0x81, 5, 'a'}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Read(bufio.NewReader(bytes.NewReader(tc.in)), nil)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadServerPing(t *testing.T) {
	in := []byte{0x89, 2, 'h', 'i', 0x81, 1, '2'}
	br := bufio.NewReader(bytes.NewReader(in))
	op, p, err := Read(br, nil)
	if err != nil || op != OpPing || string(p) != "hi" {
		t.Fatalf("ping: %d %q %v", op, p, err)
	}
	op, p, err = Read(br, p)
	if err != nil || op != OpText || string(p) != "2" {
		t.Fatalf("text: %d %q %v", op, p, err)
	}
}
