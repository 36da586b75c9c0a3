package protocol

import (
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The server's WebSocket frames are single, final, unmasked frames
// (RFC 6455 §5.1: a server must not mask). Building them here instead of
// with ws.WriteHeader keeps header and payload in one slice, written with
// one write, and allocation-free when dst has room.

// maxHeaderLen is the largest frame header a server writes (no mask key).
const maxHeaderLen = 10

// maxControlPayload is the payload limit of control frames (RFC 6455 §5.5).
const maxControlPayload = 125

// appendHeader appends a final frame header for op and a payload of n bytes.
func appendHeader(dst []byte, op ws.OpCode, n int) []byte {
	b0 := 0x80 | byte(op)
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		u := uint64(n)
		return append(dst, b0, 127, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32),
			byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
}

// headerLen is len(appendHeader(nil, op, n)).
func headerLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return maxHeaderLen
	}
}

// TextFrame appends a text frame holding payload to dst.
func TextFrame(dst, payload []byte) []byte {
	dst = appendHeader(dst, ws.OpText, len(payload))
	return append(dst, payload...)
}

// CloseFrame returns a close frame with code and reason. The reason is cut
// to the 123 bytes a control frame leaves for it, at a UTF-8 boundary. Code
// 0 makes a close frame without a body.
func CloseFrame(code uint16, reason string) []byte {
	if code == 0 {
		return []byte{0x80 | byte(ws.OpClose), 0}
	}
	if len(reason) > maxControlPayload-2 {
		cut := maxControlPayload - 2
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	b := make([]byte, 0, 4+len(reason))
	b = appendHeader(b, ws.OpClose, 2+len(reason))
	b = append(b, byte(code>>8), byte(code))
	return append(b, reason...)
}

var pingFrame = []byte{0x80 | byte(ws.OpPing), 0}

// PingFrame returns an empty ping frame. The bytes are shared: do not
// modify them (appending copies).
func PingFrame() []byte { return pingFrame[:2:2] }

// PongFrame returns a pong frame echoing payload, cut to the 125 bytes a
// control frame may carry (the frame reader refuses longer pings anyway).
func PongFrame(payload []byte) []byte {
	if len(payload) > maxControlPayload {
		payload = payload[:maxControlPayload]
	}
	b := make([]byte, 0, 2+len(payload))
	b = appendHeader(b, ws.OpPong, len(payload))
	return append(b, payload...)
}
