package module

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// argDispenser is a Dispenser on "opt <v>", with v one token whatever it
// holds (the tokenizer would split or refuse some values).
func argDispenser(v string) *caddyfile.Dispenser {
	d := caddyfile.NewDispenser([]caddyfile.Token{
		{File: "Caddyfile", Line: 7, Text: "opt"},
		{File: "Caddyfile", Line: 7, Text: v},
	})
	d.Next()
	return d
}

// FuzzOptionArgs: the option helpers (sizes, durations, counts) never panic,
// accept only positive values, and refuse with an error naming the
// subdirective and the line.
func FuzzOptionArgs(f *testing.F) {
	for _, s := range []string{
		"25s", "1m30s", "0s", "-1s", "1d", "9999999999h", "64KiB", "1MB", "0", "-5", "1e3", "18446744073709551616",
		"20000", "64 KiB", "0x10", "NaN", "", "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		named := func(err error) {
			t.Helper()
			if msg := err.Error(); !strings.Contains(msg, "opt") || !strings.Contains(msg, "Caddyfile:7") {
				t.Fatalf("error %q names neither the option nor the line", msg)
			}
		}
		var dur caddy.Duration
		if err := durationArg(argDispenser(v), &dur); err != nil {
			named(err)
		} else if dur <= 0 {
			t.Fatalf("duration %q accepted as %v", v, dur)
		}
		var n int
		if err := countArg(argDispenser(v), &n); err != nil {
			named(err)
		} else if n <= 0 {
			t.Fatalf("count %q accepted as %d", v, n)
		}
		var size int64
		if err := sizeArg(argDispenser(v), &size); err != nil {
			named(err)
		} else if size <= 0 {
			t.Fatalf("size %q accepted as %d", v, size)
		}
	})
}

// FuzzUnmarshalCaddyfile: any block under the push_gateway directive or the
// global push_gateway option either parses or is refused with an error
// naming a line of the Caddyfile; nothing panics.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, s := range []string{
		"transports websocket sse poll socketio\nheartbeat 10s\nidle_timeout 1m\nmax_message_size 32KiB",
		"max_keys_per_connection 3\nqueue_size 16\npoll_max_wait 30s\nsocketio_path /realtime/ /x/",
		"history_size 10\nhistory_ttl 1m\nhistory_max_bytes 1MiB\nworkers 2",
		"node_id n1\nnode_zone z\nnode_address wss://gw.example.com/realtime\nnode_ttl 3s",
		"heartbeat\nheartbeat 1s",
		"unknown_option 1",
		"transports carrier-pigeon",
		"{\n}",
		"max_message_size -1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		tokens, err := caddyfile.Tokenize([]byte("push_gateway {\n"+body+"\n}\n"), "Caddyfile")
		if err != nil {
			return // the adapter refuses it before any module sees it
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil && !strings.Contains(err.Error(), "Caddyfile:") {
			t.Fatalf("handler error %q does not name a line", err)
		}
		if _, err := parseGlobalOption(caddyfile.NewDispenser(tokens), nil); err != nil && !strings.Contains(err.Error(), "Caddyfile:") {
			t.Fatalf("global option error %q does not name a line", err)
		}
	})
}
