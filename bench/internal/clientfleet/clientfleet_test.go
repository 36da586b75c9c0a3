package clientfleet

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestUintAfter(t *testing.T) {
	tests := []struct {
		name, in, field string
		want            uint64
		ok              bool
	}{
		{name: "native message", in: `{"type":"message","sdk_key":"k","epoch":"e","seq":42,"event":"update","data":{"t":1700000000123456789},"ts":1}`, field: `"seq":`, want: 42, ok: true},
		{name: "stamp", in: `{"t":1700000000123456789}`, field: `"t":`, want: 1700000000123456789, ok: true},
		{name: "absent", in: `{"type":"pong"}`, field: `"seq":`},
		{name: "not a number", in: `{"seq":"x"}`, field: `"seq":`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := UintAfter([]byte(tc.in), tc.field)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("UintAfter = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSourceAddr(t *testing.T) {
	for i, want := range map[int]string{0: "127.0.0.2", 252: "127.0.0.254", 253: "127.0.0.2"} {
		if got := SourceAddr(i).IP.String(); got != want {
			t.Fatalf("SourceAddr(%d) = %s, want %s", i, got, want)
		}
	}
}

func TestFailuresAndClose(t *testing.T) {
	var b Base
	if err := b.Err("clients"); err != nil {
		t.Fatalf("no failure yet: %v", err)
	}
	first := errors.New("first")
	b.Fail(first)
	b.Fail(errors.New("second"))
	err := b.Err("ws clients")
	if !errors.Is(err, first) || !strings.HasPrefix(err.Error(), "2 ws clients failed, the first: first") {
		t.Fatalf("Err = %v", err)
	}
	if b.Ended(first) == nil {
		t.Fatal("Ended before Close answers nil")
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conn, err := b.Dial(l.Addr().String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	b.Go(func() {
		_, err := conn.Read(make([]byte, 1))
		read <- err
		b.Fail(b.Ended(err)) // what a client does when its connection ends
	})
	cancelled := false
	b.Close(func() {
		if !b.Closing() {
			t.Error("also ran before the fleet counted as closing")
		}
		cancelled = true
	})
	if !cancelled || <-read == nil {
		t.Fatal("Close did not run also or close the connection")
	}
	if err := b.Err("clients"); !strings.HasPrefix(err.Error(), "2 ") {
		t.Fatalf("a failure after Close was counted: %v", err)
	}
}
