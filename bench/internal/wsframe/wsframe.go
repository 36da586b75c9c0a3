// Package wsframe reads and writes the WebSocket frames of the benchmark
// commands' clients: unfragmented server frames in, masked client frames
// out. That is all the servers under test send the clients for messages
// this small, and the clients spend as little CPU as possible on it since
// they share the machine with the server under test.
package wsframe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrBadFrame is returned for a WebSocket frame a server must not send.
var ErrBadFrame = errors.New("bad websocket frame")

// WebSocket opcodes the clients handle.
const (
	OpText  = 0x1
	OpClose = 0x8
	OpPing  = 0x9
	OpPong  = 0xA
)

// MaxFrame bounds a server frame: the broadcasts are a few dozen bytes.
const MaxFrame = 1 << 20

// Read reads one server frame (unmasked) into buf, reusing its
// storage, and answers its opcode and payload.
func Read(br *bufio.Reader, buf []byte) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	op := h[0] & 0x0F
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("%w: masked server frame", ErrBadFrame)
	}
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrBadFrame, n)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(br, buf); err != nil {
		return 0, nil, err
	}
	return op, buf, nil
}

// clientMask is the masking key of every client frame: the servers must
// unmask, and a fixed key costs the clients nothing to pick.
var clientMask = [4]byte{0x5a, 0xc3, 0x17, 0x8e}

// AppendClient appends a final, masked client frame of op carrying
// payload.
func AppendClient(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, clientMask[:]...)
	for i, c := range payload {
		dst = append(dst, c^clientMask[i&3])
	}
	return dst
}
