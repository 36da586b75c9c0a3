package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/serverproc"
)

// ErrRedisReply is returned for a Redis answer the run cannot read.
var ErrRedisReply = errors.New("unexpected redis reply")

// maxRedisReply bounds a bulk reply the run reads: INFO is a few KB.
const maxRedisReply = 1 << 20

// redisServer is the run's own redis-server.
type redisServer struct {
	*serverproc.Proc
	addr string // host:port
}

// startRedis runs bin on a free loopback port with neither RDB snapshots
// nor an append-only file: the run measures the broker's round trips,
// not the disk. A runner killed by a signal takes it along.
func startRedis(bin, dir string) (*redisServer, error) {
	ports, err := serverproc.FreePorts(1)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(ports[0]),
		"--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := serverproc.Start("redis-server", cmd, filepath.Join(dir, "redis.log"), nil)
	if err != nil {
		return nil, err
	}
	r := &redisServer{Proc: p, addr: addr}
	if err := p.WaitReady(15*time.Second, func() error {
		_, err := r.do("PING")
		return err
	}); err != nil {
		p.Stop()
		return nil, err
	}
	return r, nil
}

// url answers the broker URL of database 0.
func (r *redisServer) url() string { return "redis://" + r.addr + "/0" }

// commandStats reads INFO commandstats: calls per command since the
// server started.
func (r *redisServer) commandStats() (map[string]int64, error) {
	info, err := r.do("INFO", "commandstats")
	if err != nil {
		return nil, err
	}
	return parseCommandStats(info), nil
}

// parseCommandStats reads the "cmdstat_<name>:calls=N,usec=…" lines of
// INFO commandstats.
func parseCommandStats(info string) map[string]int64 {
	calls := make(map[string]int64)
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					calls[name] = n
				}
			}
		}
	}
	return calls
}

// do sends one command on a connection of its own and answers a simple
// or bulk string reply. The run asks Redis a few times per measurement,
// so a connection per command costs nothing that matters, and the one
// extra "info" call per read is left out of the counts.
func (r *redisServer) do(args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("dialing redis: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", fmt.Errorf("writing to redis: %w", err)
	}
	return readReply(bufio.NewReader(conn))
}

// readReply reads a simple string, error or bulk string reply.
func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading from redis: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("%w: empty line", ErrRedisReply)
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("%w: %s", ErrRedisReply, line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 || n > maxRedisReply {
			return "", fmt.Errorf("%w: bulk length %q", ErrRedisReply, line[1:])
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", fmt.Errorf("reading from redis: %w", err)
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("%w: %q", ErrRedisReply, line)
	}
}

// commandDelta answers after-before per command, without the run's own
// INFO calls, and their sum.
func commandDelta(before, after map[string]int64) (map[string]int64, int64) {
	d := make(map[string]int64)
	var total int64
	for name, n := range after {
		if name == "info" {
			continue
		}
		if k := n - before[name]; k > 0 {
			d[name] = k
			total += k
		}
	}
	return d, total
}
