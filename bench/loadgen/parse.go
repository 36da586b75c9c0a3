package main

import (
	"encoding/binary"
	"fmt"
)

// parseFrame decodes one frame from the start of b. It answers n == 0 when b
// does not hold a whole frame yet. payload aliases b and is unmasked in place.
func parseFrame(b []byte) (fin bool, op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return false, 0, nil, 0, nil
	}
	if b[0]&0x70 != 0 {
		return false, 0, nil, 0, fmt.Errorf("%w: reserved bits set", ErrProtocol)
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0F
	masked := b[1]&0x80 != 0
	size := uint64(b[1] & 0x7F)
	h := 2
	switch size {
	case 126:
		if len(b) < 4 {
			return false, 0, nil, 0, nil
		}
		size, h = uint64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return false, 0, nil, 0, nil
		}
		size, h = binary.BigEndian.Uint64(b[2:10]), 10
	}
	if size > maxPayload {
		return false, 0, nil, 0, ErrTooLarge
	}
	if op >= opClose && (!fin || size > 125) {
		return false, 0, nil, 0, fmt.Errorf("%w: bad control frame", ErrProtocol)
	}
	var mask []byte
	if masked {
		if len(b) < h+4 {
			return false, 0, nil, 0, nil
		}
		mask, h = b[h:h+4], h+4
	}
	if uint64(len(b)-h) < size {
		return false, 0, nil, 0, nil
	}
	payload = b[h : h+int(size)]
	if masked {
		for i := range payload {
			payload[i] ^= mask[i&3]
		}
	}
	return fin, op, payload, h + int(size), nil
}
