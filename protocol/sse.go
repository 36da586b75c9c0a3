package protocol

import (
	"errors"
	"strconv"
	"strings"

	"github.com/pushgateway/push_gateway/hub"
)

// SSE is the Server-Sent Events encoding of a published message: the whole
// event (AppendSSEMessage), built once per message by the first SSE follower
// (hub.Message.Encoded) and written as-is to every one.
var SSE = hub.NewFormat("sse", encodeSSE)

// ErrBadEventID is returned by ParseSSEID for an id the gateway never sends.
var ErrBadEventID = errors.New("protocol: event id is not <epoch>:<seq>")

// SSEHeartbeat is the comment line sent every heartbeat: proxies and the
// client's reader see traffic, EventSource ignores it.
var SSEHeartbeat = []byte(": hb\n")

// AppendSSEPrelude appends what an SSE stream starts with: a comment, so
// that proxies that buffer until the first body byte pass the headers on,
// and the reconnection delay EventSource should use, in milliseconds.
func AppendSSEPrelude(dst []byte, retryMS int64) []byte {
	dst = append(dst, ": push_gateway\nretry: "...)
	dst = strconv.AppendInt(dst, retryMS, 10)
	return append(dst, "\n\n"...)
}

// AppendSSEComment appends a comment line ": text\n". Line breaks in text
// become spaces: a comment must stay one line.
func AppendSSEComment(dst []byte, text string) []byte {
	dst = append(dst, ": "...)
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '\n' || c == '\r' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return append(dst, '\n')
}

// AppendSSEID appends an event id, "<epoch>:<seq>".
func AppendSSEID(dst []byte, epoch string, seq uint64) []byte {
	dst = append(dst, epoch...)
	dst = append(dst, ':')
	return strconv.AppendUint(dst, seq, 10)
}

// AppendSSEPosition appends an event made of an id only: EventSource
// dispatches nothing for it but remembers the id, so that a client that
// connected without a position and lost its stream before any message came
// resumes from (epoch, seq) instead of missing what was published meanwhile.
func AppendSSEPosition(dst []byte, epoch string, seq uint64) []byte {
	dst = append(dst, "id: "...)
	dst = AppendSSEID(dst, epoch, seq)
	return append(dst, "\n\n"...)
}

// AppendSSEMessage appends a published message as one event:
//
//	id: <epoch>:<seq>
//	event: <event>
//	data: <data>
//
// followed by a blank line. Data is the publisher's JSON byte for byte
// (empty Data is written as null, like AppendMessage), split at every line
// break (CRLF, CR or LF) into several data lines: a client joins them back
// with "\n", and a raw line break can never end the event early.
func AppendSSEMessage(dst []byte, m *hub.Message) []byte {
	dst = append(dst, "id: "...)
	dst = AppendSSEID(dst, m.Epoch, m.Seq)
	dst = append(dst, "\nevent: "...)
	dst = append(dst, m.Event...)
	dst = append(dst, '\n')
	data := m.Data
	if len(data) == 0 {
		data = []byte("null")
	}
	dst = appendSSEData(dst, data)
	return append(dst, '\n')
}

// AppendSSEResync appends the event telling a client that history cannot
// cover the position it resumed from: it pulls full state and continues
// from (epoch, seq). The id makes EventSource's own reconnect resume there.
//
//	id: <epoch>:<seq>
//	event: resync
//	data: {"epoch":"<epoch>","seq":<seq>}
func AppendSSEResync(dst []byte, epoch string, seq uint64) []byte {
	dst = append(dst, "id: "...)
	dst = AppendSSEID(dst, epoch, seq)
	dst = append(dst, "\nevent: resync\ndata: {\"epoch\":"...)
	dst = appendString(dst, epoch)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, "}\n\n"...)
}

// appendSSEData appends data as "data: " lines, one per line of data.
func appendSSEData(dst, data []byte) []byte {
	for {
		dst = append(dst, "data: "...)
		i := indexLineBreak(data)
		if i < 0 {
			dst = append(dst, data...)
			return append(dst, '\n')
		}
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

func indexLineBreak(b []byte) int {
	for i, c := range b {
		if c == '\n' || c == '\r' {
			return i
		}
	}
	return -1
}

// ParseSSEID parses an event id the gateway sent, "<epoch>:<seq>" (what
// EventSource sends back as Last-Event-ID). The seq follows the last colon.
func ParseSSEID(id string) (epoch string, seq uint64, err error) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", 0, ErrBadEventID
	}
	seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, ErrBadEventID
	}
	return id[:i], seq, nil
}

// encodeSSE builds the shared event in one allocation.
func encodeSSE(m *hub.Message) []byte {
	size := 32 + len(m.Epoch) + 20 + len(m.Event) + len(m.Data) + 4
	buf := AppendSSEMessage(make([]byte, 0, size), m)
	// Full slice expression: an append by a follower must copy, never write
	// into the shared buffer's spare capacity.
	return buf[:len(buf):len(buf)]
}
