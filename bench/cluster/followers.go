package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/clientfleet"
	"github.com/pushgateway/push_gateway/bench/internal/wsframe"
)

// Errors of the followers.
var (
	// ErrRefused is returned when the gateway does not accept a client.
	ErrRefused = errors.New("gateway refused the client")
	// ErrBadMessage is returned for a message without the fields the
	// followers read.
	ErrBadMessage = errors.New("bad message")
)

// followers is n native WebSocket clients of one key. Each is a goroutine
// that reads its connection and counts, per publish index, the clients it
// reached; receipts of indexes from measureFrom on are timed.
type followers struct {
	clientfleet.Base

	key, addr   string
	n           int
	measureFrom int            // indexes from here on are timed; set before opening
	got         []atomic.Int64 // per publish index: clients that received it
	measured    atomic.Int64   // timed receipts
	registered  atomic.Int64
	clients     []*follower
}

// follower is one client's delays, under its own lock: the clients never
// contend with each other, and the run reads them once at the end.
type follower struct {
	mu     sync.Mutex
	delays []int64 // ns, guarded by mu
}

func newFollowers(key, addr string, n, measureFrom, maxIndex int) *followers {
	f := &followers{key: key, addr: addr, n: n, measureFrom: measureFrom, got: make([]atomic.Int64, maxIndex+1)}
	f.clients = make([]*follower, n)
	for i := range f.clients {
		f.clients[i] = &follower{delays: make([]int64, 0, max(0, maxIndex-measureFrom+1))}
	}
	return f
}

// open starts the clients, at most clientfleet.DialConcurrency handshakes
// at a time, and returns once every handshake is done.
func (f *followers) open() {
	sem := make(chan struct{}, clientfleet.DialConcurrency)
	var dials sync.WaitGroup
	for i := range f.n {
		sem <- struct{}{}
		dials.Add(1)
		f.Go(func() {
			br, err := f.connect(i)
			dials.Done()
			<-sem
			if err != nil {
				f.Fail(err)
				return
			}
			if err := f.read(br, f.clients[i]); err != nil {
				f.Fail(err)
			}
		})
	}
	dials.Wait()
}

// connect dials and upgrades client i.
func (f *followers) connect(i int) (*bufio.Reader, error) {
	conn, err := f.Dial(f.addr, i)
	if err != nil {
		return nil, err
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	req := "GET " + route + "?" + url.Values{"sdk_key": {f.key}}.Encode() + " HTTP/1.1\r\nHost: " + f.addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(nonce[:]) + "\r\n\r\n"
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, fmt.Errorf("writing the upgrade: %w", err)
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, fmt.Errorf("reading the upgrade's answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return nil, fmt.Errorf("%w: %s %q", ErrRefused, resp.Status, body)
	}
	return br, nil
}

// read reads server frames until the connection ends, recording each
// message's index and delay.
func (f *followers) read(br *bufio.Reader, c *follower) error {
	var payload []byte
	for {
		op, msg, err := wsframe.Read(br, payload)
		if errors.Is(err, wsframe.ErrBadFrame) {
			return err
		} else if err != nil {
			return f.Ended(err)
		}
		payload = msg
		switch op {
		case wsframe.OpText:
			switch {
			case bytes.HasPrefix(payload, []byte(`{"type":"message"`)):
				if err := f.message(payload, c); err != nil {
					return err
				}
			case bytes.HasPrefix(payload, []byte(`{"type":"registered"`)):
				f.registered.Add(1)
			}
		case wsframe.OpClose:
			return f.Ended(fmt.Errorf("close frame %x", payload))
		}
	}
}

// message records one receipt: the publisher put {"i":…,"t":…} in data.
func (f *followers) message(b []byte, c *follower) error {
	now := time.Now().UnixNano()
	i, ok1 := clientfleet.UintAfter(b, `"i":`)
	t, ok2 := clientfleet.UintAfter(b, `"t":`)
	if !ok1 || !ok2 {
		return fmt.Errorf("%w: %q", ErrBadMessage, b)
	}
	if i < uint64(len(f.got)) {
		f.got[i].Add(1)
	}
	if i >= uint64(f.measureFrom) {
		c.mu.Lock()
		c.delays = append(c.delays, now-int64(t))
		c.mu.Unlock()
		f.measured.Add(1)
	}
	return nil
}

// received answers how many clients received index i.
func (f *followers) received(i int) int64 {
	if i < 0 || i >= len(f.got) {
		return 0
	}
	return f.got[i].Load()
}

// delays answers every timed receipt, in ns.
func (f *followers) delays() []int64 {
	var all []int64
	for _, c := range f.clients {
		c.mu.Lock()
		all = append(all, c.delays...)
		c.mu.Unlock()
	}
	return all
}

// err answers the first client failure, if any.
func (f *followers) err() error { return f.Err("followers") }
