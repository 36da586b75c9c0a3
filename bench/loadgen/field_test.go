package main

import "testing"

func TestIntField(t *testing.T) {
	msg := `{"type":"message","sdk_key":"K","epoch":"E","seq":44,"event":"update","data":{"t":1732300000123456789},"ts":1732300000123}`
	tests := []struct {
		name   string
		in     string
		field  string
		want   int64
		wantOK bool
	}{
		{name: "seq", in: msg, field: "seq", want: 44, wantOK: true},
		{name: "t inside data, not ts", in: msg, field: "t", want: 1732300000123456789, wantOK: true},
		{name: "ts", in: msg, field: "ts", want: 1732300000123, wantOK: true},
		{name: "spaces", in: `{"seq" : 7 }`, field: "seq", want: 7, wantOK: true},
		{name: "negative", in: `{"seq":-3}`, field: "seq", want: -3, wantOK: true},
		{name: "name inside a value", in: `{"a":"seq","seq":9}`, field: "seq", want: 9, wantOK: true},
		{name: "missing", in: `{"type":"pong"}`, field: "seq", wantOK: false},
		{name: "not a number", in: `{"seq":"x"}`, field: "seq", wantOK: false},
		{name: "truncated", in: `{"seq":`, field: "seq", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := intField([]byte(tt.in), tt.field)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("intField(%q) = %d, %v; want %d, %v", tt.field, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestFieldString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "message", in: `{"type":"message","seq":1}`, want: "message"},
		{name: "registered later", in: `{"sdk_key":"K","type":"registered"}`, want: "registered"},
		{name: "absent", in: `{"seq":1}`, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := field([]byte(tt.in), "type")
			if string(got) != tt.want {
				t.Fatalf("field(type) = %q, want %q", got, tt.want)
			}
		})
	}
}
