package gateway

import (
	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
)

// ender is a WebSocket-borne session (native or Socket.IO) as the hub's
// close reasons see it.
type ender interface {
	// fail closes with code after telling the client why, if its protocol
	// can; dropQueued discards the frames not yet written.
	fail(code uint16, reason, msg string, dropQueued bool)
	// goAway closes with 1001: the gateway is shutting down.
	goAway()
}

// endFor ends s the way the contract says for the hub's reason r: the one
// place that maps hub reasons to close codes.
func endFor(s ender, r hub.Reason) {
	switch r {
	case hub.ReasonSlowConsumer:
		// Its backlog goes: the client resumes from history with since/epoch.
		s.fail(protocol.CloseOverLimit, "slow_consumer", "the connection did not keep up with its messages", true)
	case hub.ReasonKeyDropped:
		s.fail(protocol.CloseKeyRefused, "key_dropped", "an operator dropped a key this connection follows", false)
	default:
		s.goAway()
	}
}

// answersUnread ends s as a slow consumer whose own answers (pongs, pings)
// overflowed its queue. The gateway found it, not the hub, so the gateway
// counts it.
func (e *Engine) answersUnread(s ender) {
	e.slowCloses.Add(1)
	s.fail(protocol.CloseOverLimit, "slow_consumer", "the connection did not read its answers", true)
}
