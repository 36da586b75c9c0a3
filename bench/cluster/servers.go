package main

import (
	"errors"
	"fmt"
	"log"
	"slices"
	"time"
)

// servers is every process of the run, started once: the single node and
// the cluster (redis-server, nodes a and b) stay up together, so that the
// runs can alternate between the configurations and a spell of load from
// elsewhere on the machine falls on both alike. An idle configuration
// costs the other next to nothing.
type servers struct {
	single  *meter // the single node, as node "a"
	cluster *meter // nodes a and b and redis-server
	stops   []func()
}

// startServers starts what configs need; on failure it stops what it
// started.
func startServers(bin, dir string, o options) (_ *servers, err error) {
	s := &servers{}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if slices.Contains(o.configs, configSingle) {
		n, err := startNode(bin, dir, "single", "")
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, n.Stop)
		n.name = "a"
		s.single = &meter{nodes: []*node{n}}
	}
	if slices.Contains(o.configs, configCluster) {
		r, err := startRedis(o.redisBin, dir)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, r.Stop)
		s.cluster = &meter{redis: r}
		for _, name := range []string{"a", "b"} {
			n, err := startNode(bin, dir, name, r.url())
			if err != nil {
				return nil, err
			}
			s.stops = append(s.stops, n.Stop)
			s.cluster.nodes = append(s.cluster.nodes, n)
		}
	}
	return s, nil
}

// stop stops every server, the last started first. The admin client's
// idle connections go first: one the transport dialled but never used
// holds an admin endpoint's shutdown for 5s.
func (s *servers) stop() {
	adminClient.CloseIdleConnections()
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// measure runs one repetition of config's measurements. A measurement
// that fails is recorded with its error and the others still run.
func (s *servers) measure(config string, run int, o options) []Measurement {
	var out []Measurement
	m := s.single
	if config == configCluster {
		m = s.cluster
	}
	a := m.nodes[0]
	if config == configSingle {
		out = append(out, latency(m, scenarioSingle, a, a, run, o))
	} else {
		b := m.nodes[1]
		out = append(out, latency(m, scenarioSameNode, a, a, run, o), latency(m, scenarioCrossNode, b, a, run, o))
	}
	for _, p := range o.publishers {
		out = append(out, throughput(m, config, a, p, run, o))
	}
	return out
}

// probe watches a few publishes to the cluster's node a with MONITOR.
func (s *servers) probe() *Probe {
	if s.cluster == nil {
		return nil
	}
	a := s.cluster.nodes[0]
	key := fmt.Sprintf("probe-%d", time.Now().UnixNano())
	p := s.cluster.redis.probe(probePublishes, func(i int) error {
		_, err := a.publish(key, i)
		return err
	})
	if p.Error != "" {
		log.Printf("redis probe: %s", p.Error)
	} else {
		log.Printf("redis probe: %.2f client commands/publish %v, %.2f script commands/publish %v",
			p.ClientPerPublish, p.Client, p.ScriptPerPublish, p.Script)
	}
	return &p
}

// ErrServerExited is returned when a server is gone during the run.
var ErrServerExited = errors.New("server exited")

// alive fails once any server has exited: the measurements after it would
// only repeat the failure.
func (s *servers) alive() error {
	for _, m := range []*meter{s.single, s.cluster} {
		if m == nil {
			continue
		}
		for _, n := range m.nodes {
			select {
			case <-n.Exited():
				return fmt.Errorf("%w: node %s: %s", ErrServerExited, n.name, n.LogTail())
			default:
			}
		}
		if m.redis != nil {
			select {
			case <-m.redis.Exited():
				return fmt.Errorf("%w: redis-server: %s", ErrServerExited, m.redis.LogTail())
			default:
			}
		}
	}
	return nil
}
