package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// ErrLoadgen is returned when a load generator misbehaves or falls silent.
var ErrLoadgen = errors.New("load generator failed")

// loadgen is one running load generator process.
type loadgen struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan []byte // its stdout, a JSON object a line; closed at EOF
	done  chan struct{}
	n     int // connections it holds
}

// fleetArgs is what one load generator process is started with.
type fleetArgs struct {
	url         string
	proto       string
	key         string
	keys        int // > 1: connection j follows key-<(first+j)%keys>
	first       int
	n           int
	ipOffset    int
	maxSeq      int
	concurrency int   // handshakes in flight; 0: the generator's default
	since       int64 // > 0: resume from since in epoch (native)
	epoch       string
}

// startLoadgen runs bin holding a.n connections.
func startLoadgen(bin string, a fleetArgs, logf *os.File) (*loadgen, error) {
	args := []string{"-url", a.url, "-proto", a.proto, "-key", a.key, "-n", fmt.Sprint(a.n),
		"-ip-offset", fmt.Sprint(a.ipOffset), "-max-seq", fmt.Sprint(a.maxSeq)}
	if a.keys > 1 {
		args = append(args, "-keys", fmt.Sprint(a.keys), "-first", fmt.Sprint(a.first))
	}
	if a.concurrency > 0 {
		args = append(args, "-concurrency", fmt.Sprint(a.concurrency))
	}
	if a.since > 0 {
		args = append(args, "-since", fmt.Sprint(a.since), "-epoch", a.epoch)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = logf
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("piping loadgen stdin: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("piping loadgen stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting loadgen: %w", err)
	}
	g := &loadgen{n: a.n, cmd: cmd, in: in, lines: make(chan []byte, 4), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20) // latency arrays are long lines
		for sc.Scan() {
			g.lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(g.lines)
		_ = cmd.Wait()
		close(g.done)
	}()
	return g, nil
}

// read decodes the next line into v, waiting at most limit.
func (g *loadgen) read(v any, limit time.Duration) error {
	select {
	case line, ok := <-g.lines:
		if !ok {
			return fmt.Errorf("%w: exited", ErrLoadgen)
		}
		if err := json.Unmarshal(line, v); err != nil {
			return fmt.Errorf("%w: decoding %q: %w", ErrLoadgen, line, err)
		}
		return nil
	case <-time.After(limit):
		return fmt.Errorf("%w: no answer in %s", ErrLoadgen, limit)
	}
}

// send writes one command line.
func (g *loadgen) send(format string, args ...any) error {
	if _, err := fmt.Fprintf(g.in, format+"\n", args...); err != nil {
		return fmt.Errorf("%w: writing command: %w", ErrLoadgen, err)
	}
	return nil
}

// stop asks the generator to quit and kills it after 10s. Unread lines are
// discarded so that the stdout reader can reach EOF.
func (g *loadgen) stop() {
	_ = g.send("quit")
	_ = g.in.Close()
	kill := time.After(10 * time.Second)
	lines := g.lines
	for {
		select {
		case <-g.done:
			return
		case _, ok := <-lines:
			if !ok {
				lines = nil
			}
		case <-kill:
			_ = g.cmd.Process.Kill()
		}
	}
}

func (g *loadgen) pid() int { return g.cmd.Process.Pid }

// connectedMsg is the generator's first line.
type connectedMsg struct {
	Connected int     `json:"connected"`
	Failed    int     `json:"failed"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error"`
	HandP50   float64 `json:"handshake_p50_ms"`
	HandP99   float64 `json:"handshake_p99_ms"`
}

// broadcastMsg answers `wait`.
type broadcastMsg struct {
	Type     string  `json:"type"`
	Error    string  `json:"error"`
	Seq      int64   `json:"seq"`
	Expected int64   `json:"expected"`
	Received int64   `json:"received"`
	LatNS    []int64 `json:"lat_ns"`
}

// summaryMsg answers `summary`.
type summaryMsg struct {
	Type       string         `json:"type"`
	Alive      int64          `json:"alive"`
	Closes     map[string]int `json:"closes"`
	Duplicates int64          `json:"duplicates"`
	Gaps       int64          `json:"gaps"`
	Missing    int64          `json:"missing"`
	Unparsed   int64          `json:"unparsed"`
	Resyncs    int64          `json:"resyncs"`
	CPUSeconds float64        `json:"cpu_seconds"`
}

// histMsg answers `hist`: latency buckets as [upper bound µs, count].
type histMsg struct {
	Type     string       `json:"type"`
	Error    string       `json:"error"`
	Received int64        `json:"received"`
	LatUS    [][2]float64 `json:"lat_us"`
}

// countMsg answers `count`.
type countMsg struct {
	Type     string `json:"type"`
	Error    string `json:"error"`
	Received int64  `json:"received"`
}
