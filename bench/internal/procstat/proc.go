package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ErrNoField is returned when /proc or a heap profile does not have the
// expected field.
var ErrNoField = errors.New("field not found")

// RSSKB reads VmRSS of pid, in KiB.
func RSSKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading status: %w", err)
	}
	return StatusField(b, "VmRSS:")
}

// StatusField parses a "Name:   123 kB" line of a /proc status-like file
// (/proc/<pid>/status, /proc/meminfo).
func StatusField(b []byte, name string) (int64, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(name)); ok {
			f := strings.Fields(string(rest))
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%w: %s", ErrNoField, name)
}

// CPUSeconds reads utime+stime of pid.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading stat: %w", err)
	}
	return statCPU(b)
}

// statCPU parses utime and stime (fields 14 and 15) of a /proc/<pid>/stat
// line. The command name (field 2) may hold spaces, so fields are counted
// from the last ')'.
func statCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: comm", ErrNoField)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field k is f[k-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: utime", ErrNoField)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parsing utime/stime: %w", err)
	}
	return float64(u+s) / clockTicks, nil
}

// SettleRSS samples pid's RSS every interval until the last four samples
// lie within 1% (or 512 KiB) of each other, or limit is up. It answers the
// last sample and whether it settled. The bound is relative, with a floor,
// so that one rule serves a server of a few MiB and one holding tens of
// thousands of connections.
func SettleRSS(pid int, interval, limit time.Duration) (int64, bool, error) {
	var window []int64
	deadline := time.Now().Add(limit)
	for {
		v, err := RSSKB(pid)
		if err != nil {
			return 0, false, err
		}
		window = append(window, v)
		if len(window) > 4 {
			window = window[1:]
		}
		if len(window) == 4 {
			lo, hi := window[0], window[0]
			for _, w := range window {
				lo, hi = min(lo, w), max(hi, w)
			}
			if hi-lo <= max(hi/100, 512) {
				return v, true, nil
			}
		}
		if time.Now().After(deadline) {
			return v, false, nil
		}
		time.Sleep(interval) // pacing the samples, not synchronising
	}
}
