package main

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

var pong = []byte(`{"type":"pong"}`)

// client is one WebSocket connection: a reader goroutine (readLoop) and a writer
// goroutine (writeLoop), joined by a bounded channel.
type client struct {
	ws   *websocket.Conn
	send chan []byte   // queued frames; full means a slow consumer
	done chan struct{} // closed once, by stop

	stopOnce sync.Once
	keys     map[string]struct{} // owned by the reader goroutine
}

// enqueue queues b without blocking; a full queue stops the client (the
// contract's slow consumer rule) and answers false.
func (c *client) enqueue(b []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.send <- b:
		return true
	default:
		c.stop()
		return false
	}
}

// stop ends both goroutines; closing the socket unblocks the reader.
func (c *client) stop() {
	c.stopOnce.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

// server is the client endpoint.
type server struct {
	hub        *hub
	upgrader   websocket.Upgrader
	queue      int
	pingPeriod time.Duration // 0: no pings
	conns      *counter
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	keys := r.URL.Query()["sdk_key"]
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &client{
		ws:   ws,
		send: make(chan []byte, s.queue),
		done: make(chan struct{}),
		keys: map[string]struct{}{},
	}
	s.conns.add(1)
	for _, k := range keys {
		if k != "" {
			c.keys[k] = struct{}{}
			s.hub.follow(c, k)
		}
	}
	// As in gorilla's chat example, both pumps run on their own goroutines
	// and the handler returns, so the request and the server's buffers for
	// it can be collected.
	go c.writeLoop(s.pingPeriod)
	go func() {
		c.readLoop(s.hub)
		for k := range c.keys {
			s.hub.unfollow(c, k)
		}
		c.stop()
		s.conns.add(-1)
	}()
}

// clientMsg is what a client may send.
type clientMsg struct {
	Type   string `json:"type"`
	SDKKey string `json:"sdk_key"`
}

// readLoop serves client messages until the connection fails.
func (c *client) readLoop(h *hub) {
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var m clientMsg
		if json.Unmarshal(b, &m) != nil {
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(4400, "malformed message"), time.Now().Add(time.Second))
			return
		}
		switch m.Type {
		case "register":
			if _, ok := c.keys[m.SDKKey]; !ok && m.SDKKey != "" {
				c.keys[m.SDKKey] = struct{}{}
				h.follow(c, m.SDKKey)
			}
		case "unregister":
			delete(c.keys, m.SDKKey)
			h.unfollow(c, m.SDKKey)
		case "ping":
			c.enqueue(pong)
		}
	}
}

// writeLoop writes queued frames, one WriteMessage each, and pings when asked.
func (c *client) writeLoop(pingPeriod time.Duration) {
	var tick <-chan time.Time
	if pingPeriod > 0 {
		t := time.NewTicker(pingPeriod)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.done:
			return
		case b := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.stop()
				return
			}
		case <-tick:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)); err != nil {
				c.stop()
				return
			}
		}
	}
}
