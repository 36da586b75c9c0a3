package gateway

import (
	"encoding/binary"
	"errors"

	"github.com/gobwas/ws"

	"github.com/pushgateway/push_gateway/protocol"
)

// Frame-level protocol violations; each closes the connection with 1002.
var (
	errUnmasked      = errors.New("client frames must be masked")
	errReservedBits  = errors.New("reserved bits set without a negotiated extension")
	errReservedOp    = errors.New("reserved opcode")
	errControlLength = errors.New("control frame longer than 125 bytes")
	errControlFrag   = errors.New("fragmented control frame")
	errLength        = errors.New("frame length overflows")
	// errCloseCode: gobwas' CheckCloseFrameData lets codes of 5000 and up
	// through, which RFC 6455 (7.4.2) leaves undefined: no valid endpoint
	// sends them, and echoing one back would be sending it ourselves.
	errCloseCode = errors.New("close code out of range")
)

// frameHeader is a decoded client frame header.
type frameHeader struct {
	fin    bool
	op     ws.OpCode
	mask   [4]byte
	length int64
}

// parseFrameHeader decodes the header at the start of b without blocking:
// n == 0 with a nil error means b does not hold a whole header yet. It
// enforces what RFC 6455 requires of a client frame to a server with no
// extensions. (gobwas' ws.ReadHeader reads from an io.Reader and would block
// a worker on a half-sent header; this reads from bytes already received.)
func parseFrameHeader(b []byte) (h frameHeader, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.fin = b[0]&0x80 != 0
	rsv := b[0] & 0x70
	h.op = ws.OpCode(b[0] & 0x0f)
	masked := b[1]&0x80 != 0
	length := int64(b[1] & 0x7f)
	n = 2
	switch length {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if masked {
		n += 4
	}
	switch {
	case rsv != 0:
		return h, 0, errReservedBits
	case h.op.IsReserved():
		return h, 0, errReservedOp
	case !masked:
		return h, 0, errUnmasked
	case h.op.IsControl() && !h.fin:
		return h, 0, errControlFrag
	case h.op.IsControl() && length > 125:
		return h, 0, errControlLength
	}
	if len(b) < n {
		return h, 0, nil
	}
	switch length {
	case 126:
		length = int64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(b[2:10])
		if u > 1<<62 {
			return h, 0, errLength
		}
		length = int64(u)
	}
	h.length = length
	copy(h.mask[:], b[n-4:n])
	return h, n, nil
}

// frameSink is a session as wsReader sees it: where whole messages, pings
// and close frames go, and how a protocol violation ends the connection.
type frameSink interface {
	isEnded() bool
	// violation closes the connection for the client's fault: code is the
	// close code, errCode a short reason, msg what went wrong.
	violation(code uint16, errCode, msg string)
	onPing(payload []byte)
	// onClientClose answers a valid close frame from the client.
	onClientClose(code ws.StatusCode)
	onMessage(op ws.OpCode, msg []byte)
}

// wsReader turns the bytes of a netpoll read into whole client messages:
// every WebSocket session (native, Socket.IO) reads through one, so frame
// rules, reassembly and the size limit are the same for all of them. It is
// touched only by OnRead. It is one pointer, nil between messages: every
// idle session embeds one, and fragmented messages are rare.
type wsReader struct {
	frag *fragment // the fragmented message being reassembled; nil: none
}

// fragment is a fragmented message's opcode and the payload received so far.
type fragment struct {
	buf []byte
	op  ws.OpCode
}

// read decodes every whole frame in data and returns how many bytes it
// consumed (all of them once the sink has ended). A message longer than
// limit bytes closes with 1009.
func (r *wsReader) read(data []byte, limit int64, sink frameSink) int {
	off := 0
	for !sink.isEnded() {
		h, hn, err := parseFrameHeader(data[off:])
		if err != nil {
			sink.violation(protocol.CloseProtocolError, "protocol_error", err.Error())
			return len(data)
		}
		if hn == 0 {
			break
		}
		if h.length > limit || (r.frag != nil && int64(len(r.frag.buf))+h.length > limit) {
			sink.violation(protocol.CloseTooLarge, "too_large", "message larger than max_message_size")
			return len(data)
		}
		end := off + hn + int(h.length)
		if end > len(data) {
			break // the rest of the frame has not arrived yet
		}
		payload := data[off+hn : end]
		ws.Cipher(payload, h.mask, 0)
		off = end
		r.onFrame(h, payload, sink)
	}
	if sink.isEnded() {
		return len(data)
	}
	return off
}

// onFrame handles one whole, unmasked frame.
func (r *wsReader) onFrame(h frameHeader, payload []byte, sink frameSink) {
	switch h.op {
	case ws.OpPing:
		sink.onPing(payload)
	case ws.OpPong:
	case ws.OpClose:
		code := ws.StatusNormalClosure
		if len(payload) > 0 {
			var reason string
			code, reason = ws.ParseCloseFrameData(payload)
			err := ws.CheckCloseFrameData(code, reason)
			if err == nil && code > 4999 {
				err = errCloseCode
			}
			if err != nil {
				sink.violation(protocol.CloseProtocolError, "protocol_error", "invalid close frame: "+err.Error())
				return
			}
		}
		sink.onClientClose(code)
	case ws.OpContinuation:
		if r.frag == nil {
			sink.violation(protocol.CloseProtocolError, "protocol_error", "continuation frame without a message to continue")
			return
		}
		r.frag.buf = append(r.frag.buf, payload...)
		if h.fin {
			f := r.frag
			r.frag = nil
			sink.onMessage(f.op, f.buf)
		}
	default: // text or binary
		if r.frag != nil {
			sink.violation(protocol.CloseProtocolError, "protocol_error", "new message before the fragmented one ended")
			return
		}
		if !h.fin {
			r.frag = &fragment{buf: append(make([]byte, 0, 2*len(payload)), payload...), op: h.op}
			return
		}
		sink.onMessage(h.op, payload)
	}
}
