package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
}

// startLoadgen runs bin holding n connections to url from source addresses
// starting at ipOffset.
func startLoadgen(bin, url string, n, ipOffset, maxSeq int, logf *os.File) (*loadgen, error) {
	cmd := exec.Command(bin, "-url", url, "-n", fmt.Sprint(n), "-ip-offset", fmt.Sprint(ipOffset),
		"-max-seq", fmt.Sprint(maxSeq))
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
	g := &loadgen{cmd: cmd, in: in, lines: make(chan []byte, 4), done: make(chan struct{})}
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
	CPUSeconds float64        `json:"cpu_seconds"`
}
