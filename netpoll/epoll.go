package netpoll

import (
	"fmt"

	easy "github.com/mailru/easygo/netpoll"
)

// epoll is the poller's epoll instance: easygo's, which runs the wait loop
// on its own goroutine and calls each descriptor's callback with the events
// that came. The callback only schedules work on the workers (onEvent).
//
// easygo keeps one callback per descriptor in a map, about 65 bytes of an
// idle connection (the map entry and the method value); a hand-written wait
// loop reading the poller's descriptor table would save them, but the
// gateway is built on easygo's poller by design, and the other per
// connection savings (struct layout, pooled queues) already bring an idle
// WebSocket under 1 KiB.
type epoll struct{ ep *easy.Epoll }

// connEvents are the events every connection waits for, edge-triggered:
// the workers read and write until EAGAIN, and a connection is never
// re-armed.
const connEvents = easy.EPOLLIN | easy.EPOLLOUT | easy.EPOLLRDHUP | easy.EPOLLET

func newEpoll(onError func(error)) (*epoll, error) {
	ep, err := easy.EpollCreate(&easy.EpollConfig{OnWaitError: onError})
	if err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	return &epoll{ep: ep}, nil
}

// add registers c's descriptor.
func (e *epoll) add(c *Conn) error {
	return e.ep.Add(int(c.fd), connEvents, c.onEpollEvent)
}

// del removes a descriptor; it must be called before the descriptor is
// closed.
func (e *epoll) del(fd int) error { return e.ep.Del(fd) }

// close stops the wait loop and closes the instance.
func (e *epoll) close() { _ = e.ep.Close() }

// onEpollEvent adapts easygo's event type to onEvent: easygo's EPOLL*
// constants are the kernel's values.
func (c *Conn) onEpollEvent(ev easy.EpollEvent) { c.onEvent(uint32(ev)) }
