package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushgateway/push_gateway/hub"
)

// upgradeTimeout bounds the handshake write after the hijack.
const upgradeTimeout = 10 * time.Second

// upgrade answers the WebSocket handshake on the hijacked connection and
// returns it with the bytes the HTTP server had already read past the
// request (a client may send its first frames right behind it): they belong
// to the connection and are handed to netpoll first.
func upgrade(w http.ResponseWriter, r *http.Request) (net.Conn, []byte, error) {
	u := ws.HTTPUpgrader{Timeout: upgradeTimeout}
	nc, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		// gobwas has answered the client on the hijacked connection.
		if nc != nil {
			_ = nc.Close()
		}
		return nil, nil, fmt.Errorf("upgrading to websocket: %w", err)
	}
	var buffered []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		b, _ := rw.Reader.Peek(rw.Reader.Buffered())
		buffered = append([]byte(nil), b...)
	}
	return nc, buffered, nil
}

// urlFollow is a key given on the URL, answered like a register message.
type urlFollow struct {
	key    string
	since  uint64
	epoch  string
	resume bool
}

// parseURLKeys reads ?sdk_key=K&since=N&epoch=E; since and epoch apply only
// when a single key is given.
func parseURLKeys(r *http.Request) ([]urlFollow, error) {
	q := r.URL.Query()
	keys := q["sdk_key"]
	for _, k := range keys {
		if err := hub.ValidKey(k); err != nil {
			return nil, fmt.Errorf("invalid sdk_key %q", k)
		}
	}
	_, hasSince := q["since"]
	_, hasEpoch := q["epoch"]
	if (hasSince || hasEpoch) && len(keys) != 1 {
		return nil, errors.New("since and epoch need exactly one sdk_key on the URL")
	}
	out := make([]urlFollow, len(keys))
	for i, k := range keys {
		out[i].key = k
	}
	if hasSince {
		n, err := strconv.ParseUint(q.Get("since"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("since must be a non-negative integer, got %q", q.Get("since"))
		}
		out[0].since, out[0].resume = n, true
		out[0].epoch = q.Get("epoch")
	}
	return out, nil
}

// isWebSocket tells whether r asks for a WebSocket, over any HTTP version.
// HTTP/2 clients drop the hop-by-hop Upgrade header, so there the
// Sec-WebSocket-* headers (or an extended CONNECT, RFC 8441) tell.
func isWebSocket(r *http.Request) bool {
	if headerHasToken(r.Header, "Upgrade", "websocket") {
		return true
	}
	if r.ProtoMajor < 2 {
		return false
	}
	return r.Method == http.MethodConnect ||
		r.Header.Get("Sec-WebSocket-Key") != "" || r.Header.Get("Sec-WebSocket-Version") != ""
}

func (e *Engine) serveWebSocket(w http.ResponseWriter, r *http.Request, route *Route) error {
	if r.ProtoMajor != 1 {
		// An HTTP/2 or HTTP/3 stream cannot be hijacked.
		return writeError(w, http.StatusUpgradeRequired,
			"WebSocket needs HTTP/1.1: this request came over "+r.Proto+"; connect with http/1.1 (ALPN) or use SSE or long polling")
	}
	if r.Method != http.MethodGet {
		return writeError(w, http.StatusMethodNotAllowed, "a WebSocket upgrade must be a GET")
	}
	follows, err := parseURLKeys(r)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	if e.closing.Load() {
		return writeError(w, http.StatusServiceUnavailable, "gateway shutting down")
	}
	nc, buffered, err := upgrade(w, r)
	if err != nil {
		return err
	}

	s := &wsSession{route: route}
	c, err := e.poller.Add(nc, s)
	if err != nil {
		_ = nc.Close()
		return fmt.Errorf("adding connection to the poller: %w", err)
	}
	now := time.Now().UnixNano()
	s.conn = c
	s.lastRead.Store(now)
	s.lastPing.Store(now)
	s.sub = e.hub.Subscribe(s)
	set := route.get()
	if set.MaxKeysPerConn > 0 {
		s.sub.SetMaxKeys(set.MaxKeysPerConn)
	}
	e.conns.WebSocket.Add(1)
	s.adm = keepAdmission(r) // released by OnClose (limits.go)
	for _, f := range follows {
		s.followChecked(f.key, f.since, f.epoch, f.resume) // key policy first (keypolicy.go)
	}
	c.SetTimer(min(set.Heartbeat, set.IdleTimeout))
	return e.startConn(c, buffered)
}
