package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushgateway/push_gateway/netpoll"
	"github.com/pushgateway/push_gateway/protocol"
	"github.com/pushgateway/push_gateway/protocol/socketio"
)

// Engine.IO v4's HTTP long-polling transport, socket.io-client's default
// first transport, and its upgrade to WebSocket.
//
// A polling session is a sioSession whose packets go to a bounded queue
// instead of a netpoll.Conn: a GET takes everything queued (or holds until
// something is), a POST carries the client's packets, handled by the very
// code that handles them over WebSocket (sioSession.onMessage). Between
// requests a session holds no goroutine; one sweeper goroutine, running
// while any polling session exists, sends every session's pings and expires
// the silent ones. On upgrade, the session adopts the probing WebSocket as
// its conn, moves its queue there in order, and leaves the polling table.

const (
	// sioMaxPollSessions bounds the polling sessions of the process: each
	// is created by one unauthenticated GET.
	sioMaxPollSessions = 50_000
	// sioRecordSeparator joins packets in a polling body.
	sioRecordSeparator = 0x1e
)

// sioSweepEvery is how often the sweeper runs the polling sessions' ticks:
// the heartbeat's precision while polling. (A variable for the tests.)
var sioSweepEvery = 100 * time.Millisecond

// Errors a polling request is answered with.
var (
	errSIOUnknownSID = errors.New("unknown sid: the Engine.IO session ended or never existed; open a new one")
	errSIOTwoPolls   = errors.New("a second GET while one is pending: the session is closed")
)

// sioPolls is every polling session of the process, by sid. Sids are random
// and unguessable; a session answers only its own engine's requests.
var sioPolls struct {
	sync.Mutex
	m        map[string]*sioSession
	sweeping bool // the sweeper goroutine runs
}

// sioLookup returns e's polling session sid, nil if there is none.
func sioLookup(e *Engine, sid string) *sioSession {
	sioPolls.Lock()
	defer sioPolls.Unlock()
	if s := sioPolls.m[sid]; s != nil && s.e == e {
		return s
	}
	return nil
}

// sioForget removes sid from the polling table.
func sioForget(sid string) {
	sioPolls.Lock()
	delete(sioPolls.m, sid)
	sioPolls.Unlock()
}

// sioSweep runs every polling session's tick until there are none left.
func sioSweep() {
	t := time.NewTicker(sioSweepEvery)
	defer t.Stop()
	var batch []*sioSession
	for now := range t.C {
		sioPolls.Lock()
		if len(sioPolls.m) == 0 {
			sioPolls.sweeping = false
			sioPolls.Unlock()
			return
		}
		batch = batch[:0]
		for _, s := range sioPolls.m {
			batch = append(batch, s)
		}
		sioPolls.Unlock()
		for _, s := range batch {
			switch {
			case !s.polling.Load():
			case s.e.closing.Load():
				s.goAway()
			default:
				s.tick(now)
			}
		}
		clear(batch)
	}
}

// sioPoll is a session's polling state.
type sioPoll struct {
	sid    string
	remote string

	// hmu serialises the handling of the client's packets (POSTs, then the
	// upgrade) and the release of the session's followers.
	hmu sync.Mutex

	mu       sync.Mutex
	queue    [][]byte      // WebSocket text frames for the next GET, in order
	wake     chan struct{} // capacity 1: something for a held GET
	getting  bool          // a GET is held
	probe    *netpoll.Conn // the WebSocket probing to take over
	probeAt  time.Time     // when probe was attached
	probing  bool          // the probe was answered: GETs no longer hold
	upgraded bool          // conn took over: the queue is no longer used
	closed   bool          // the session ended; the pending GET gets a close
}

// serveSIOPolling serves the polling transport: open (no sid), poll (GET),
// send (POST).
func (e *Engine) serveSIOPolling(w http.ResponseWriter, r *http.Request, route *Route, sid string) error {
	if sid == "" {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			return writeError(w, http.StatusMethodNotAllowed, "an Engine.IO session opens with a GET")
		}
		return e.openSIOPolling(w, r, route)
	}
	s := sioLookup(e, sid)
	if s == nil {
		return writeError(w, http.StatusBadRequest, errSIOUnknownSID.Error())
	}
	switch r.Method {
	case http.MethodGet:
		return s.pl.poll(s, w, r)
	case http.MethodPost:
		return s.pl.post(s, w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		return writeError(w, http.StatusMethodNotAllowed, "the polling transport answers GET and POST only")
	}
}

// openSIOPolling creates a polling session and answers its open packet.
func (e *Engine) openSIOPolling(w http.ResponseWriter, r *http.Request, route *Route) error {
	if e.closing.Load() {
		return writeError(w, http.StatusServiceUnavailable, "gateway shutting down")
	}
	set := route.get()
	sid := sioID()
	s := &sioSession{e: e, route: route, pl: &sioPoll{sid: sid, remote: r.RemoteAddr, wake: make(chan struct{}, 1)}}
	s.polling.Store(true)
	now := time.Now().UnixNano()
	s.lastRead.Store(now)
	s.lastPing.Store(now)
	sioPolls.Lock()
	if len(sioPolls.m) >= sioMaxPollSessions {
		sioPolls.Unlock()
		return writeError(w, http.StatusServiceUnavailable, "too many Engine.IO polling sessions: connect with transports: [\"websocket\"]")
	}
	if sioPolls.m == nil {
		sioPolls.m = map[string]*sioSession{}
	}
	s.adm = keepAdmission(r) // before the sweeper can see s; released by release (limits.go)
	sioPolls.m[sid] = s
	if !sioPolls.sweeping {
		sioPolls.sweeping = true
		go sioSweep()
	}
	sioPolls.Unlock()
	e.conns.SocketIO.Add(1)
	open := socketio.AppendOpen(make([]byte, 0, 128), sid, []string{"websocket"}, set.Heartbeat, sioTimeout(set), set.MaxMessageSize)
	writePolling(w, open)
	return nil
}

// writePolling answers a GET with body, the session's packets.
func writePolling(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// enqueue queues frame for the next GET, or on the WebSocket once the
// session upgraded (under mu, so nothing overtakes the queue moved there).
func (p *sioPoll) enqueue(s *sioSession, frame []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.upgraded:
		return s.conn.Enqueue(frame, s.e.queueLimit(s.route.get()))
	case p.closed:
		return true // the session's end was decided; its reason was given
	case len(p.queue) >= s.e.queueLimit(s.route.get()):
		return false
	}
	p.queue = append(p.queue, frame)
	p.wakeLocked()
	return true
}

// wakeLocked ends a held GET.
func (p *sioPoll) wakeLocked() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// close ends a polling session: a held GET is answered with the close
// packet, later requests with unknown sid, and the followers are released.
// A session that upgraded meanwhile closes its WebSocket with frame.
func (p *sioPoll) close(s *sioSession, frame []byte, dropQueued bool) {
	p.mu.Lock()
	if p.upgraded {
		p.mu.Unlock()
		s.conn.CloseWith(frame, dropQueued)
		return
	}
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if dropQueued {
		clear(p.queue)
		p.queue = nil
	}
	p.wakeLocked()
	probe := p.probe
	p.mu.Unlock()
	sioForget(p.sid)
	if probe != nil {
		probe.CloseWith(protocol.CloseFrame(protocol.CloseGoingAway, "session closed"), false)
	}
	// Not inline: close may run inside a hub callback, and releasing
	// unsubscribes from the hub.
	go func() {
		p.hmu.Lock()
		defer p.hmu.Unlock()
		s.release()
	}()
}

// poll answers a GET: every queued packet at once, else the first ones to
// come, else a noop once a heartbeat and a ping timeout passed.
func (p *sioPoll) poll(s *sioSession, w http.ResponseWriter, r *http.Request) error {
	s.lastRead.Store(time.Now().UnixNano())
	p.mu.Lock()
	switch {
	case p.getting:
		p.mu.Unlock()
		s.fail(protocol.CloseProtocolError, "two_polls", errSIOTwoPolls.Error(), false)
		return writeError(w, http.StatusBadRequest, errSIOTwoPolls.Error())
	case p.upgraded:
		p.mu.Unlock()
		return writeError(w, http.StatusBadRequest, "the session upgraded to websocket: it no longer polls")
	}
	p.getting = true
	var hold *time.Timer
	for len(p.queue) == 0 && !p.closed && !p.upgraded && !p.probing {
		p.mu.Unlock()
		if hold == nil {
			set := s.route.get()
			hold = time.NewTimer(set.Heartbeat + sioTimeout(set))
			defer hold.Stop()
		}
		select {
		case <-p.wake:
		case <-hold.C:
		case <-r.Context().Done():
			p.mu.Lock()
			p.getting = false
			p.mu.Unlock()
			return fmt.Errorf("poll ended by the client: %w", r.Context().Err())
		}
		p.mu.Lock()
	}
	var body []byte
	for i, f := range p.queue {
		if i > 0 {
			body = append(body, sioRecordSeparator)
		}
		body = append(body, framePayload(f)...)
	}
	clear(p.queue)
	p.queue = p.queue[:0]
	switch {
	case p.closed:
		if len(body) > 0 {
			body = append(body, sioRecordSeparator)
		}
		body = append(body, byte(socketio.EIOClose))
	case len(body) == 0: // woken by the probe, the upgrade or the hold
		body = append(body, byte(socketio.EIONoop))
	}
	p.getting = false
	p.mu.Unlock()
	writePolling(w, body)
	return nil
}

// post handles a POST's packets, each as if it came over WebSocket.
func (p *sioPoll) post(s *sioSession, w http.ResponseWriter, r *http.Request) error {
	s.lastRead.Store(time.Now().UnixNano())
	limit := s.route.get().MaxMessageSize
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
	}
	if int64(len(body)) > limit {
		s.fail(protocol.CloseTooLarge, "too_large", "payload larger than maxPayload", false)
		return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload larger than maxPayload (%d bytes)", limit))
	}
	p.hmu.Lock()
	if !s.polling.Load() {
		p.hmu.Unlock()
		return writeError(w, http.StatusBadRequest, "the session upgraded to websocket: it no longer posts")
	}
	for pkt := range bytes.SplitSeq(body, []byte{sioRecordSeparator}) {
		if s.ended.Load() {
			break
		}
		s.onMessage(ws.OpText, pkt)
	}
	p.hmu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
	return nil
}

// attachProbe puts an upgraded WebSocket on the poller as the session's
// probe: it takes the session over when the client sends `5`.
func (p *sioPoll) attachProbe(s *sioSession, nc net.Conn, buffered []byte) error {
	p.mu.Lock()
	busy := p.probe != nil || p.closed || p.upgraded
	p.mu.Unlock()
	if busy {
		_ = nc.Close()
		return errors.New("refused a second probe, or a probe of an ended session")
	}
	c, err := s.e.poller.Add(nc, s)
	if err != nil {
		_ = nc.Close()
		return fmt.Errorf("adding connection to the poller: %w", err)
	}
	p.mu.Lock()
	p.probe, p.probeAt = c, time.Now()
	p.mu.Unlock()
	c.SetTimer(sioTimeout(s.route.get())) // a probe that never upgrades is closed
	return s.e.startConn(c, buffered)
}

// probeTimer closes a probe that did not upgrade within pingTimeout (the
// timer also fires early when the route's settings change).
func (p *sioPoll) probeTimer(s *sioSession, c *netpoll.Conn, now time.Time) time.Duration {
	p.mu.Lock()
	at := p.probeAt
	if p.probe != c {
		at = time.Time{}
	}
	p.mu.Unlock()
	if left := at.Add(sioTimeout(s.route.get())).Sub(now); left > 0 {
		return left
	}
	c.CloseWith(protocol.CloseFrame(protocol.CloseIdleTimeout, "probe_timeout"), false)
	return 0
}

// onProbe answers `2probe` and ends the held GET, so the client can pause
// polling and send `5`.
func (p *sioPoll) onProbe(c *netpoll.Conn) {
	p.mu.Lock()
	p.probing = true
	p.wakeLocked()
	p.mu.Unlock()
	c.Enqueue(sioProbeFrame, 0)
}

// upgrade makes c the session's transport: the queue moves there first, in
// order; a held GET is answered with a noop.
func (p *sioPoll) upgrade(s *sioSession, c *netpoll.Conn) bool {
	p.hmu.Lock() // no POST is being handled: nss now belongs to OnRead
	defer p.hmu.Unlock()
	p.mu.Lock()
	if p.closed || p.probe != c {
		p.mu.Unlock()
		return false
	}
	sioForget(p.sid) // first: once a message arrives over c, the sid is gone
	s.conn = c
	p.upgraded = true
	for _, f := range p.queue {
		c.Enqueue(f, 0) // bounded when queued
	}
	p.queue = nil
	p.wakeLocked()
	now := time.Now().UnixNano()
	s.lastRead.Store(now)
	s.lastPing.Store(now)
	s.polling.Store(false)
	p.mu.Unlock()
	c.SetTimer(s.route.get().Heartbeat)
	return true
}

// detachProbe tells whether c was a probe that never took the session over
// (and forgets it); false when c is the session's transport.
func (p *sioPoll) detachProbe(s *sioSession, c *netpoll.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.upgraded && s.conn == c {
		return false
	}
	if p.probe == c {
		p.probe, p.probing = nil, false
		s.rd = wsReader{} // the next probe starts with no half message
	}
	return true
}

// Frames of the probe exchange.
var (
	sioProbeFrame = protocol.TextFrame(nil, []byte("3probe"))
	sioPingProbe  = []byte("2probe")
	sioUpgrade    = []byte{byte(socketio.EIOUpgrade)}
)

// sioProbe is the frameSink of a WebSocket probing to take over a polling
// session: it answers the probe, and after `5` hands everything to the
// session. A probe's failure closes the probe only: the session polls on.
type sioProbe struct {
	s *sioSession
	c *netpoll.Conn
}

func (p *sioProbe) isEnded() bool { return p.s.ended.Load() || p.c.Closing() }

func (p *sioProbe) violation(code uint16, reason, msg string) {
	if !p.s.polling.Load() {
		p.s.violation(code, reason, msg)
		return
	}
	p.c.CloseWith(protocol.CloseFrame(code, reason), false)
}

func (p *sioProbe) onPing(payload []byte) {
	if !p.s.polling.Load() {
		p.s.onPing(payload)
		return
	}
	p.c.Enqueue(protocol.PongFrame(payload), 0)
}

func (p *sioProbe) onClientClose(code ws.StatusCode) {
	if !p.s.polling.Load() {
		p.s.onClientClose(code)
		return
	}
	p.c.CloseWith(protocol.CloseFrame(uint16(code), ""), false)
}

func (p *sioProbe) onMessage(op ws.OpCode, msg []byte) {
	switch {
	case !p.s.polling.Load():
		p.s.onMessage(op, msg)
	case op == ws.OpText && bytes.Equal(msg, sioPingProbe):
		p.s.pl.onProbe(p.c)
	case op == ws.OpText && bytes.Equal(msg, sioUpgrade):
		if !p.s.pl.upgrade(p.s, p.c) {
			p.c.CloseWith(protocol.CloseFrame(protocol.CloseGoingAway, "session closed"), false)
		}
	default:
		p.c.CloseWith(protocol.CloseFrame(protocol.CloseMalformed, "bad_packet"), false)
	}
}

// framePayload is the payload of a server (unmasked) frame built by
// protocol.TextFrame: polling sends packets bare.
func framePayload(f []byte) []byte {
	switch f[1] & 0x7f {
	case 126:
		return f[4:]
	case 127:
		return f[10:]
	default:
		return f[2:]
	}
}
