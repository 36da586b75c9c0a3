package report

import (
	"os"
	"strings"
)

// LoadAverage answers the 1, 5 and 15 minute load averages of
// /proc/loadavg ("0.52 0.31 0.20"); "" when it cannot be read. A command
// records it around its measurements: on a shared machine, other work
// shows in latency tails, and the load says how much there was.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return parseLoadAverage(string(b))
}

// parseLoadAverage keeps the first three fields of a /proc/loadavg line.
func parseLoadAverage(s string) string {
	f := strings.Fields(s)
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
