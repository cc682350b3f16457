package queue

import (
	"fmt"
	"time"

	"github.com/rateltd/rateltd/config"
)

// encodeLimit writes a limit for the runtime configuration hash:
// "algorithm,max,window µs,burst,max queue,queue timeout ms,overflow".
func encodeLimit(l config.Limit) string {
	return fmt.Sprintf("%d,%d,%d,%d,%d,%d,%d", int(l.Algorithm), l.Max, l.Window.Microseconds(), l.Burst,
		l.MaxQueue, l.QueueTimeout.Milliseconds(), int(l.Overflow))
}

func decodeLimit(s string) (config.Limit, error) {
	var alg, ovf int
	var win, qt int64
	var l config.Limit
	if _, err := fmt.Sscanf(s, "%d,%d,%d,%d,%d,%d,%d", &alg, &l.Max, &win, &l.Burst, &l.MaxQueue, &qt, &ovf); err != nil {
		return l, fmt.Errorf("queue: limit %q: %w", s, err)
	}
	l.Algorithm, l.Window, l.QueueTimeout, l.Overflow = config.Algorithm(alg), time.Duration(win)*time.Microsecond, time.Duration(qt)*time.Millisecond, config.Overflow(ovf)
	if err := l.Validate("limit"); err != nil {
		return l, err
	}
	return l, nil
}
