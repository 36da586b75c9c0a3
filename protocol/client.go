package protocol

import (
	"strconv"
	"unicode/utf8"

	"github.com/pushgateway/push_gateway/hub"
)

// Type is the type of a client message.
type Type uint8

// Client message types.
const (
	TypeRegister   Type = iota + 1 // follow a key, optionally from since/epoch
	TypeUnregister                 // stop following a key
	TypePing                       // application heartbeat, answered by pong
	TypeAck                        // the client applied a key up to seq
)

var typeNames = [...]string{TypeRegister: "register", TypeUnregister: "unregister", TypePing: "ping", TypeAck: "ack"}

// String returns the type's wire name.
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// MaxEpochLen bounds the epoch a client may send. Epochs made by the hub
// are far shorter; anything longer cannot match and only costs memory.
const MaxEpochLen = 128

// maxSkipDepth bounds the nesting of unknown fields' values, which are
// skipped, not decoded. The limit keeps skipping iterative with a 64-bit
// stack and answers a `[[[[...` flood with an error instead of work.
const maxSkipDepth = 32

// ClientMessage is one parsed client message. Fields a type does not use
// are kept as sent (a ping may carry an sdk_key; it is ignored).
type ClientMessage struct {
	Type     Type
	SDKKey   string // register, unregister, ack: always valid per hub.ValidKey
	Since    uint64 // register: resume after this seq; valid when HasSince
	HasSince bool   // register: since was given (not absent, not null)
	Epoch    string // register: the epoch since belongs to; may be empty
	Seq      uint64 // ack: the newest seq the client applied
}

// ParseClient parses one client text message:
//
//	{"type":"register","sdk_key":"K","since":42,"epoch":"E"}
//	{"type":"unregister","sdk_key":"K"}
//	{"type":"ping"}
//	{"type":"ack","sdk_key":"K","seq":43}
//
// It accepts exactly one JSON object, fields in any order, unknown fields
// ignored (nested at most 32 deep), each known field at most once; since and
// seq are non-negative integers, since and epoch may be null (absent).
// Strings must be valid UTF-8. Every refusal is an *Error with Code
// CodeBadRequest; a refused sdk_key's error also wraps hub.ErrBadKey.
// ParseClient does not keep data.
func ParseClient(data []byte) (ClientMessage, error) {
	var m ClientMessage
	p := parser{b: data}
	p.skipWS()
	if p.i == len(p.b) {
		return m, badRequest("empty message: expected a JSON object")
	}
	if p.b[p.i] != '{' {
		return m, badRequest("message must be a JSON object")
	}
	p.i++

	const (
		seenType = 1 << iota
		seenKey
		seenSince
		seenEpoch
		seenSeq
	)
	var seen uint8
	see := func(bit uint8, name string) error {
		if seen&bit != 0 {
			return badRequest("duplicate field " + strconv.Quote(name))
		}
		seen |= bit
		return nil
	}

	p.skipWS()
	if p.peek() == '}' {
		p.i++
	} else {
		for {
			name, err := p.fieldName()
			if err != nil {
				return m, err
			}
			switch string(name) {
			case "type":
				if err := see(seenType, "type"); err != nil {
					return m, err
				}
				if m.Type, err = p.typeValue(); err != nil {
					return m, err
				}
			case "sdk_key":
				if err := see(seenKey, "sdk_key"); err != nil {
					return m, err
				}
				if m.SDKKey, err = p.keyValue(); err != nil {
					return m, err
				}
			case "since":
				if err := see(seenSince, "since"); err != nil {
					return m, err
				}
				if m.Since, m.HasSince, err = p.uintValue("since"); err != nil {
					return m, err
				}
			case "epoch":
				if err := see(seenEpoch, "epoch"); err != nil {
					return m, err
				}
				if m.Epoch, err = p.epochValue(); err != nil {
					return m, err
				}
			case "seq":
				if err := see(seenSeq, "seq"); err != nil {
					return m, err
				}
				var has bool
				if m.Seq, has, err = p.uintValue("seq"); err != nil {
					return m, err
				}
				if !has {
					seen &^= seenSeq
				}
			default:
				if err := p.skipValue(); err != nil {
					return m, err
				}
			}
			p.skipWS()
			if p.i == len(p.b) {
				return m, badRequest("unexpected end of message: missing '}'")
			}
			c := p.b[p.i]
			p.i++
			if c == '}' {
				break
			}
			if c != ',' {
				return m, p.syntax("expected ',' or '}' after a field")
			}
			p.skipWS()
		}
	}
	p.skipWS()
	if p.i != len(p.b) {
		return m, p.syntax("unexpected data after the JSON object")
	}

	switch {
	case seen&seenType == 0:
		return m, badRequest(`missing "type"`)
	case m.Type != TypePing && seen&seenKey == 0:
		return m, badRequest(m.Type.String() + ` needs "sdk_key"`)
	case m.Type == TypeAck && seen&seenSeq == 0:
		return m, badRequest(`ack needs "seq"`)
	}
	return m, nil
}

// parser walks one message. i is the next byte to read.
type parser struct {
	b []byte
	i int
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) skipWS() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// syntax reports a JSON syntax error at the current offset.
func (p *parser) syntax(what string) *Error {
	if p.i >= len(p.b) {
		return badRequest("invalid JSON: " + what + " at the end of the message")
	}
	return badRequest("invalid JSON at offset " + strconv.Itoa(p.i) + ": " + what)
}

// fieldName reads `"name"` and the colon after it. The returned bytes alias
// the input unless the name held escapes.
func (p *parser) fieldName() ([]byte, error) {
	if p.peek() != '"' {
		return nil, p.syntax("expected a field name")
	}
	name, err := p.stringValue()
	if err != nil {
		return nil, err
	}
	p.skipWS()
	if p.peek() != ':' {
		return nil, p.syntax("expected ':' after a field name")
	}
	p.i++
	p.skipWS()
	return name, nil
}

func (p *parser) typeValue() (Type, error) {
	if p.peek() != '"' {
		return 0, badRequest(`"type" must be a string`)
	}
	s, err := p.stringValue()
	if err != nil {
		return 0, err
	}
	for t, name := range typeNames {
		if name != "" && string(s) == name {
			return Type(t), nil
		}
	}
	return 0, badRequest("unknown type " + quoteShort(s) + `: want "register", "unregister", "ping" or "ack"`)
}

func (p *parser) keyValue() (string, error) {
	if p.peek() != '"' {
		return "", badRequest(`"sdk_key" must be a string`)
	}
	s, err := p.stringValue()
	if err != nil {
		return "", err
	}
	key := string(s)
	if err := hub.ValidKey(key); err != nil {
		return "", &Error{Code: CodeBadRequest, err: err,
			Message: `invalid "sdk_key": want 1 to ` + strconv.Itoa(hub.MaxKeyLen) + " bytes without control characters"}
	}
	return key, nil
}

func (p *parser) epochValue() (string, error) {
	if p.literal("null") {
		return "", nil
	}
	if p.peek() != '"' {
		return "", badRequest(`"epoch" must be a string`)
	}
	s, err := p.stringValue()
	if err != nil {
		return "", err
	}
	if len(s) > MaxEpochLen {
		return "", badRequest(`"epoch" is longer than ` + strconv.Itoa(MaxEpochLen) + " bytes")
	}
	return string(s), nil
}

// uintValue reads a non-negative integer, or null (has false).
func (p *parser) uintValue(name string) (n uint64, has bool, err error) {
	if p.literal("null") {
		return 0, false, nil
	}
	bad := func() *Error { return badRequest(strconv.Quote(name) + " must be a non-negative integer") }
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	switch {
	case len(digits) == 0:
		return 0, false, bad()
	case len(digits) > 1 && digits[0] == '0':
		return 0, false, badRequest(strconv.Quote(name) + " has a leading zero")
	}
	if c := p.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, false, bad()
	}
	for _, d := range digits {
		if n > (1<<64-1-uint64(d-'0'))/10 {
			return 0, false, badRequest(strconv.Quote(name) + " is too large")
		}
		n = n*10 + uint64(d-'0')
	}
	return n, true, nil
}

// literal consumes lit (true, false, null) when it comes next.
func (p *parser) literal(lit string) bool {
	if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return true
	}
	return false
}

// stringValue reads a JSON string starting at the opening quote and returns
// its decoded bytes: a slice of the input when it holds no escapes, else a
// new slice. It refuses control characters and invalid UTF-8.
func (p *parser) stringValue() ([]byte, error) {
	p.i++ // opening quote
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, nil
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20:
			return nil, p.syntax("control character in a string")
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, p.syntax("string is not valid UTF-8")
			}
			p.i += size
		}
	}
	return nil, p.syntax("unterminated string")
}

// escapedString continues stringValue from the first backslash, decoding
// into a new buffer.
func (p *parser) escapedString(start int) ([]byte, error) {
	out := make([]byte, 0, p.i-start+16)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return out, nil
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return nil, p.syntax("unterminated string")
			}
			e := p.b[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return nil, p.syntax(`invalid \u escape`)
				}
				if utf16IsSurrogate(r) {
					// A high surrogate followed by a low one is one rune;
					// anything else is U+FFFD, as encoding/json decodes it.
					r2 := rune(-1)
					if r < 0xdc00 && p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
						save := p.i
						p.i += 2
						if lo, ok := p.hex4(); ok && lo >= 0xdc00 && lo < 0xe000 {
							r2 = lo
						} else {
							p.i = save
						}
					}
					if r2 >= 0 {
						r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				p.i--
				return nil, p.syntax("invalid escape in a string")
			}
		case c < 0x20:
			return nil, p.syntax("control character in a string")
		case c < utf8.RuneSelf:
			out = append(out, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, p.syntax("string is not valid UTF-8")
			}
			out = append(out, p.b[p.i:p.i+size]...)
			p.i += size
		}
	}
	return nil, p.syntax("unterminated string")
}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r < 0xe000 }

// hex4 reads four hex digits.
func (p *parser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// skipValue skips one JSON value of an unknown field, checking its syntax.
// It is iterative: stack holds one bit per open container (1: object).
func (p *parser) skipValue() error {
	var stack uint64
	depth := 0
	for {
		// A value is expected here.
		p.skipWS()
		if p.i == len(p.b) {
			return p.syntax("expected a value")
		}
		closed := true
		switch c := p.b[p.i]; {
		case c == '{' || c == '[':
			if depth == maxSkipDepth {
				return badRequest("JSON nested deeper than " + strconv.Itoa(maxSkipDepth) + " levels")
			}
			p.i++
			stack <<= 1
			if c == '{' {
				stack |= 1
			}
			depth++
			p.skipWS()
			if (c == '{' && p.peek() == '}') || (c == '[' && p.peek() == ']') {
				p.i++
				stack >>= 1
				depth--
			} else {
				closed = false
				if c == '{' {
					if _, err := p.fieldName(); err != nil {
						return err
					}
				}
			}
		case c == '"':
			if _, err := p.stringValue(); err != nil {
				return err
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if err := p.skipNumber(); err != nil {
				return err
			}
		case c == 't':
			if !p.literal("true") {
				return p.syntax("invalid literal")
			}
		case c == 'f':
			if !p.literal("false") {
				return p.syntax("invalid literal")
			}
		case c == 'n':
			if !p.literal("null") {
				return p.syntax("invalid literal")
			}
		default:
			return p.syntax("expected a value")
		}
		if !closed {
			continue // read the container's first value
		}
		// After a value: close containers or move to the next element.
		for {
			if depth == 0 {
				return nil
			}
			p.skipWS()
			if p.i == len(p.b) {
				return p.syntax("unterminated array or object")
			}
			c := p.b[p.i]
			p.i++
			inObject := stack&1 == 1
			if c == ',' {
				p.skipWS()
				if inObject {
					if _, err := p.fieldName(); err != nil {
						return err
					}
				}
				break
			}
			if (inObject && c == '}') || (!inObject && c == ']') {
				stack >>= 1
				depth--
				continue
			}
			p.i--
			return p.syntax("expected ',' or the end of an array or object")
		}
	}
}

// skipNumber skips a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) skipNumber() error {
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.peek() == '-' {
		p.i++
	}
	switch {
	case p.peek() == '0':
		p.i++
	case digits() == 0:
		return p.syntax("invalid number")
	}
	if p.peek() == '.' {
		p.i++
		if digits() == 0 {
			return p.syntax("invalid number")
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if digits() == 0 {
			return p.syntax("invalid number")
		}
	}
	return nil
}

// quoteShort quotes s for an error message, cut to 32 bytes.
func quoteShort(s []byte) string {
	if len(s) > 32 {
		return strconv.Quote(string(s[:32])) + "..."
	}
	return strconv.Quote(string(s))
}

// AppendClientMessage appends m as JSON, the inverse of ParseClient: for
// clients, tests and load generators. Zero fields are left out, except seq
// of an ack.
func AppendClientMessage(dst []byte, m ClientMessage) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, m.Type.String())
	if m.SDKKey != "" {
		dst = append(dst, `,"sdk_key":`...)
		dst = appendString(dst, m.SDKKey)
	}
	if m.HasSince {
		dst = append(dst, `,"since":`...)
		dst = strconv.AppendUint(dst, m.Since, 10)
	}
	if m.Epoch != "" {
		dst = append(dst, `,"epoch":`...)
		dst = appendString(dst, m.Epoch)
	}
	if m.Seq != 0 || m.Type == TypeAck {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, m.Seq, 10)
	}
	return append(dst, '}')
}
