package redis

import (
	"context"
	"fmt"

	"go.uber.org/zap"
)

// goredisLog routes go-redis's own log lines (dial failures during an
// outage, Sentinel master changes) to zap at debug level: the broker logs
// what matters to an operator itself, once per state change. go-redis has
// one logger per process, so the latest broker's wins.
type goredisLog struct{ log *zap.Logger }

func (l goredisLog) Printf(_ context.Context, format string, v ...any) {
	if ce := l.log.Check(zap.DebugLevel, "go-redis"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, v...)))
	}
}
