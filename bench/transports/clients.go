package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/clientfleet"
	"github.com/pushgateway/push_gateway/bench/internal/wsframe"
)

// Transports, as the results name them.
const (
	transportWS = "websocket"
	// transportWSTLS is native WebSocket (wss://) over TLS with HTTP/1.1,
	// as browsers open it: they offer only http/1.1 by ALPN for a
	// WebSocket, which must be hijacked from an HTTP/1.1 connection.
	transportWSTLS = "websocket-tls"
	transportSSE   = "sse"
	transportPoll  = "poll"
	// transportSSEH2 is SSE over HTTP/2 (TLS): Go's server runs each
	// stream's handler in a goroutine of its own, so it cannot hand the
	// stream to epoll as it does an HTTP/1.1 one.
	transportSSEH2 = "sse-h2"
)

// Errors of the client side of the run.
var (
	// ErrRefused is returned when the gateway does not accept a client.
	ErrRefused = errors.New("gateway refused the client")
	// ErrBadFrame is returned for a WebSocket frame a server must not send
	// and for a message without the fields the clients read.
	ErrBadFrame = wsframe.ErrBadFrame
)

// pollWait is the wait a long-poll client asks for: longer than any
// measurement, so that a held poll is idle until a publish answers it.
const pollWait = "60s"

// fleet is n clients of one transport following one key. Each client is a
// goroutine that reads its connection and records, per published seq, when
// it arrived and how long after the publisher's stamp.
type fleet struct {
	clientfleet.Base

	transport string
	key       string
	addr      string // the gateway's site, host:port

	got          []atomic.Int64 // per seq: clients that received it
	measureFrom  atomic.Uint64  // seqs from here on are measured
	ready        atomic.Int64   // clients whose subscription is established
	mu           sync.Mutex
	delays       []time.Duration // guarded by mu: measured receipts
	sourceOffset int             // first source address index, so fleets spread apart

	// HTTP/2 streams share a few TLS connections that Go's client opens
	// as the server's stream limit requires; the run's end cancels them.
	h2        *http.Client
	h2Target  string // https URL of the stream
	ctx       context.Context
	cancel    context.CancelFunc
	h2Sources atomic.Int64 // round-robin over source addresses

	tlsDesc atomic.Value // string: the first TLS client's version and ALPN protocol
}

// wsTLSConfig is the websocket-tls clients' TLS: http/1.1 the only
// protocol offered, as a browser's WebSocket does, and no verification of
// caddy's internal CA, as for sse-h2. No session cache: every client makes
// a full handshake, as so many distinct browsers would.
var wsTLSConfig = &tls.Config{
	InsecureSkipVerify: true, // caddy's internal CA
	NextProtos:         []string{"http/1.1"},
}

// tlsHandshakeTimeout bounds one client's TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

// newFleet prepares a fleet; tlsAddr is the gateway's TLS site, used by
// the websocket-tls and sse-h2 transports only.
func newFleet(transport, key, addr, tlsAddr string, maxSeq, sourceOffset int) *fleet {
	f := &fleet{
		transport: transport, key: key, addr: addr,
		got:          make([]atomic.Int64, maxSeq+1),
		sourceOffset: sourceOffset,
	}
	if transport == transportWSTLS {
		f.addr = tlsAddr
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	if transport == transportSSEH2 {
		f.h2Target = "https://" + tlsAddr + route + "?" + url.Values{"sdk_key": {key}}.Encode()
		f.h2 = &http.Client{Transport: &http.Transport{
			ForceAttemptHTTP2: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // caddy's internal CA
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: clientfleet.SourceAddr(f.sourceOffset + int(f.h2Sources.Add(1)))}
				return d.DialContext(ctx, network, addr)
			},
		}}
	}
	return f
}

// record notes that one client received seq stamped at stampNS.
func (f *fleet) record(seq uint64, stampNS int64) {
	now := time.Now()
	if seq < uint64(len(f.got)) {
		f.got[seq].Add(1)
	}
	if seq >= f.measureFrom.Load() {
		d := now.Sub(time.Unix(0, stampNS))
		f.mu.Lock()
		f.delays = append(f.delays, d)
		f.mu.Unlock()
	}
}

// err answers the first client failure, if any.
func (f *fleet) err() error { return f.Err(f.transport + " clients") }

// open starts n clients, at most clientfleet.DialConcurrency handshakes at a time, and
// returns once every handshake is done (not yet every subscription).
func (f *fleet) open(n int) {
	conc := clientfleet.DialConcurrency
	if f.transport == transportSSEH2 {
		// One stream opened at a time, as a page's EventSources would: Go's
		// client dials a connection of its own for every request that finds
		// none with a free stream, so concurrent opens would spread the
		// streams over hundreds of connections instead of filling each up to
		// the server's stream limit.
		conc = 1
	}
	sem := make(chan struct{}, conc)
	var dials sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		dials.Add(1)
		f.Go(func() {
			if f.transport == transportSSEH2 {
				f.h2Stream(dials.Done, sem)
				return
			}
			conn, br, err := f.connect(i)
			dials.Done()
			<-sem
			if err != nil {
				f.Fail(err)
				return
			}
			defer conn.Close()
			switch f.transport {
			case transportWS, transportWSTLS:
				err = f.readWS(br)
			case transportSSE:
				err = f.readSSE(br)
			default:
				err = f.pollLoop(conn, br)
			}
			if err != nil {
				f.Fail(err)
			}
		})
	}
	dials.Wait()
}

// close ends every client and waits for their goroutines.
func (f *fleet) close() {
	// The HTTP/2 streams are cancelled, not closed as connections.
	f.Close(f.cancel)
}

// h2Stream runs one SSE stream over HTTP/2; dialled and sem end the
// handshake phase as open counts it.
func (f *fleet) h2Stream(dialled func(), sem chan struct{}) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, f.h2Target, nil)
	if err != nil {
		dialled()
		<-sem
		f.Fail(err)
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := f.h2.Do(req)
	dialled()
	<-sem
	if err != nil {
		f.Fail(fmt.Errorf("sse over h2: %w", err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		f.Fail(fmt.Errorf("%w: sse over h2: %s %s %q", ErrRefused, resp.Proto, resp.Status, body))
		return
	}
	if resp.TLS != nil {
		f.noteTLS(*resp.TLS)
	}
	f.ready.Add(1)
	if err := f.readSSE(bufio.NewReaderSize(resp.Body, 4096)); err != nil {
		f.Fail(err)
	}
}

// connect dials (websocket-tls: and makes the TLS handshake) and sends the
// transport's first request; for WebSocket and SSE it also reads the
// answer's head.
func (f *fleet) connect(i int) (net.Conn, *bufio.Reader, error) {
	conn, err := f.Dial(f.addr, f.sourceOffset+i)
	if err != nil {
		return nil, nil, err
	}
	if f.transport == transportWSTLS {
		// The fleet keeps the TCP connection, whose closing ends the
		// client at the run's end.
		if conn, err = f.handshake(conn); err != nil {
			return nil, nil, err
		}
	}
	br := bufio.NewReaderSize(conn, 4096)
	q := url.Values{"sdk_key": {f.key}}
	var head string
	switch f.transport {
	case transportWS, transportWSTLS:
		var nonce [16]byte
		_, _ = rand.Read(nonce[:])
		head = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
			base64.StdEncoding.EncodeToString(nonce[:]) + "\r\n"
	case transportSSE:
		head = "Accept: text/event-stream\r\n"
	default:
		// The first poll names no position: it is held until the first
		// publish, which it then gets with the key's epoch.
		q.Set("wait", pollWait)
		q.Set("since", "0")
	}
	if err := f.writeGet(conn, q, head); err != nil {
		conn.Close()
		return nil, nil, err
	}
	switch f.transport {
	case transportWS, transportWSTLS:
		if err := expectHead(br, http.StatusSwitchingProtocols); err != nil {
			conn.Close()
			return nil, nil, err
		}
	case transportSSE:
		if err := expectHead(br, http.StatusOK); err != nil {
			conn.Close()
			return nil, nil, err
		}
		f.ready.Add(1)
	default:
		f.ready.Add(1)
	}
	return conn, br, nil
}

// handshake makes a websocket-tls client's TLS handshake on conn and
// checks that the gateway agreed to HTTP/1.1, without which it could not
// upgrade the connection.
func (f *fleet) handshake(conn net.Conn) (net.Conn, error) {
	tc := tls.Client(conn, wsTLSConfig)
	ctx, cancel := context.WithTimeout(f.ctx, tlsHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != "http/1.1" {
		conn.Close()
		return nil, fmt.Errorf("%w: ALPN protocol %q, want http/1.1", ErrRefused, st.NegotiatedProtocol)
	}
	f.noteTLS(st)
	return tc, nil
}

// noteTLS keeps the first client's TLS version and ALPN protocol for the
// results.
func (f *fleet) noteTLS(st tls.ConnectionState) {
	if f.tlsDesc.Load() == nil {
		f.tlsDesc.CompareAndSwap(nil, tls.VersionName(st.Version)+", "+st.NegotiatedProtocol)
	}
}

// tlsInfo answers what noteTLS kept; "" for a plain transport.
func (f *fleet) tlsInfo() string {
	s, _ := f.tlsDesc.Load().(string)
	return s
}

func (f *fleet) writeGet(conn net.Conn, q url.Values, head string) error {
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := io.WriteString(conn, "GET "+route+"?"+q.Encode()+" HTTP/1.1\r\nHost: "+f.addr+"\r\n"+head+"\r\n")
	if err != nil {
		return fmt.Errorf("writing the request: %w", err)
	}
	return nil
}

// expectHead reads a response head and fails unless its status is want.
// The body of a WebSocket or SSE answer is the stream, read by the caller.
func expectHead(br *bufio.Reader, want int) error {
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != want {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%w: %s %q", ErrRefused, resp.Status, body)
	}
	// A 200 SSE answer has no length: leave its body (the stream) in br.
	return nil
}

// message records a native or SSE message: its seq and the publisher's
// stamp {"t":<ns>} in its data.
func (f *fleet) message(seq uint64, b []byte) error {
	t, ok := clientfleet.UintAfter(b, `"t":`)
	if !ok {
		return fmt.Errorf("%w: no stamp in %q", ErrBadFrame, b)
	}
	f.record(seq, int64(t))
	return nil
}

// readWS reads server frames (unmasked, unfragmented for messages this
// small) until the connection ends.
func (f *fleet) readWS(br *bufio.Reader) error {
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
				seq, ok := clientfleet.UintAfter(payload, `"seq":`)
				if !ok {
					return fmt.Errorf("%w: no seq in %q", ErrBadFrame, payload)
				}
				if err := f.message(seq, payload); err != nil {
					return err
				}
			case bytes.HasPrefix(payload, []byte(`{"type":"registered"`)):
				f.ready.Add(1)
			}
		case wsframe.OpClose:
			return f.Ended(fmt.Errorf("close frame %x", payload))
		}
	}
}

// readSSE reads events until the stream ends. The gateway's HTTP/1.1
// stream is neither chunked nor sized: its body is the rest of the
// connection.
func (f *fleet) readSSE(br *bufio.Reader) error {
	var seq uint64
	var data []byte
	hasData := false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return f.Ended(err)
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if hasData {
				if err := f.message(seq, data); err != nil {
					return err
				}
			}
			hasData = false
		case bytes.HasPrefix(line, []byte("id: ")):
			id := line[len("id: "):]
			if i := bytes.LastIndexByte(id, ':'); i > 0 {
				seq, _ = clientfleet.UintAfter(id[i:], ":")
			}
		case bytes.HasPrefix(line, []byte("data: ")):
			// One data line per message: the publisher's JSON is compact.
			data, hasData = append(data[:0], line[len("data: "):]...), true
		}
	}
}

// pollAnswer is the part of a long-poll answer the run reads.
type pollAnswer struct {
	Keys map[string]struct {
		Epoch    string `json:"epoch"`
		Seq      uint64 `json:"seq"`
		Resync   bool   `json:"resync"`
		Messages []struct {
			Seq  uint64 `json:"seq"`
			Data struct {
				T int64 `json:"t"`
			} `json:"data"`
		} `json:"messages"`
	} `json:"keys"`
}

// pollLoop reads each answer and polls again at once from the position it
// gave, on the same keep-alive connection, until the connection ends.
func (f *fleet) pollLoop(conn net.Conn, br *bufio.Reader) error {
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			return f.Ended(err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return f.Ended(err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w: poll %s %q", ErrRefused, resp.Status, body)
		}
		var ans pollAnswer
		if err := json.Unmarshal(body, &ans); err != nil {
			return fmt.Errorf("poll answer %q: %w", body, err)
		}
		k, ok := ans.Keys[f.key]
		if !ok || k.Resync {
			return fmt.Errorf("poll answer without the key or with resync: %q", body)
		}
		for _, m := range k.Messages {
			f.record(m.Seq, m.Data.T)
		}
		if resp.Close {
			return errors.New("gateway closed the keep-alive connection")
		}
		q := url.Values{"sdk_key": {f.key}, "since": {strconv.FormatUint(k.Seq, 10)},
			"epoch": {k.Epoch}, "wait": {pollWait}}
		if err := f.writeGet(conn, q, ""); err != nil {
			return f.Ended(err)
		}
	}
}

// received answers how many clients received seq.
func (f *fleet) received(seq uint64) int64 {
	if seq >= uint64(len(f.got)) {
		return 0
	}
	return f.got[seq].Load()
}

// measured answers the recorded delays.
func (f *fleet) measured() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.delays...)
}
