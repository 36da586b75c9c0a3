package protocol

import (
	"github.com/gobwas/ws"

	"github.com/pushgateway/push_gateway/hub"
)

// Native is the native WebSocket encoding of a published message: the whole
// text frame of AppendMessage's JSON, built once per message by the first
// native follower (hub.Message.Encoded) and written as-is to every one.
var Native = hub.NewFormat("native", encodeNative)

// encodeNative builds the frame in one allocation: the JSON is appended
// after room for the largest header, then the real header is written just
// before it.
func encodeNative(m *hub.Message) []byte {
	size := maxHeaderLen + 96 + len(m.Key) + len(m.Epoch) + len(m.Event) + len(m.Data) + 2*20
	buf := make([]byte, maxHeaderLen, size)
	buf = AppendMessage(buf, m)
	n := len(buf) - maxHeaderLen
	start := maxHeaderLen - headerLen(n)
	appendHeader(buf[start:start], ws.OpText, n)
	// Full slice expression: an append by a follower must copy, never write
	// into the shared buffer's spare capacity.
	return buf[start:len(buf):len(buf)]
}
