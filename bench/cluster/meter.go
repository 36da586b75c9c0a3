package main

import (
	"os"

	"github.com/pushgateway/push_gateway/bench/internal/procstat"
)

// loadgenName names this process (followers and publishers) in the CPU
// figures; redisName names redis-server. Nodes go by their own names.
const (
	loadgenName = "loadgen"
	redisName   = "redis"
)

// meter reads, around one measurement, the CPU time of every process
// taking part, Redis's command counts and the brokers' counters.
type meter struct {
	nodes  []*node
	redis  *redisServer // nil for the single node
	cpu    map[string]float64
	cmds   map[string]int64
	broker map[string][2]int64 // per node: publishes, round trips
}

// pids answers the processes to read the CPU time of, by name.
func (m *meter) pids() map[string]int {
	p := map[string]int{loadgenName: os.Getpid()}
	for _, n := range m.nodes {
		p[n.name] = n.Pid()
	}
	if m.redis != nil {
		p[redisName] = m.redis.Pid()
	}
	return p
}

func (m *meter) read() (cpu map[string]float64, cmds map[string]int64, broker map[string][2]int64, err error) {
	cpu = make(map[string]float64)
	for name, pid := range m.pids() {
		if cpu[name], err = procstat.CPUSeconds(pid); err != nil {
			return nil, nil, nil, err
		}
	}
	if m.redis != nil {
		if cmds, err = m.redis.commandStats(); err != nil {
			return nil, nil, nil, err
		}
	}
	broker = make(map[string][2]int64)
	for _, n := range m.nodes {
		st, err := n.stats()
		if err != nil {
			return nil, nil, nil, err
		}
		if p, rt, ok := st.brokerCounts(); ok {
			broker[n.name] = [2]int64{p, rt}
		}
	}
	return cpu, cmds, broker, nil
}

// start takes the figures a measurement begins from.
func (m *meter) start() error {
	var err error
	m.cpu, m.cmds, m.broker, err = m.read()
	return err
}

// finish reads the figures again and stores in r what they grew by per
// publish.
func (m *meter) finish(publishes int, r *Measurement) error {
	cpu, cmds, broker, err := m.read()
	if err != nil {
		return err
	}
	per := 1 / float64(max(publishes, 1))
	r.CPUPerPublishUs = make(map[string]float64)
	for name, s := range cpu {
		r.CPUPerPublishUs[name] = (s - m.cpu[name]) * 1e6 * per
	}
	if m.redis != nil {
		var total int64
		r.RedisCommands, total = commandDelta(m.cmds, cmds)
		r.RedisCommandsPerPublish = float64(total) * per
	}
	// Only when every node's broker reports its counters: a sum over some
	// of them would undercount.
	if len(broker) > 0 && len(broker) == len(m.nodes) {
		var pubs, rts int64
		for name, v := range broker {
			pubs += v[0] - m.broker[name][0]
			rts += v[1] - m.broker[name][1]
		}
		rtp := float64(rts) * per
		r.BrokerPublishes, r.BrokerRoundTripsPerPublish = pubs, &rtp
	}
	return nil
}
