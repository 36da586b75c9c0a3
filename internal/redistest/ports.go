package redistest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// busOffset is how far above its port a Redis Cluster node listens for the
// cluster bus.
const busOffset = 10000

// portRange returns the range ports are picked from: below the kernel's
// ephemeral range, as integration/harness_test.go's freePorts does, and the
// part above it when the range below is too small (a machine whose ephemeral
// range starts at 1024).
func portRange() (lo, hi int) {
	lo, hi = 15000, 32767
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	start, err1 := strconv.Atoi(f[0])
	end, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return lo, hi
	}
	switch {
	case start-1 > lo+busOffset+1000:
		return lo, start - 1
	case end+1000 < 65535:
		return end + 1, 65535
	default:
		return 20000, 55000 // no room outside the ephemeral range: bind checks must do
	}
}

// pickPort returns a port that was free when checked: on every address, and
// with its cluster bus port too when bus is set. The caller binds it soon
// after; a collision in between shows as a failed start, which Start
// retries with another port.
func pickPort(bus bool) (int, error) {
	lo, hi := portRange()
	if bus {
		if hi+busOffset > 65535 {
			hi = 65535 - busOffset
		}
		if hi <= lo {
			lo, hi = 20000, 55000
		}
	}
	for range 1000 {
		p := lo + rand.IntN(hi-lo+1)
		if !portFree(p) || (bus && !portFree(p+busOffset)) {
			continue
		}
		return p, nil
	}
	return 0, fmt.Errorf("redistest: no free port in %d-%d after 1000 tries", lo, hi)
}

// portFree reports whether p can be bound on every address, which also
// fails when anything holds p on 127.0.0.1.
func portFree(p int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
