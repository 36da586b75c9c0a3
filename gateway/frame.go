package gateway

import (
	"encoding/binary"
	"errors"

	"github.com/gobwas/ws"
)

// Frame-level protocol violations; each closes the connection with 1002.
var (
	errUnmasked      = errors.New("client frames must be masked")
	errReservedBits  = errors.New("reserved bits set without a negotiated extension")
	errReservedOp    = errors.New("reserved opcode")
	errControlLength = errors.New("control frame longer than 125 bytes")
	errControlFrag   = errors.New("fragmented control frame")
	errLength        = errors.New("frame length overflows")
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
