package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrBadFrame is returned for a WebSocket frame a server must not send.
var ErrBadFrame = errors.New("bad websocket frame")

// WebSocket opcodes the clients handle.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// maxFrame bounds a server frame: the broadcasts are a few dozen bytes.
const maxFrame = 1 << 20

// readFrame reads one server frame (unmasked) into buf, reusing its
// storage, and answers its opcode and payload.
func readFrame(br *bufio.Reader, buf []byte) (byte, []byte, error) {
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
	if n > maxFrame {
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
// unmask, and a fixed key costs the load generator nothing to pick.
var clientMask = [4]byte{0x5a, 0xc3, 0x17, 0x8e}

// appendClientFrame appends a final, masked client frame of op carrying
// payload.
func appendClientFrame(dst []byte, op byte, payload []byte) []byte {
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

// packetKind is what a client does with a server's text message.
type packetKind int

const (
	pktOther        packetKind = iota // ignored
	pktOpen                           // Engine.IO open: connect to the namespace
	pktPing                           // Engine.IO ping: answer pong
	pktClose                          // Engine.IO close
	pktConnected                      // namespace connect acknowledged: register
	pktConnectError                   // namespace connect refused
	pktDisconnect                     // namespace disconnect
	pktRegistered                     // the `update ""` that answers register
	pktUpdate                         // a broadcast: `update` with the stamped data
)

// classify reads an Engine.IO text message of a client of namespace ns
// ("/realtime") and answers its kind; for pktUpdate also the data's
// broadcast index "i" and stamp "t" (unix ns).
func classify(msg []byte, ns string) (kind packetKind, idx uint64, stamp int64) {
	if len(msg) == 0 {
		return pktOther, 0, 0
	}
	switch msg[0] {
	case '0':
		return pktOpen, 0, 0
	case '1':
		return pktClose, 0, 0
	case '2':
		return pktPing, 0, 0
	case '4':
	default:
		return pktOther, 0, 0
	}
	// A Socket.IO packet: type, then "<ns>," unless ns is "/".
	if len(msg) < 2 {
		return pktOther, 0, 0
	}
	typ := msg[1]
	rest := msg[2:]
	if ns != "/" {
		var ok bool
		if rest, ok = bytes.CutPrefix(rest, []byte(ns+",")); !ok {
			if typ == '1' && bytes.Equal(rest, []byte(ns)) {
				return pktDisconnect, 0, 0
			}
			return pktOther, 0, 0
		}
	}
	switch typ {
	case '0':
		return pktConnected, 0, 0
	case '1':
		return pktDisconnect, 0, 0
	case '4':
		return pktConnectError, 0, 0
	case '2':
	default:
		return pktOther, 0, 0
	}
	arg, ok := bytes.CutPrefix(rest, []byte(`["update",`))
	if !ok {
		return pktOther, 0, 0
	}
	if bytes.Equal(arg, []byte(`""]`)) {
		return pktRegistered, 0, 0
	}
	i, ok1 := uintAfter(arg, `"i":`)
	t, ok2 := uintAfter(arg, `"t":`)
	if !ok1 || !ok2 {
		return pktOther, 0, 0
	}
	return pktUpdate, i, int64(t)
}

// uintAfter answers the decimal number that follows the first occurrence
// of field (e.g. `"t":`) in b. The clients read the servers' compact JSON
// this way rather than with encoding/json: they share the machine's cores
// with the server under test.
func uintAfter(b []byte, field string) (uint64, bool) {
	i := bytes.Index(b, []byte(field))
	if i < 0 {
		return 0, false
	}
	var n uint64
	digits := 0
	for _, c := range b[i+len(field):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
		digits++
	}
	return n, digits > 0
}
