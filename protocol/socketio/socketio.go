// Package socketio is the wire codec of Engine.IO v4 and Socket.IO v5 (the
// protocol of socket.io 4.x): the Engine.IO packets carried in WebSocket
// text frames, and the Socket.IO packets carried in Engine.IO messages. It
// parses what clients send and builds what the gateway sends; sessions and
// transports live in package gateway.
//
// Parsers never panic on any input (fuzz tested) and a packet they accept
// re-encodes, with the Append functions, to bytes that parse to the same
// packet (the input itself when it was in canonical form).
package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// Sentinel errors of the parsers. Each parse error wraps one of them.
var (
	ErrEmpty      = errors.New("socketio: empty packet")
	ErrType       = errors.New("socketio: unknown packet type")
	ErrNamespace  = errors.New("socketio: invalid namespace")
	ErrAckID      = errors.New("socketio: invalid ack id")
	ErrAttachment = errors.New("socketio: invalid attachment count")
	ErrPayload    = errors.New("socketio: invalid payload")
)

// EIOType is an Engine.IO packet type, as its wire digit.
type EIOType byte

// Engine.IO packet types.
const (
	EIOOpen    EIOType = '0'
	EIOClose   EIOType = '1'
	EIOPing    EIOType = '2'
	EIOPong    EIOType = '3'
	EIOMessage EIOType = '4'
	EIOUpgrade EIOType = '5'
	EIONoop    EIOType = '6'
)

// EIOPacket is one Engine.IO packet of a text frame. Data aliases the parsed
// bytes.
type EIOPacket struct {
	Type EIOType
	Data []byte
}

// ParseEIO parses an Engine.IO packet from a WebSocket text frame's payload.
func ParseEIO(b []byte) (EIOPacket, error) {
	if len(b) == 0 {
		return EIOPacket{}, ErrEmpty
	}
	t := EIOType(b[0])
	if t < EIOOpen || t > EIONoop {
		return EIOPacket{}, ErrType
	}
	return EIOPacket{Type: t, Data: b[1:]}, nil
}

// AppendEIO appends p's wire form to dst.
func AppendEIO(dst []byte, p EIOPacket) []byte {
	return append(append(dst, byte(p.Type)), p.Data...)
}

// AppendOpen appends the Engine.IO open packet a server sends first:
//
//	0{"sid":"…","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":65536}
func AppendOpen(dst []byte, sid string, upgrades []string, pingInterval, pingTimeout time.Duration, maxPayload int64) []byte {
	dst = append(dst, `0{"sid":`...)
	dst = strconv.AppendQuote(dst, sid) // sids are ASCII: Go and JSON quoting agree
	dst = append(dst, `,"upgrades":[`...)
	for i, u := range upgrades {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendQuote(dst, u)
	}
	dst = append(dst, `],"pingInterval":`...)
	dst = strconv.AppendInt(dst, pingInterval.Milliseconds(), 10)
	dst = append(dst, `,"pingTimeout":`...)
	dst = strconv.AppendInt(dst, pingTimeout.Milliseconds(), 10)
	dst = append(dst, `,"maxPayload":`...)
	dst = strconv.AppendInt(dst, maxPayload, 10)
	return append(dst, '}')
}

// Type is a Socket.IO packet type.
type Type uint8

// Socket.IO packet types.
const (
	Connect Type = iota
	Disconnect
	Event
	Ack
	ConnectError
	BinaryEvent
	BinaryAck
)

// IsBinary tells whether packets of type t announce binary attachments.
func (t Type) IsBinary() bool { return t == BinaryEvent || t == BinaryAck }

// MaxNamespaceLen bounds a namespace's length in bytes.
const MaxNamespaceLen = 256

// maxAckID is the largest ack id accepted: JavaScript's largest safe
// integer, since clients count ids in a Number.
const maxAckID = 1<<53 - 1

// Packet is one Socket.IO packet. Data is the raw JSON payload (nil when
// absent) and aliases the parsed bytes.
type Packet struct {
	Type        Type
	Attachments int    // binary packets only
	Namespace   string // "/" when the packet names none
	HasID       bool
	ID          uint64
	Data        []byte
}

// Parse parses a Socket.IO packet: the data of an Engine.IO message.
//
//	<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) == 0 {
		return p, ErrEmpty
	}
	if b[0] < '0' || b[0] > '6' {
		return p, ErrType
	}
	p.Type = Type(b[0] - '0')
	i := 1
	if p.Type.IsBinary() {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i || j-i > 6 || j >= len(b) || b[j] != '-' {
			return p, ErrAttachment
		}
		n, _ := strconv.Atoi(string(b[i:j]))
		if string(b[i:j]) != strconv.Itoa(n) {
			return p, ErrAttachment // leading zeros would not re-encode equal
		}
		p.Attachments = n
		i = j + 1
	}
	p.Namespace = "/"
	if i < len(b) && b[i] == '/' {
		j := bytes.IndexByte(b[i:], ',')
		end, next := len(b), len(b)
		if j >= 0 {
			end, next = i+j, i+j+1
		}
		ns := b[i:end]
		if !validNamespace(ns) {
			return p, ErrNamespace
		}
		p.Namespace = string(ns)
		i = next
	}
	if i < len(b) && b[i] >= '0' && b[i] <= '9' {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		id, err := strconv.ParseUint(string(b[i:j]), 10, 64)
		if err != nil || id > maxAckID || (b[i] == '0' && j-i > 1) {
			return p, ErrAckID
		}
		p.HasID, p.ID = true, id
		i = j
	}
	if i < len(b) {
		p.Data = b[i:]
	}
	if !validPayload(p.Type, p.Data) {
		return p, ErrPayload
	}
	return p, nil
}

// Append appends p's wire form to dst: the canonical form, where the root
// namespace is left out.
func Append(dst []byte, p Packet) []byte {
	dst = append(dst, '0'+byte(p.Type))
	if p.Type.IsBinary() {
		dst = strconv.AppendInt(dst, int64(p.Attachments), 10)
		dst = append(dst, '-')
	}
	if p.Namespace != "" && p.Namespace != "/" {
		dst = append(dst, p.Namespace...)
		dst = append(dst, ',')
	}
	if p.HasID {
		dst = strconv.AppendUint(dst, p.ID, 10)
	}
	return append(dst, p.Data...)
}

// validNamespace accepts "/…" of at most MaxNamespaceLen bytes of UTF-8
// without control characters: namespaces end up in logs and in every
// packet the gateway sends back.
func validNamespace(ns []byte) bool {
	if len(ns) == 0 || ns[0] != '/' || len(ns) > MaxNamespaceLen || !utf8.Valid(ns) {
		return false
	}
	for _, c := range ns {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// validPayload applies socket.io-parser's rules on which payload each type
// carries.
func validPayload(t Type, data []byte) bool {
	if len(data) == 0 {
		return t == Connect || t == Disconnect
	}
	if !json.Valid(data) {
		return false
	}
	first := firstByte(data)
	switch t {
	case Connect:
		return first == '{'
	case Disconnect:
		return false
	case ConnectError:
		return first == '{' || first == '"'
	case Event, BinaryEvent:
		if first != '[' {
			return false
		}
		i := bytes.IndexByte(data, '[') + 1
		return firstByte(data[i:]) == '"' // the event name
	default: // Ack, BinaryAck
		return first == '['
	}
}

// firstByte returns b's first byte that is not JSON whitespace (0 if none).
func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// EventArgs splits an EVENT payload (validated by Parse) into the event
// name and its raw JSON arguments.
func EventArgs(data []byte) (name string, args []json.RawMessage, err error) {
	var all []json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil || len(all) == 0 {
		return "", nil, ErrPayload
	}
	if err := json.Unmarshal(all[0], &name); err != nil {
		return "", nil, ErrPayload
	}
	return name, all[1:], nil
}

// AppendEventPrefix appends what precedes an EVENT's payload inside an
// Engine.IO message: "42" and, for namespaces other than "/", the namespace
// and a comma.
func AppendEventPrefix(dst []byte, ns string) []byte {
	dst = append(dst, '4', '2')
	if ns != "" && ns != "/" {
		dst = append(dst, ns...)
		dst = append(dst, ',')
	}
	return dst
}
