package gateway

import (
	"net/netip"
	"testing"
	"unsafe"
)

// Every idle WebSocket holds one wsSession and one admission: each is kept
// at a malloc size class.
func TestSessionSize(t *testing.T) {
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{name: "wsSession", got: unsafe.Sizeof(wsSession{}), want: 64},
		{name: "admission", got: unsafe.Sizeof(admission{}), want: 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got > tt.want {
				t.Fatalf("unsafe.Sizeof(%s{}) = %d, want ≤ %d: pack new fields or put them behind a pointer an idle session leaves nil", tt.name, tt.got, tt.want)
			}
		})
	}
}

// TestAdmissionAddr checks that the packed client IP gives back what
// clientAddr returned, so per-IP counts go up and down on the same key.
func TestAdmissionAddr(t *testing.T) {
	tests := []struct {
		name string
		ip   netip.Addr
	}{
		{name: "none", ip: netip.Addr{}},
		{name: "ipv4", ip: netip.MustParseAddr("127.0.0.2")},
		{name: "ipv4 zero", ip: netip.MustParseAddr("0.0.0.0")},
		{name: "ipv6", ip: netip.MustParseAddr("2001:db8::1")},
		{name: "ipv6 unspecified", ip: netip.IPv6Unspecified()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a admission
			a.setAddr(tt.ip)
			if got := a.addr(); got != tt.ip {
				t.Fatalf("addr() = %v, want %v", got, tt.ip)
			}
		})
	}
}
