package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/netpoll"
	"github.com/pushgateway/push_gateway/protocol"
	"github.com/pushgateway/push_gateway/protocol/socketio"
)

// Engine.IO v4 / Socket.IO v5 over the WebSocket transport, on the same
// poller and hub as native WebSockets (no goroutine per connection). A
// connection may join several namespaces; each joined namespace is one hub
// follower with its own Subscription, so a delivery knows its namespace
// without a lookup and counts in local_receivers like any other follower.
// The HTTP long-polling transport, and its upgrade to WebSocket, is in
// socketio_polling.go: a polling session is the same sioSession, writing to
// a queue drained by GETs instead of a netpoll.Conn.

const (
	// sioPingTimeout is Engine.IO's pingTimeout (socket.io's default), cut
	// to the route's idle_timeout when that is shorter.
	sioPingTimeout = 20 * time.Second
	// sioMaxNamespaces bounds the namespaces one connection joins: each
	// costs a follower, and FeatureProbe's SDKs join one.
	sioMaxNamespaces = 8
	// sioCachedNamespaces bounds the namespaces given a shared per-message
	// encoding cache (sioNSCache); others encode per delivery. Deployments
	// use one or two (`/realtime`, `<prefix>/realtime`); the bound keeps
	// client-chosen names from pinning many messages in memory.
	sioCachedNamespaces = 64
	// sioCloseUnsupported (RFC 6455: unsupported data) refuses binary
	// messages and packets.
	sioCloseUnsupported uint16 = 1003
	// sioRealtime is the namespace FeatureProbe's SDKs join by default.
	sioRealtime = "/realtime"
)

// Encodings shared by every follower: a published message becomes one
// WebSocket text frame per namespace, `42<ns,>["<event>",<data>]`, built
// once per message (I3). The root and FeatureProbe's namespace have hub
// formats; any other namespace goes through sioNSCache.
var (
	sioRootFormat = hub.NewFormat("socketio", func(m *hub.Message) []byte {
		return sioEventFrame(m, "/")
	})
	sioRealtimeFormat = hub.NewFormat("socketio"+sioRealtime, func(m *hub.Message) []byte {
		return sioEventFrame(m, sioRealtime)
	})
)

// sioEventFrame is the text frame emitting m in namespace ns.
func sioEventFrame(m *hub.Message, ns string) []byte {
	data := m.Data
	if len(data) == 0 {
		data = []byte("null")
	}
	return sioEmitFrame(ns, m.Event, data)
}

// sioEmitFrame builds the frame of an EVENT with one raw JSON argument.
func sioEmitFrame(ns, event string, arg []byte) []byte {
	payload := make([]byte, 0, 16+len(ns)+len(event)+len(arg))
	payload = socketio.AppendEventPrefix(payload, ns)
	payload = append(payload, '[')
	payload = protocol.AppendString(payload, event)
	payload = append(payload, ',')
	payload = append(payload, arg...)
	payload = append(payload, ']')
	return protocol.TextFrame(make([]byte, 0, len(payload)+10), payload)
}

// sioNSCache holds the last message encoded for one namespace. A publish
// reaches a key's followers one after another, so every follower in the
// namespace after the first finds the frame here. Concurrent publishes may
// displace each other's entry: that costs an encoding, never a wrong frame.
// A cache lives while followers in its namespace do.
type sioNSCache struct {
	last atomic.Pointer[sioNSFrame]
	refs int // namespaces of live sessions using it, guarded by sioCaches
}

type sioNSFrame struct {
	m     *hub.Message
	frame []byte
}

var sioCaches struct {
	sync.Mutex
	m map[string]*sioNSCache
}

// sioCacheFor returns ns's shared cache, or nil once sioCachedNamespaces
// namespaces have one: namespaces are client-chosen, the map must not grow
// without bound. A non-nil cache is given back with sioCacheRelease.
func sioCacheFor(ns string) *sioNSCache {
	sioCaches.Lock()
	defer sioCaches.Unlock()
	if c := sioCaches.m[ns]; c != nil {
		c.refs++
		return c
	}
	if sioCaches.m == nil {
		sioCaches.m = map[string]*sioNSCache{}
	}
	if len(sioCaches.m) >= sioCachedNamespaces {
		return nil
	}
	c := &sioNSCache{refs: 1}
	sioCaches.m[ns] = c
	return c
}

// sioCacheRelease gives back a cache from sioCacheFor; the last user drops
// it, and the message it holds.
func sioCacheRelease(ns string, c *sioNSCache) {
	if c == nil {
		return
	}
	sioCaches.Lock()
	defer sioCaches.Unlock()
	if c.refs--; c.refs == 0 {
		delete(sioCaches.m, ns)
	}
}

// sioPathMatches tells whether path is one of paths, with or without its
// trailing slash.
func sioPathMatches(paths []string, path string) bool {
	path = strings.TrimSuffix(path, "/")
	for _, p := range paths {
		if strings.TrimSuffix(p, "/") == path {
			return true
		}
	}
	return false
}

// serveEngineIO answers a request carrying ?EIO=: an Engine.IO handshake.
func (e *Engine) serveEngineIO(w http.ResponseWriter, r *http.Request, route *Route) error {
	set := route.get()
	q := r.URL.Query()
	switch {
	case !set.enabled(TransportSocketIO):
		return writeError(w, http.StatusBadRequest, "the socketio transport is not enabled on this route")
	case !sioPathMatches(set.SocketIOPaths, r.URL.Path):
		return writeError(w, http.StatusBadRequest, fmt.Sprintf(
			"no Engine.IO endpoint at %s: socketio_path is %s", r.URL.Path, strings.Join(set.SocketIOPaths, " ")))
	case q.Get("EIO") != "4":
		return writeError(w, http.StatusBadRequest, fmt.Sprintf(
			"unsupported Engine.IO protocol EIO=%s: this gateway speaks EIO=4 (socket.io v3 and v4 clients)", q.Get("EIO")))
	case q.Get("transport") == "polling":
		return e.serveSIOPolling(w, r, route, q.Get("sid"))
	case q.Get("transport") != "websocket":
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown Engine.IO transport %q", q.Get("transport")))
	case !isWebSocket(r):
		return writeError(w, http.StatusBadRequest, "transport=websocket needs a WebSocket upgrade request")
	case r.ProtoMajor != 1:
		return writeError(w, http.StatusUpgradeRequired,
			"WebSocket needs HTTP/1.1: this request came over "+r.Proto+"; connect with http/1.1 (ALPN)")
	case r.Method != http.MethodGet:
		return writeError(w, http.StatusMethodNotAllowed, "a WebSocket upgrade must be a GET")
	case e.closing.Load():
		return writeError(w, http.StatusServiceUnavailable, "gateway shutting down")
	}
	var up *sioSession // the polling session this WebSocket upgrades
	if q.Has("sid") {
		if up = sioLookup(e, q.Get("sid")); up == nil {
			return writeError(w, http.StatusBadRequest, "unknown sid: there is no polling session to upgrade")
		}
	}
	nc, buffered, err := upgrade(w, r)
	if err != nil {
		return err
	}
	if up != nil {
		return up.pl.attachProbe(up, nc, buffered)
	}
	s := &sioSession{e: e, route: route}
	c, err := e.poller.Add(nc, s)
	if err != nil {
		_ = nc.Close()
		return fmt.Errorf("adding connection to the poller: %w", err)
	}
	now := time.Now().UnixNano()
	s.conn = c
	s.lastRead.Store(now)
	s.lastPing.Store(now)
	e.conns.SocketIO.Add(1)
	s.adm = keepAdmission(r) // released by release (limits.go)
	// The open packet is the first message: WebSocket-only clients (the
	// FeatureProbe SDKs) wait for it before anything else.
	open := socketio.AppendOpen(make([]byte, 0, 128), sioID(), nil, set.Heartbeat, sioTimeout(set), set.MaxMessageSize)
	c.Enqueue(protocol.TextFrame(nil, open), 0)
	c.SetTimer(set.Heartbeat)
	return e.startConn(c, buffered)
}

// sioTimeout is the pingTimeout announced and enforced on a route.
func sioTimeout(set *RouteSettings) time.Duration { return min(sioPingTimeout, set.IdleTimeout) }

// sioID returns a random Engine.IO or Socket.IO session id (20 URL-safe
// characters, like socket.io's).
func sioID() string {
	var b [15]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sioSession is one Engine.IO connection over WebSocket: a netpoll.Handler.
// Its namespaces are the hub followers.
type sioSession struct {
	e     *Engine
	route *Route
	conn  *netpoll.Conn

	lastRead atomic.Int64 // unix nanos of the last byte received
	lastPing atomic.Int64 // unix nanos of the last Engine.IO ping sent
	ended    atomic.Bool  // a close was decided; later ones are ignored

	// pl is the session's polling state, set at creation for sessions opened
	// by the polling transport and nil for those opened over WebSocket;
	// polling is true until the session upgrades to WebSocket, and conn is
	// set (under pl.mu) just before polling becomes false.
	pl      *sioPoll
	polling atomic.Bool

	rd wsReader // touched only by OnRead
	// nss are the joined namespaces; touched by OnRead, then OnClose (or,
	// while polling, under pl.hmu).
	nss []*sioNamespace

	adm *admission // the session's share of the limits; release gives it back
}

// sioNamespace is one namespace a connection joined (or sent events to
// before its CONNECT was answered): a hub.Follower. Its fields are set
// before it follows any key and never change after.
type sioNamespace struct {
	s      *sioSession
	name   string
	format *hub.Format // non-nil: messages come encoded by the hub
	cache  *sioNSCache // else, when non-nil: shared per-namespace cache
	sub    *hub.Subscription
}

// end stops the namespace's follower.
func (n *sioNamespace) end() {
	n.sub.Close()
	sioCacheRelease(n.name, n.cache)
}

var (
	_ hub.Follower    = (*sioNamespace)(nil)
	_ netpoll.Handler = (*sioSession)(nil)
	_ frameSink       = (*sioSession)(nil)
)

// Deliver queues a published message as an event of the namespace.
func (n *sioNamespace) Deliver(m *hub.Message) bool {
	return n.s.enqueueAt(n.frame(m), m.LiveStamp())
}

// enqueue queues one Engine.IO packet as a WebSocket text frame, on the
// connection or, while polling, in the queue the next GET takes; false when
// the queue is full.
func (s *sioSession) enqueue(frame []byte) bool { return s.enqueueAt(frame, 0) }

// enqueueAt is enqueue for a published message's packet, stamped with its
// publish time (hub.Message.LiveStamp) for the latency histogram.
func (s *sioSession) enqueueAt(frame []byte, stamp int64) bool {
	if s.polling.Load() {
		return s.pl.enqueue(s, frame)
	}
	return s.conn.EnqueueStamped(frame, s.e.queueLimit(s.route.get()), stamp)
}

// closeWith ends the session's transport with frame (a close frame) last.
func (s *sioSession) closeWith(frame []byte, dropQueued bool) {
	if s.polling.Load() {
		s.pl.close(s, frame, dropQueued)
		return
	}
	s.conn.CloseWith(frame, dropQueued)
}

// remoteAddr is the client's address, for the log.
func (s *sioSession) remoteAddr() string {
	if s.polling.Load() {
		return s.pl.remote
	}
	return s.conn.RemoteAddr().String()
}

// frame returns m's frame in n's namespace, encoded once per message where
// it can.
func (n *sioNamespace) frame(m *hub.Message) []byte {
	switch {
	case n.format != nil:
		return m.Encoded(n.format)
	case n.cache != nil:
		if f := n.cache.last.Load(); f != nil && f.m == m {
			return f.frame
		}
		f := &sioNSFrame{m: m, frame: sioEventFrame(m, n.name)}
		n.cache.last.Store(f)
		return f.frame
	default:
		return sioEventFrame(m, n.name)
	}
}

// The update event answering register: `update ""`, built once for the
// namespaces with a hub format.
var (
	sioEmptyUpdate    = []byte(`""`)
	sioRootUpdate     = sioEmitFrame("/", hub.DefaultEvent, sioEmptyUpdate)
	sioRealtimeUpdate = sioEmitFrame(sioRealtime, hub.DefaultEvent, sioEmptyUpdate)
)

// Notify answers register (and a resync) with `update ""`, as FeatureProbe's
// own server does: the SDK refetches its toggles at once.
func (n *sioNamespace) Notify(hub.Notice) bool {
	var frame []byte
	switch n.format {
	case sioRootFormat:
		frame = sioRootUpdate
	case sioRealtimeFormat:
		frame = sioRealtimeUpdate
	default:
		frame = sioEmitFrame(n.name, hub.DefaultEvent, sioEmptyUpdate)
	}
	return n.s.enqueue(frame)
}

// Close is the hub telling a namespace's follower to end: the connection
// ends with it.
func (n *sioNamespace) Close(r hub.Reason) { endFor(n.s, r) }

// goAway closes with 1001: the gateway is shutting down. socket.io clients
// take a transport close for a reason to reconnect.
func (s *sioSession) goAway() {
	if s.ended.Swap(true) {
		return
	}
	s.closeWith(protocol.CloseFrame(protocol.CloseGoingAway, "gateway shutting down"), false)
}

// fail closes the connection with code. Engine.IO has no error message of
// its own: the reason goes in the close frame and the debug log.
func (s *sioSession) fail(code uint16, reason, msg string, dropQueued bool) {
	if s.ended.Swap(true) {
		return
	}
	s.closeWith(protocol.CloseFrame(code, reason), dropQueued)
	if ce := s.e.logger.Check(zap.DebugLevel, "closing socket.io connection"); ce != nil {
		ce.Write(zap.Uint16("code", code), zap.String("reason", reason), zap.String("detail", msg),
			zap.String("remote", s.remoteAddr()))
	}
}

// send queues a control answer under the same bound as messages: a client
// that never reads its answers is a slow consumer.
func (s *sioSession) send(frame []byte) {
	if !s.enqueue(frame) && !s.ended.Load() {
		s.e.answersUnread(s)
	}
}

// sendPacket queues a Socket.IO packet in an Engine.IO message.
func (s *sioSession) sendPacket(p socketio.Packet) {
	payload := socketio.Append(append(make([]byte, 0, 32+len(p.Namespace)+len(p.Data)), '4'), p)
	s.send(protocol.TextFrame(nil, payload))
}

// OnRead decodes every whole frame in data and keeps the rest for later.
func (s *sioSession) OnRead(c *netpoll.Conn, data []byte) int {
	s.lastRead.Store(time.Now().UnixNano())
	if s.polling.Load() { // c is a WebSocket probing to take the session over
		return s.rd.read(data, s.route.get().MaxMessageSize, &sioProbe{s: s, c: c})
	}
	return s.rd.read(data, s.route.get().MaxMessageSize, s)
}

func (s *sioSession) isEnded() bool { return s.ended.Load() }

func (s *sioSession) violation(code uint16, reason, msg string) { s.fail(code, reason, msg, false) }

func (s *sioSession) onPing(payload []byte) { s.send(protocol.PongFrame(payload)) }

func (s *sioSession) onClientClose(code ws.StatusCode) {
	if s.ended.Swap(true) {
		return
	}
	s.closeWith(protocol.CloseFrame(uint16(code), ""), false)
}

// Engine.IO packets answered with constant frames.
var sioPongFrame = protocol.TextFrame(nil, []byte{byte(socketio.EIOPong)})

// onMessage handles one Engine.IO packet.
func (s *sioSession) onMessage(op ws.OpCode, msg []byte) {
	if op != ws.OpText {
		s.fail(sioCloseUnsupported, "binary_refused", "binary messages are not supported", false)
		return
	}
	if !utf8.Valid(msg) {
		s.fail(protocol.CloseInvalidPayload, "bad_utf8", "text frame is not valid UTF-8", false)
		return
	}
	p, err := socketio.ParseEIO(msg)
	if err != nil {
		s.fail(protocol.CloseMalformed, "bad_packet", "Engine.IO packet: "+err.Error(), false)
		return
	}
	switch p.Type {
	case socketio.EIOMessage:
		s.onSocketIO(p.Data)
	case socketio.EIOPing: // v4 clients do not ping, but a probe is answered
		if len(p.Data) == 0 {
			s.send(sioPongFrame)
		} else {
			s.send(protocol.TextFrame(nil, socketio.AppendEIO(nil, socketio.EIOPacket{Type: socketio.EIOPong, Data: p.Data})))
		}
	case socketio.EIOPong, socketio.EIONoop, socketio.EIOUpgrade:
		// lastRead, set by OnRead, is the liveness OnTimer checks.
	case socketio.EIOClose:
		s.onClientClose(ws.StatusNormalClosure)
	default: // open: only the server sends it
		s.fail(protocol.CloseMalformed, "bad_packet", "unexpected Engine.IO packet type "+string(rune(p.Type)), false)
	}
}

// onSocketIO handles one Socket.IO packet.
func (s *sioSession) onSocketIO(b []byte) {
	p, err := socketio.Parse(b)
	if err != nil {
		s.fail(protocol.CloseMalformed, "bad_packet", "Socket.IO packet: "+err.Error(), false)
		return
	}
	switch p.Type {
	case socketio.Connect:
		n := s.join(p.Namespace)
		if n == nil {
			s.sendPacket(socketio.Packet{Type: socketio.ConnectError, Namespace: p.Namespace,
				Data: []byte(`{"message":"too many namespaces on one connection"}`)})
			return
		}
		s.sendPacket(socketio.Packet{Type: socketio.Connect, Namespace: p.Namespace,
			Data: fmt.Appendf(nil, `{"sid":"%s"}`, sioID())})
	case socketio.Disconnect:
		s.leave(p.Namespace)
	case socketio.Event:
		s.onEvent(p)
	case socketio.Ack:
		// The gateway asks for no acks; a client's is ignored.
	case socketio.BinaryEvent, socketio.BinaryAck:
		s.fail(sioCloseUnsupported, "binary_refused", "binary Socket.IO packets are not supported", false)
	default: // CONNECT_ERROR: only the server sends it
		s.fail(protocol.CloseMalformed, "bad_packet", "unexpected Socket.IO packet type", false)
	}
}

// sioRegister is register's argument: client SDKs send sdk_key, server SDKs
// key.
type sioRegister struct {
	SDKKey string `json:"sdk_key"`
	Key    string `json:"key"`
}

// onEvent handles an EVENT. One for a namespace not connected yet joins it
// (FeatureProbe's Go SDK emits register before its CONNECT is answered).
func (s *sioSession) onEvent(p socketio.Packet) {
	name, args, err := socketio.EventArgs(p.Data)
	if err != nil {
		s.fail(protocol.CloseMalformed, "bad_packet", "Socket.IO event: "+err.Error(), false)
		return
	}
	var key string
	if name == "register" || name == "unregister" {
		var reg sioRegister
		if len(args) == 0 || json.Unmarshal(args[0], &reg) != nil {
			s.fail(protocol.CloseMalformed, "bad_request", name+` needs an object argument {"sdk_key":K} or {"key":K}`, false)
			return
		}
		if key = reg.SDKKey; key == "" {
			key = reg.Key
		}
	}
	n := s.join(p.Namespace)
	if n == nil {
		s.fail(protocol.CloseOverLimit, "too_many_namespaces", "too many namespaces on one connection", false)
		return
	}
	if p.HasID { // acknowledged before the update that register triggers
		s.sendPacket(socketio.Packet{Type: socketio.Ack, Namespace: p.Namespace, HasID: true, ID: p.ID, Data: []byte("[]")})
	}
	switch name {
	case "register":
		s.followChecked(n, key) // key policy first (keypolicy.go)
	case "unregister":
		s.e.forgetPending(n.sub, key)
		n.sub.Unfollow(key)
	}
}

// follow makes n follow key, answering errors with the contract's close
// codes.
func (s *sioSession) follow(n *sioNamespace, key string) {
	err := n.sub.Follow(key, 0, "", false)
	switch {
	case err == nil:
	case errors.Is(err, hub.ErrTooManyKeys):
		s.fail(protocol.CloseOverLimit, "too_many_keys", "this connection follows too many keys", false)
	case errors.Is(err, hub.ErrTooManyFollowers):
		s.e.keyFull(s) // 4429 (limits.go)
	case errors.Is(err, hub.ErrBadKey):
		s.fail(protocol.CloseMalformed, "bad_request", "invalid sdk_key", false)
	default:
		s.goAway()
	}
}

// join returns the session's namespace called name, joining it first if
// need be; nil when the connection has joined too many.
func (s *sioSession) join(name string) *sioNamespace {
	for _, n := range s.nss {
		if n.name == name {
			return n
		}
	}
	if len(s.nss) >= sioMaxNamespaces {
		return nil
	}
	n := &sioNamespace{s: s, name: name}
	switch name {
	case "/":
		n.format = sioRootFormat
	case sioRealtime:
		n.format = sioRealtimeFormat
	default:
		n.cache = sioCacheFor(name)
	}
	n.sub = s.e.hub.Subscribe(n)
	if set := s.route.get(); set.MaxKeysPerConn > 0 {
		n.sub.SetMaxKeys(set.MaxKeysPerConn)
	}
	s.nss = append(s.nss, n)
	return n
}

// leave ends the namespace called name, if joined.
func (s *sioSession) leave(name string) {
	for i, n := range s.nss {
		if n.name == name {
			n.end()
			s.nss = append(s.nss[:i], s.nss[i+1:]...)
			return
		}
	}
}

// OnTimer sends Engine.IO pings every heartbeat and closes a connection
// that has not answered one within pingTimeout, on the poller's one wheel.
func (s *sioSession) OnTimer(c *netpoll.Conn, now time.Time) time.Duration {
	if s.polling.Load() { // c is a probe: closed if it did not upgrade in time
		return s.pl.probeTimer(s, c, now)
	}
	return s.tick(now)
}

// tick is the heartbeat of either transport: OnTimer runs it over
// WebSocket, the polling sweeper while polling. It returns when it wants to
// run next.
func (s *sioSession) tick(now time.Time) time.Duration {
	set := s.route.get()
	timeout := sioTimeout(set)
	lastPing := time.Unix(0, s.lastPing.Load())
	// Waiting: a ping was sent and nothing came in since. (Any packet counts
	// as the answer, not only a pong: the client is alive.)
	waiting := s.lastRead.Load() < lastPing.UnixNano()
	if waiting && !now.Before(lastPing.Add(timeout)) {
		s.fail(protocol.CloseIdleTimeout, "ping_timeout", "no pong within pingTimeout", false)
		return 0
	}
	if waiting { // one ping at a time: the next follows its pong, as in engine.io
		return lastPing.Add(timeout).Sub(now)
	}
	pingAt := lastPing.Add(set.Heartbeat)
	if !now.Before(pingAt) {
		s.send(protocol.TextFrame(nil, []byte{byte(socketio.EIOPing)}))
		s.lastPing.Store(now.UnixNano())
		return timeout
	}
	return pingAt.Sub(now)
}

func (s *sioSession) routeOf() *Route { return s.route }

// OnClose releases the session's followers.
func (s *sioSession) OnClose(c *netpoll.Conn) {
	if s.pl != nil && s.pl.detachProbe(s, c) {
		return // a probe that never took over: the session goes on polling
	}
	s.release()
}

// release ends the session's followers, once its transport has ended.
func (s *sioSession) release() {
	for _, n := range s.nss {
		n.end()
	}
	s.nss = nil
	s.e.conns.SocketIO.Add(-1)
	s.adm.release()
}
