// Package redistest starts real redis-server processes for tests: a single
// server (Start), a Redis Cluster of several masters (StartCluster) and a
// Sentinel watching a server (StartSentinel).
//
// Every server runs without persistence (--save "" --appendonly no) in a
// directory under tb.TempDir(), on 127.0.0.1 and a port picked below the
// kernel's ephemeral range like the integration harness does: a port from
// bind(:0) is soon some test connection's source port, and a restart on the
// same port (Restart) would then fail. A cluster node also needs its bus
// port, port+10000, which is checked too.
//
// tb.Cleanup kills every process a test started. Kill and Restart simulate
// an outage: Restart brings the server back on the same port with its data
// gone, as a redis-server without persistence comes back after a crash.
//
// A Server's methods are meant for the test goroutine; Do and Client are
// safe to call from several goroutines.
package redistest
