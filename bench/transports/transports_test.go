package main

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{name: "defaults", args: nil},
		{name: "one transport", args: []string{"-transports", "sse", "-n", "10"}},
		{name: "websocket over tls", args: []string{"-transports", "websocket,websocket-tls"}},
		{name: "unknown transport", args: []string{"-transports", "socketio"}, wantErr: true},
		{name: "too many clients", args: []string{"-n", "7000"}, wantErr: true},
		{name: "no publishes", args: []string{"-publishes", "0"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if tc.wantErr {
				if !errors.Is(err, ErrBadFlag) {
					t.Fatalf("err = %v, want ErrBadFlag", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o.transports) == 0 || o.n < 1 {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

func TestMarkdownShowsFailures(t *testing.T) {
	r := Results{Command: "go run ./bench/transports", N: 2, Publishes: 1, Transports: []TransportResult{
		{Transport: transportWS, RSSPerConnBytes: 2000, P99Ms: 3},
		{Transport: transportWSTLS, TCPConns: 2, TLS: "TLS 1.3, http/1.1", RSSPerConnBytes: 9000},
		{Transport: transportPoll, Error: "a|b"},
	}}
	md := string(r.markdown())
	for _, want := range []string{"| websocket | 0 | 2.00 KB |", "| websocket-tls | 2 | 9.00 KB |", "| poll | failed: a/b |",
		"(TLS 1.3, http/1.1: a browser", "(TLS, h2)", "The websocket-tls row includes"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
}
