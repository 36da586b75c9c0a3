package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ErrProbe is returned when the client endpoint does not speak the native
// protocol (e.g. a caddy built without the module, or an unfinished engine).
var ErrProbe = errors.New("websocket probe failed")

// probe opens one connection to addr following key, waits for `registered`
// and closes. It proves the server's WebSocket path works before the run.
func probe(addr, key string, timeout time.Duration) error {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProbe, err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(timeout))
	req := "GET /realtime?sdk_key=" + key + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return fmt.Errorf("%w: %w", ErrProbe, err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProbe, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%w: status %s: %q", ErrProbe, resp.Status, b)
	}
	// The first frame is small and unmasked: look for the message in the
	// raw bytes rather than parse frames.
	var got []byte
	buf := make([]byte, 512)
	for len(got) < 4096 {
		n, err := br.Read(buf)
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte(`"registered"`)) {
			// A normal close, masked with a zero key: code 1000.
			_, _ = nc.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8})
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: no registered message: %w (got %q)", ErrProbe, err, got)
		}
	}
	return fmt.Errorf("%w: no registered message in %q", ErrProbe, got)
}
