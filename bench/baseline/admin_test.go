package main

import (
	"errors"
	"testing"
)

func TestParsePublish(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantKeys [][]string
		wantErr  error
	}{
		{name: "one key", body: `{"sdk_key":"K","data":{"t":1}}`, wantKeys: [][]string{{"K"}}},
		{name: "several keys", body: `{"sdk_keys":["A","B"],"data":""}`, wantKeys: [][]string{{"A", "B"}}},
		{name: "array", body: ` [{"sdk_key":"A"},{"sdk_key":"B","event":"x"}]`, wantKeys: [][]string{{"A"}, {"B"}}},
		{name: "no key", body: `{"data":1}`, wantErr: ErrBadBody},
		{name: "empty key", body: `{"sdk_keys":[""]}`, wantErr: ErrBadBody},
		{name: "empty array", body: `[]`, wantErr: ErrBadBody},
		{name: "not json", body: `nope`, wantErr: ErrBadBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePublish([]byte(tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if len(got) != len(tt.wantKeys) {
				t.Fatalf("got %d messages, want %d", len(got), len(tt.wantKeys))
			}
			for i, r := range got {
				if r.Event == "" || len(r.Data) == 0 {
					t.Errorf("message %d: defaults not applied: %+v", i, r)
				}
				if len(r.SDKKeys) != len(tt.wantKeys[i]) {
					t.Fatalf("message %d keys = %v, want %v", i, r.SDKKeys, tt.wantKeys[i])
				}
				for j := range r.SDKKeys {
					if r.SDKKeys[j] != tt.wantKeys[i][j] {
						t.Fatalf("message %d keys = %v, want %v", i, r.SDKKeys, tt.wantKeys[i])
					}
				}
			}
		})
	}
}
