package main

import (
	"strings"
	"testing"
)

func TestWatchURL(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		keys     []string
		since    int64
		epoch    string
		want     string
		wantErr  string
	}{
		{name: "one key", endpoint: "ws://h:1/realtime", keys: []string{"K"}, since: -1, want: "ws://h:1/realtime?sdk_key=K"},
		{name: "several keys", endpoint: "wss://h/realtime", keys: []string{"A", "B"}, since: -1, want: "wss://h/realtime?sdk_key=A&sdk_key=B"},
		{name: "escaped key", endpoint: "ws://h/r", keys: []string{"a b&c"}, since: -1, want: "ws://h/r?sdk_key=a+b%26c"},
		{name: "resume", endpoint: "ws://h/r", keys: []string{"K"}, since: 42, epoch: "E", want: "ws://h/r?epoch=E&sdk_key=K&since=42"},
		{name: "resume needs one key", endpoint: "ws://h/r", keys: []string{"A", "B"}, since: 1, wantErr: "exactly one key"},
		{name: "http scheme", endpoint: "http://h/r", keys: []string{"K"}, since: -1, wantErr: "want ws:// or wss://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := watchURL(tt.endpoint, tt.keys, tt.since, tt.epoch)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("watchURL = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("watchURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestIsMessage(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  bool
	}{
		{name: "message", frame: `{"type":"message","sdk_key":"K","data":{"type":"x"}}`, want: true},
		{name: "registered", frame: `{"type":"registered","sdk_key":"K"}`},
		{name: "not JSON", frame: `nope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isMessage([]byte(tt.frame)); got != tt.want {
				t.Fatalf("isMessage(%s) = %v, want %v", tt.frame, got, tt.want)
			}
		})
	}
}
