package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// serverFrame builds an unmasked server frame.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

func TestFrameReaderNext(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 300)
	huge := bytes.Repeat([]byte("y"), 70000)
	tests := []struct {
		name    string
		wire    []byte
		wantOp  byte
		want    []byte
		wantErr error
	}{
		{name: "short text", wire: serverFrame(true, opText, []byte(`{"a":1}`)), wantOp: opText, want: []byte(`{"a":1}`)},
		{name: "16-bit length", wire: serverFrame(true, opText, long), wantOp: opText, want: long},
		{name: "64-bit length", wire: serverFrame(true, opText, huge), wantOp: opText, want: huge},
		{name: "fragmented", wire: append(serverFrame(false, opText, []byte("ab")), serverFrame(true, opContinuation, []byte("cd"))...),
			wantOp: opText, want: []byte("abcd")},
		{name: "ping", wire: serverFrame(true, opPing, []byte("p")), wantOp: opPing, want: []byte("p")},
		{name: "close", wire: serverFrame(true, opClose, []byte{0x03, 0xE9}), wantOp: opClose, want: []byte{0x03, 0xE9}},
		{name: "continuation first", wire: serverFrame(true, opContinuation, []byte("x")), wantErr: ErrProtocol},
		{name: "fragmented control", wire: serverFrame(false, opPing, nil), wantErr: ErrProtocol},
		{name: "reserved bits", wire: []byte{0xC1, 0x00}, wantErr: ErrProtocol},
		{name: "over the limit", wire: []byte{0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 0}, wantErr: ErrTooLarge},
		{name: "truncated", wire: []byte{0x81, 5, 'a'}, wantErr: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := frameReader{br: bufio.NewReader(bytes.NewReader(tt.wire))}
			op, got, err := f.next()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if op != tt.wantOp || !bytes.Equal(got, tt.want) {
				t.Fatalf("got op %d %q, want op %d %q", op, got, tt.wantOp, tt.want)
			}
		})
	}
}

func TestClientFrameIsMaskedAndReadable(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
	}{
		{name: "empty", payload: nil},
		{name: "short", payload: []byte("hello")},
		{name: "16-bit", payload: bytes.Repeat([]byte("z"), 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := clientFrame(opPong, tt.payload)
			if b[1]&0x80 == 0 {
				t.Fatal("client frame is not masked")
			}
			f := frameReader{br: bufio.NewReader(bytes.NewReader(b))}
			op, got, err := f.next()
			if err != nil || op != opPong || !bytes.Equal(got, tt.payload) {
				t.Fatalf("read back op %d %q err %v", op, got, err)
			}
		})
	}
}
