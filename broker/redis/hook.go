package redis

import (
	"context"
	"net"

	goredis "github.com/redis/go-redis/v9"
)

// countHook counts round trips (a command, or a pipeline sent at once) and
// keeps the broker's state current from every answer or failure.
type countHook struct{ b *Broker }

func (h countHook) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			h.b.observe(err)
		}
		return conn, err
	}
}

func (h countHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.b.roundTrips.Add(1)
		err := next(ctx, cmd)
		h.b.observe(err)
		return err
	}
}

func (h countHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.b.roundTrips.Add(1)
		err := next(ctx, cmds)
		h.b.observe(err) // the first command's error, if any
		return err
	}
}
