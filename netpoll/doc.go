// Package netpoll keeps long-lived connections on an epoll instance and
// serves them with a small, bounded pool of worker goroutines, so that an
// idle connection costs a file descriptor in epoll and a small struct: no
// goroutine, no timer and no read buffer (invariant I4).
//
// A Poller owns three kinds of goroutines, all started by New and stopped and
// joined by Close: the easygo epoll wait loop (epoll.go: it only dispatches), the
// workers (they read, call the Handler, and flush output queues), and one
// timing-wheel goroutine (heartbeats, idle timeouts and close grace periods
// of every connection, with no timer per connection).
//
// Each Conn has a bounded output queue. Enqueue never blocks: it appends
// shared, immutable byte slices and schedules a flush. Workers write a
// connection's whole queue with one writev, so several queued frames cost one
// syscall. Reads are non-blocking: bytes that do not yet make a whole message
// stay with the connection (only those bytes), and the worker moves on (I5).
//
// TLS connections are polled through the raw descriptor of the connection
// under the *tls.Conn. Their reads go through crypto/tls with a short
// deadline, which crypto/tls survives (a timeout is a temporary error and the
// partial record stays buffered); writes are made only when the socket has
// room for them, so neither ever parks a worker for long.
//
// Fan-out lag is measured at the write (lag.go): each connection keeps the
// time its head frame was queued, on a coarse clock the wheel advances, so a
// monitor can ask how long frames wait (TakeWriteLag) and which connections
// hold the oldest and largest backlogs (Backlogs) without a timer or a
// goroutine per connection.
//
// Everything exported is goroutine-safe unless its comment says otherwise.
package netpoll
