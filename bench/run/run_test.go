package main

import "testing"

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantNs  []int
		wantErr bool
	}{
		{name: "defaults", args: nil, wantNs: []int{1000, 5000, 10000, 19000}},
		{name: "list", args: []string{"-n", "1000, 19000"}, wantNs: []int{1000, 19000}},
		{name: "over the open-files limit", args: []string{"-n", "20000"}, wantErr: true},
		{name: "unknown server", args: []string{"-servers", "nginx"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !equalInts(o.ns, tt.wantNs) {
				t.Fatalf("ns = %v, want %v", o.ns, tt.wantNs)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
