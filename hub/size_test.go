package hub

import (
	"testing"
	"unsafe"
)

// TestPerConnectionSizes guards what every connection holds in the hub: its
// Subscription (malloc size class 80) and one follower entry per followed
// key (16 bytes).
func TestPerConnectionSizes(t *testing.T) {
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{name: "Subscription", got: unsafe.Sizeof(Subscription{}), want: 64},
		{name: "follower", got: unsafe.Sizeof(follower{}), want: 16},
		{name: "followRef", got: unsafe.Sizeof(followRef{}), want: 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got > tt.want {
				t.Fatalf("unsafe.Sizeof(%s{}) = %d, want ≤ %d: every connection pays for it", tt.name, tt.got, tt.want)
			}
		})
	}
}
