// Command cluster measures what cluster mode on Redis costs against a
// single node, in one run:
//
//	go run ./bench/cluster -out docs/bench/cluster
//
// It builds caddy from ./cmd/caddy (or takes -gateway-bin), starts a
// redis-server of its own (from -redis-server, on a free port, without
// persistence) and two configurations, which stay up throughout:
//
//   - single: one caddy with the in-process hub, no broker;
//   - cluster: two caddy nodes, a and b, with `broker redis` on that
//     Redis, node_id and node_address set.
//
// For each of -runs repetitions, alternating between the configurations so
// that load from elsewhere on the machine falls on both alike, it
// measures:
//
//  1. publish→deliver latency: -followers native WebSocket clients follow
//     a fresh key on node a (on the single node); after -warmup publishes
//     that must each reach every client, a publisher posts to the admin
//     API at -rate per second for -duration, each message stamped with the
//     wall clock ({"i":<index>,"t":<unix ns>}), and every client records
//     its receipt's delay. In the cluster this runs twice: published on a
//     (same node, through Redis) and on b (across nodes);
//  2. publish throughput: 1, 8 and 32 (-publishers) concurrent publishers
//     on keep-alive connections, each to a key of its own without
//     followers, post -throughput-publishes in all as fast as answers
//     come: publishes per second and the admin's answer time;
//
// and around each of them the CPU time (utime+stime) of every node, of
// redis-server and of this process, per publish; Redis's INFO
// commandstats (commands per publish, by command); and, when the nodes'
// /push_gateway/stats has a "broker" object with "publishes" and
// "round_trips", the broker's own round trips per publish. Since INFO
// counts a Lua script's commands as well as the EVALSHA that ran them,
// the first run also watches 200 publishes with MONITOR (outside the
// timed measurements) to tell the commands the nodes send from those
// their scripts run. Every figure reported is the median over the runs;
// results.json keeps the runs too, and the machine's load average.
//
// Clients and publishers run in this process, on the same two cores as
// the servers: the figures compare configurations on this machine, they
// are not what a deployment on separate machines would see. Every wait is
// bounded; -quick runs a short version (used by the package's test).
package main
