package procstat

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// MemStats is the part of runtime.MemStats the benchmarks report.
type MemStats struct {
	HeapInuse  int64 `json:"heap_inuse"`
	StackInuse int64 `json:"stack_inuse"`
}

// GCMemStats forces a garbage collection in the server whose admin endpoint
// is at admin (host:port) and reads its memory statistics, through the pprof
// heap page that Caddy's admin endpoint (and the baseline's) serves: with
// gc=1 it runs runtime.GC first, so garbage does not count, and with debug=1
// it ends with runtime.MemStats as "# Name = value" lines. The server's own
// figures are read because RSS alone cannot tell Go's heap and stacks from
// what the allocator has not returned.
func GCMemStats(c *http.Client, admin string) (MemStats, error) {
	resp, err := c.Get("http://" + admin + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return MemStats{}, fmt.Errorf("reading memory statistics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return MemStats{}, fmt.Errorf("reading memory statistics: %s", resp.Status)
	}
	return parseMemStats(io.LimitReader(resp.Body, 64<<20))
}

// parseMemStats reads the "# HeapInuse = N" and "# Stack = inuse / sys"
// lines of a debug=1 heap profile.
func parseMemStats(r io.Reader) (MemStats, error) {
	var m MemStats
	var found int
	sc := bufio.NewScanner(r)
	// Stack lines of the profile's records can be long.
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "# ")
		if !ok {
			continue
		}
		name, val, ok := strings.Cut(line, " = ")
		if !ok {
			continue
		}
		first, _, _ := strings.Cut(val, " ")
		n, err := strconv.ParseInt(first, 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "HeapInuse":
			m.HeapInuse, found = n, found+1
		case "Stack":
			m.StackInuse, found = n, found+1
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("reading memory statistics: %w", err)
	}
	if found < 2 {
		return m, fmt.Errorf("%w: HeapInuse or Stack", ErrNoField)
	}
	return m, nil
}
