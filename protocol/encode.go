package protocol

import (
	"strconv"
	"unicode/utf8"

	"github.com/pushgateway/push_gateway/hub"
)

// AppendRegistered appends {"type":"registered","sdk_key":K,"epoch":E,"seq":N}:
// key is followed, seq is its newest seq (0: none yet).
func AppendRegistered(dst []byte, key, epoch string, seq uint64) []byte {
	return appendPosition(append(dst, `{"type":"registered","sdk_key":`...), key, epoch, seq)
}

// AppendResync appends {"type":"resync","sdk_key":K,"epoch":E,"seq":N}: the
// history cannot cover the since given; the client pulls full state and
// continues from seq.
func AppendResync(dst []byte, key, epoch string, seq uint64) []byte {
	return appendPosition(append(dst, `{"type":"resync","sdk_key":`...), key, epoch, seq)
}

// AppendNotice appends the registered or resync message of n.
func AppendNotice(dst []byte, n hub.Notice) []byte {
	if n.Kind == hub.NoticeResync {
		return AppendResync(dst, n.Key, n.Epoch, n.Seq)
	}
	return AppendRegistered(dst, n.Key, n.Epoch, n.Seq)
}

func appendPosition(dst []byte, key, epoch string, seq uint64) []byte {
	dst = appendString(dst, key)
	dst = append(dst, `,"epoch":`...)
	dst = appendString(dst, epoch)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '}')
}

// AppendPong appends {"type":"pong"}, the answer to a ping message.
func AppendPong(dst []byte) []byte { return append(dst, `{"type":"pong"}`...) }

// AppendError appends {"type":"error","code":C,"message":M}, sent before the
// gateway closes a connection for the client's fault.
func AppendError(dst []byte, code, message string) []byte {
	dst = append(dst, `{"type":"error","code":`...)
	dst = appendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, message)
	return append(dst, '}')
}

// AppendMessage appends a published message:
//
//	{"type":"message","sdk_key":K,"epoch":E,"seq":44,"event":"update","data":D,"ts":1732300000123}
//
// D is m.Data byte for byte (the publisher's JSON, validated by whoever
// accepted the publish); empty Data is written as null so that the output
// stays JSON.
func AppendMessage(dst []byte, m *hub.Message) []byte {
	dst = append(dst, `{"type":"message","sdk_key":`...)
	dst = appendString(dst, m.Key)
	dst = append(dst, `,"epoch":`...)
	dst = appendString(dst, m.Epoch)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, m.Seq, 10)
	dst = append(dst, `,"event":`...)
	dst = appendString(dst, m.Event)
	dst = append(dst, `,"data":`...)
	if len(m.Data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, m.Data...)
	}
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, m.TS, 10)
	return append(dst, '}')
}

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// U+2028 and U+2029 are escaped so the output is also valid JavaScript.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

const hexDigits = "0123456789abcdef"

func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
