package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// INFO commandstats counts the commands a Lua script runs as well as the
// EVALSHA that ran it, so its counts alone cannot tell round trips from
// work inside Redis. The probe tells them apart with MONITOR, which names
// a script's commands' source "lua": it watches a few publishes, outside
// every timed measurement since MONITOR slows Redis down.

// probeMarker is echoed once the probe's publishes are done: when MONITOR
// shows it, every command they caused has been shown.
const probeMarker = "pushgw-bench-probe-end"

// Probe is what MONITOR showed of Publishes publishes to node a.
type Probe struct {
	Publishes int `json:"publishes"`
	// Commands per publish sent by clients (the nodes), each a round trip
	// or part of a pipeline, and those run by Lua scripts, by command.
	ClientPerPublish float64            `json:"client_commands_per_publish"`
	ScriptPerPublish float64            `json:"script_commands_per_publish"`
	Client           map[string]float64 `json:"client_commands"`
	Script           map[string]float64 `json:"script_commands"`
	Error            string             `json:"error,omitempty"`
}

// probe runs publish count times with MONITOR on and sorts what Redis
// ran by source.
func (r *redisServer) probe(count int, publish func(i int) error) Probe {
	p := Probe{Publishes: count}
	if err := r.probeInto(&p, publish); err != nil {
		p.Error = err.Error()
	}
	return p
}

func (r *redisServer) probeInto(p *Probe, publish func(i int) error) error {
	conn, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dialing redis: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(conn, "*1\r\n$7\r\nMONITOR\r\n"); err != nil {
		return fmt.Errorf("starting MONITOR: %w", err)
	}
	br := bufio.NewReader(conn)
	if ok, err := readReply(br); err != nil || ok != "OK" {
		return fmt.Errorf("starting MONITOR: %q, %w", ok, err)
	}
	for i := 1; i <= p.Publishes; i++ {
		if err := publish(i); err != nil {
			return err
		}
	}
	if _, err := r.do("ECHO", probeMarker); err != nil {
		return err
	}
	client, script := make(map[string]int64), make(map[string]int64)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading MONITOR: %w", err)
		}
		src, cmd, ok := parseMonitorLine(line)
		if !ok {
			continue
		}
		if cmd == "echo" && strings.Contains(line, probeMarker) {
			break
		}
		if src == "lua" {
			script[cmd]++
		} else {
			client[cmd]++
		}
	}
	p.Client, p.ClientPerPublish = perPublish(client, p.Publishes)
	p.Script, p.ScriptPerPublish = perPublish(script, p.Publishes)
	return nil
}

// parseMonitorLine reads `+1700000000.123456 [0 127.0.0.1:5555] "evalsha" …`
// (the source is "lua" for a script's commands) into the source and the
// command's lower-case name.
func parseMonitorLine(line string) (src, cmd string, ok bool) {
	_, rest, ok := strings.Cut(line, "[")
	if !ok {
		return "", "", false
	}
	inside, rest, ok := strings.Cut(rest, "]")
	if !ok {
		return "", "", false
	}
	_, src, ok = strings.Cut(inside, " ")
	if !ok {
		return "", "", false
	}
	rest = strings.TrimSpace(rest)
	if !strings.HasPrefix(rest, `"`) {
		return "", "", false
	}
	name, _, ok := strings.Cut(rest[1:], `"`)
	if !ok {
		return "", "", false
	}
	return src, strings.ToLower(name), true
}

// perPublish divides counts by publishes, per command and in all.
func perPublish(counts map[string]int64, publishes int) (map[string]float64, float64) {
	out := make(map[string]float64, len(counts))
	var total int64
	for k, n := range counts {
		out[k] = float64(n) / float64(max(publishes, 1))
		total += n
	}
	return out, float64(total) / float64(max(publishes, 1))
}
