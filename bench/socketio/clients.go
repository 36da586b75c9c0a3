package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/clientfleet"
	"github.com/pushgateway/push_gateway/bench/internal/wsframe"
)

// ErrRefused is returned when a server does not accept a client.
var ErrRefused = errors.New("server refused the client")

// fleet is n Socket.IO clients over raw WebSocket following one key. Each
// is a goroutine that reads its connection, answers the server's pings and
// records, per broadcast index, how long after the publisher's stamp the
// broadcast arrived.
type fleet struct {
	clientfleet.Base

	addr string // the server's host:port
	key  string
	n    int

	slots    []atomic.Int64 // per broadcast: delay slots taken
	got      []atomic.Int64 // per broadcast: clients that received it, counted after their slot is written
	delays   [][]int64      // per broadcast, one slot per client: ns after the stamp
	ready    atomic.Int64   // clients registered (got `update ""`)
	upgrade  string         // the handshake request
	register []byte         // the register frame, masked
	join     []byte         // the namespace connect frame, masked
	pong     []byte         // the Engine.IO pong frame, masked
}

// sioPath and sioNamespace are where both servers serve the clients.
const (
	sioPath      = "/realtime/"
	sioNamespace = "/realtime"
)

func newFleet(addr, key string, n, broadcasts int) *fleet {
	f := &fleet{addr: addr, key: key, n: n, got: make([]atomic.Int64, broadcasts+1)}
	f.slots = make([]atomic.Int64, broadcasts+1)
	f.delays = make([][]int64, broadcasts+1)
	for i := range f.delays {
		f.delays[i] = make([]int64, n)
	}
	f.upgrade = "GET " + sioPath + "?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
	f.join = wsframe.AppendClient(nil, wsframe.OpText, []byte("40"+sioNamespace+","))
	f.register = wsframe.AppendClient(nil, wsframe.OpText, []byte(`42`+sioNamespace+`,["register",{"sdk_key":"`+key+`"}]`))
	f.pong = wsframe.AppendClient(nil, wsframe.OpText, []byte("3"))
	return f
}

// err answers the first client failure, if any.
func (f *fleet) err() error { return f.Err("clients") }

// open starts the n clients, at most clientfleet.DialConcurrency handshakes at a time,
// and returns once every handshake is done (not yet every registration).
// A fleet is opened once.
func (f *fleet) open() {
	sem := make(chan struct{}, clientfleet.DialConcurrency)
	var dials sync.WaitGroup
	for i := range f.n {
		if f.Closing() {
			break
		}
		sem <- struct{}{}
		dials.Add(1)
		f.Go(func() {
			conn, br, err := f.connect(i)
			dials.Done()
			<-sem
			if err != nil {
				f.Fail(err)
				return
			}
			defer conn.Close()
			if err := f.serve(conn, br); err != nil {
				f.Fail(err)
			}
		})
	}
	dials.Wait()
}

// connect dials from client i's source address and completes the
// WebSocket handshake.
func (f *fleet) connect(i int) (net.Conn, *bufio.Reader, error) {
	conn, err := f.Dial(f.addr, i)
	if err != nil {
		return nil, nil, err
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, f.upgrade+base64.StdEncoding.EncodeToString(nonce[:])+"\r\n\r\n"); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("writing the handshake: %w", err)
	}
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("reading the handshake answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		conn.Close()
		return nil, nil, fmt.Errorf("%w: %s %q", ErrRefused, resp.Status, body)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, nil
}

// serve runs one client's Socket.IO session until the connection ends:
// open → namespace connect → register → updates, answering pings.
func (f *fleet) serve(conn net.Conn, br *bufio.Reader) error {
	var buf []byte
	registered := false
	for {
		op, msg, err := wsframe.Read(br, buf)
		if err != nil {
			return f.Ended(err)
		}
		buf = msg
		switch op {
		case wsframe.OpText:
		case wsframe.OpClose:
			return f.Ended(fmt.Errorf("close frame %x", msg))
		case wsframe.OpPing:
			if err := f.write(conn, wsframe.AppendClient(nil, wsframe.OpPong, msg)); err != nil {
				return err
			}
			continue
		default:
			continue
		}
		kind, idx, stamp := classify(msg, sioNamespace)
		switch kind {
		case pktOpen:
			err = f.write(conn, f.join)
		case pktPing:
			err = f.write(conn, f.pong)
		case pktConnected:
			err = f.write(conn, f.register)
		case pktRegistered:
			if !registered {
				registered = true
				f.ready.Add(1)
			}
		case pktUpdate:
			f.record(idx, stamp)
		case pktClose, pktConnectError, pktDisconnect:
			return f.Ended(fmt.Errorf("server ended the session: %q", msg))
		}
		if err != nil {
			return err
		}
	}
}

func (f *fleet) write(conn net.Conn, frame []byte) error {
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(frame); err != nil {
		return f.Ended(err)
	}
	return nil
}

// record notes that one client received broadcast idx stamped at stampNS.
func (f *fleet) record(idx uint64, stampNS int64) {
	d := time.Now().UnixNano() - stampNS
	if idx >= uint64(len(f.got)) {
		return
	}
	if pos := f.slots[idx].Add(1) - 1; pos < int64(f.n) {
		f.delays[idx][pos] = d
	}
	f.got[idx].Add(1)
}

// received answers how many clients received broadcast idx.
func (f *fleet) received(idx int) int64 {
	if idx < 0 || idx >= len(f.got) {
		return 0
	}
	return f.got[idx].Load()
}

// delaysOf answers the delays recorded for broadcast idx once every client
// received it.
func (f *fleet) delaysOf(idx int) []int64 {
	n := min(int(f.received(idx)), f.n)
	return f.delays[idx][:n]
}
