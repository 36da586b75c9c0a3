package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestCloseCodes sends one kind of bad input per connection and checks the
// close code of the contract, while a bystander on the same node keeps its
// connection and its messages (CONTRACT "Never": bad input never crashes the
// process or another client's connection).
func TestCloseCodes(t *testing.T) {
	n := startCaddy(t, caddyfile(nil, []string{"max_message_size 4096", "max_keys_per_connection 3"}))
	const maxMsg, maxKeys = 4096, 3

	bystanderKey := testKey(t, "bystander")
	bystander := Dial(t, n.WSURL(route))
	bystander.Register(t, bystanderKey)
	var bystanderSeq uint64

	big := func(size int) []byte {
		// A ping message padded with spaces: valid JSON, only too big.
		msg := []byte(`{"type":"ping"}`)
		return append(msg, bytes.Repeat([]byte(" "), size-len(msg))...)
	}

	tests := []struct {
		name      string
		send      func(t testing.TB, c *Client)
		codes     []int // acceptable close codes; the first is the contract's
		wantError bool  // an {"type":"error"} message must come before the close
	}{
		{
			name:      "malformed JSON",
			send:      func(t testing.TB, c *Client) { c.Send(t, `{"type":"register","sdk_key":`) },
			codes:     []int{4400},
			wantError: true,
		},
		{
			name:      "not an object",
			send:      func(t testing.TB, c *Client) { c.Send(t, `[1,2,3]`) },
			codes:     []int{4400},
			wantError: true,
		},
		{
			name:      "unknown type",
			send:      func(t testing.TB, c *Client) { c.Send(t, `{"type":"subscribe","sdk_key":"x"}`) },
			codes:     []int{4400},
			wantError: true,
		},
		{
			name:      "register without key",
			send:      func(t testing.TB, c *Client) { c.Send(t, `{"type":"register"}`) },
			codes:     []int{4400, 4401},
			wantError: true,
		},
		{
			name:      "since of the wrong type",
			send:      func(t testing.TB, c *Client) { c.Send(t, `{"type":"register","sdk_key":"k","since":"x","epoch":"e"}`) },
			codes:     []int{4400},
			wantError: true,
		},
		{
			name:  "message over max_message_size",
			send:  func(t testing.TB, c *Client) { c.Send(t, big(maxMsg+1)) },
			codes: []int{1009},
		},
		{
			// The gateway must refuse on the header, without waiting for (or
			// buffering) a payload that never comes.
			name: "frame header announcing 1 MiB",
			send: func(t testing.TB, c *Client) {
				h := []byte{0x81, 0x80 | 127}
				h = binary.BigEndian.AppendUint64(h, 1<<20)
				h = append(h, 1, 2, 3, 4)
				if err := c.WriteRaw(h); err != nil {
					t.Fatal(err)
				}
			},
			codes: []int{1009},
		},
		{
			name: "fragments over max_message_size",
			send: func(t testing.TB, c *Client) {
				part := bytes.Repeat([]byte(" "), maxMsg/2+1)
				if err := c.WriteFrame(false, opText, append([]byte(`{"type":"ping"}`), part...), true); err != nil {
					t.Fatal(err)
				}
				if err := c.WriteFrame(true, opCont, part, true); err != nil {
					t.Fatal(err)
				}
			},
			codes: []int{1009},
		},
		{
			name:  "text that is not UTF-8",
			send:  func(t testing.TB, c *Client) { c.Send(t, []byte("{\"type\":\"ping\",\"x\":\"\xff\xfe\"}")) },
			codes: []int{1007},
		},
		{
			name: "unmasked client frame",
			send: func(t testing.TB, c *Client) {
				if err := c.WriteFrame(true, opText, []byte(`{"type":"ping"}`), false); err != nil {
					t.Fatal(err)
				}
			},
			codes: []int{1002},
		},
		{
			name: "reserved opcode",
			send: func(t testing.TB, c *Client) {
				if err := c.WriteFrame(true, 0x3, []byte("x"), true); err != nil {
					t.Fatal(err)
				}
			},
			codes: []int{1002},
		},
		{
			name: "RSV bits set",
			send: func(t testing.TB, c *Client) {
				f := encodeFrame(true, opText, []byte(`{"type":"ping"}`), true)
				f[0] |= 0x40
				if err := c.WriteRaw(f); err != nil {
					t.Fatal(err)
				}
			},
			codes: []int{1002},
		},
		{
			name: "control frame over 125 bytes",
			send: func(t testing.TB, c *Client) {
				if err := c.WriteFrame(true, opPing, bytes.Repeat([]byte("p"), 126), true); err != nil {
					t.Fatal(err)
				}
			},
			codes: []int{1002},
		},
		{
			name: "fragmented control frame",
			send: func(t testing.TB, c *Client) {
				if err := c.WriteFrame(false, opPing, []byte("p"), true); err != nil {
					t.Fatal(err)
				}
			},
			codes: []int{1002},
		},
		{
			name: "more keys than max_keys_per_connection",
			send: func(t testing.TB, c *Client) {
				// The first key is registered already.
				for i := 1; i <= maxKeys; i++ {
					c.Send(t, map[string]any{"type": "register", "sdk_key": testKey(t, fmt.Sprint("extra", i))})
				}
			},
			codes: []int{4429},
		},
		{
			name: "continuation without a start",
			send: func(t testing.TB, c *Client) {
				if err := c.WriteFrame(true, opCont, []byte(`{"type":"ping"}`), true); err != nil {
					t.Fatal(err)
				}
			},
			codes: []int{1002},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Dial(t, n.WSURL(route))
			// A registered key first: the bad input must not take the
			// session down silently.
			c.Register(t, testKey(t, "k"))
			tc.send(t, c)
			before, code := readUntilClose(t, c, 10*time.Second)
			if !slices.Contains(tc.codes, code) {
				t.Fatalf("close code %d, want %v", code, tc.codes)
			}
			if tc.wantError {
				if len(before) == 0 || before[len(before)-1].Type != "error" || before[len(before)-1].Code != "bad_request" || before[len(before)-1].Message == "" {
					t.Fatalf("want an error message with code bad_request before the close, got %d messages: %s", len(before), lastRaw(before))
				}
			}
			// The bystander is unharmed.
			bystanderSeq++
			n.PublishOK(t, bystanderKey, "", `"still here"`)
			bystander.ExpectMessage(t, bystanderKey, bystanderSeq)
		})
	}

	t.Run("process alive and a fresh client round-trips", func(t *testing.T) {
		if n.Exited() {
			t.Fatal("caddy exited")
		}
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		n.PublishOK(t, key, "", `{"ok":true}`)
		c.ExpectMessage(t, key, 1)
		_ = n.Stats(t)
	})
}
