package gateway

import (
	"errors"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/netpoll"
	"github.com/pushgateway/push_gateway/protocol"
)

// wsSession is one native WebSocket connection: a netpoll.Handler on the
// reading side and a hub.Follower on the writing side. An idle session is
// this struct, its Conn and its Subscription: nothing else (I4).
type wsSession struct {
	route *Route // and its Engine, route.e (not kept twice: 8 bytes a class)
	conn  *netpoll.Conn
	sub   *hub.Subscription

	adm *admission // the connection's share of the limits; OnClose releases it

	lastRead atomic.Int64 // unix nanos of the last byte received
	lastPing atomic.Int64 // unix nanos of the last heartbeat sent

	rd    wsReader    // frame decoding, touched only by OnRead (one pointer)
	ended atomic.Bool // a close was decided; later ones are ignored
	// Size 64, a malloc size class (TestSessionSize): every idle
	// connection holds one, so new fields go where they do not cross a
	// class.
}

var (
	_ hub.Follower    = (*wsSession)(nil)
	_ netpoll.Handler = (*wsSession)(nil)
)

// Deliver queues a published message: the frame was encoded once for every
// follower (I3: never blocks; false marks a slow consumer).
func (s *wsSession) Deliver(m *hub.Message) bool {
	return s.conn.EnqueueStamped(m.Encoded(protocol.Native), s.route.e.queueLimit(s.route.get()), m.LiveStamp())
}

// Notify queues a registered or resync message.
func (s *wsSession) Notify(n hub.Notice) bool {
	var payload []byte
	switch n.Kind {
	case hub.NoticeRegistered:
		payload = protocol.AppendRegistered(nil, n.Key, n.Epoch, n.Seq)
	case hub.NoticeResync:
		payload = protocol.AppendResync(nil, n.Key, n.Epoch, n.Seq)
	default:
		return true
	}
	return s.conn.Enqueue(protocol.TextFrame(nil, payload), s.route.e.queueLimit(s.route.get()))
}

// Close is the hub telling the session to end.
func (s *wsSession) Close(r hub.Reason) { endFor(s, r) }

// goAway closes with 1001: the gateway is shutting down.
func (s *wsSession) goAway() {
	if s.ended.Swap(true) {
		return
	}
	s.conn.CloseWith(protocol.CloseFrame(protocol.CloseGoingAway, "gateway shutting down"), false)
}

// fail sends an error message and closes with code. With dropQueued, frames
// not yet written are discarded first (a slow consumer's backlog: it resumes
// from history with since/epoch).
func (s *wsSession) fail(code uint16, errCode, msg string, dropQueued bool) {
	if s.ended.Swap(true) {
		return
	}
	frames := protocol.TextFrame(nil, protocol.AppendError(nil, errCode, msg))
	frames = append(frames, protocol.CloseFrame(code, errCode)...)
	s.conn.CloseWith(frames, dropQueued)
	if ce := s.route.e.logger.Check(zap.DebugLevel, "closing connection"); ce != nil {
		ce.Write(zap.Uint16("code", code), zap.String("reason", errCode),
			zap.Stringer("remote", s.conn.RemoteAddr()))
	}
}

// OnRead decodes every whole frame in data and keeps the rest for later.
func (s *wsSession) OnRead(c *netpoll.Conn, data []byte) int {
	s.lastRead.Store(time.Now().UnixNano())
	return s.rd.read(data, s.route.get().MaxMessageSize, s)
}

// The frameSink side of the session, for its wsReader.

func (s *wsSession) isEnded() bool { return s.ended.Load() }

func (s *wsSession) violation(code uint16, errCode, msg string) { s.fail(code, errCode, msg, false) }

func (s *wsSession) onPing(payload []byte) { s.reply(protocol.PongFrame(payload), s.route.get()) }

// onClientClose answers the client's close frame with the same code.
func (s *wsSession) onClientClose(code ws.StatusCode) {
	if s.ended.Swap(true) {
		return
	}
	s.conn.CloseWith(protocol.CloseFrame(uint16(code), ""), false)
}

// onMessage handles one whole client message.
func (s *wsSession) onMessage(op ws.OpCode, msg []byte) {
	if op != ws.OpText {
		s.fail(protocol.CloseMalformed, "bad_request", "only text frames holding JSON are accepted", false)
		return
	}
	if !utf8.Valid(msg) {
		s.fail(protocol.CloseInvalidPayload, "bad_utf8", "text frame is not valid UTF-8", false)
		return
	}
	m, err := protocol.ParseClient(msg)
	if err != nil {
		s.fail(protocol.CloseMalformed, "bad_request", err.Error(), false)
		return
	}
	switch m.Type {
	case protocol.TypeRegister:
		s.followChecked(m.SDKKey, m.Since, m.Epoch, m.HasSince) // key policy first (keypolicy.go)
	case protocol.TypeUnregister:
		s.route.e.forgetPending(s.sub, m.SDKKey)
		s.sub.Unfollow(m.SDKKey)
	case protocol.TypePing:
		s.reply(pongMessage, s.route.get())
	case protocol.TypeAck:
		s.sub.Ack(m.SDKKey, m.Seq)
	}
}

var pongMessage = protocol.TextFrame(nil, protocol.AppendPong(nil))

// reply queues a control answer (pong, heartbeat ping) under the same bound
// as messages: a client that sends pings and never reads their answers is a
// slow consumer, not a way to grow the gateway's memory.
func (s *wsSession) reply(frame []byte, set *RouteSettings) {
	if !s.conn.Enqueue(frame, s.route.e.queueLimit(set)) && !s.ended.Load() {
		s.route.e.answersUnread(s)
	}
}

// follow registers key, answering errors with the contract's close codes.
func (s *wsSession) follow(key string, since uint64, epoch string, resume bool) {
	err := s.sub.Follow(key, since, epoch, resume)
	switch {
	case err == nil:
	case errors.Is(err, hub.ErrTooManyKeys):
		s.fail(protocol.CloseOverLimit, "too_many_keys", "this connection follows too many keys", false)
	case errors.Is(err, hub.ErrTooManyFollowers):
		s.route.e.keyFull(s) // 4429 (limits.go)
	case errors.Is(err, hub.ErrBadKey):
		s.fail(protocol.CloseMalformed, "bad_request", "invalid sdk_key", false)
	default:
		s.goAway()
	}
}

// OnTimer sends heartbeats and enforces the idle timeout, on the poller's
// one timing wheel.
func (s *wsSession) OnTimer(c *netpoll.Conn, now time.Time) time.Duration {
	set := s.route.get()
	idleAt := time.Unix(0, s.lastRead.Load()).Add(set.IdleTimeout)
	if !now.Before(idleAt) {
		s.fail(protocol.CloseIdleTimeout, "idle_timeout", "nothing received for longer than idle_timeout", false)
		return 0
	}
	pingAt := time.Unix(0, s.lastPing.Load()).Add(set.Heartbeat)
	if !now.Before(pingAt) {
		s.reply(protocol.PingFrame(), set)
		s.lastPing.Store(now.UnixNano())
		pingAt = now.Add(set.Heartbeat)
	}
	if pingAt.Before(idleAt) {
		return pingAt.Sub(now)
	}
	return idleAt.Sub(now)
}

func (s *wsSession) routeOf() *Route { return s.route }

// OnClose releases the session's keys.
func (s *wsSession) OnClose(c *netpoll.Conn) {
	s.sub.Close()
	s.route.e.conns.WebSocket.Add(-1)
	s.adm.release()
}
