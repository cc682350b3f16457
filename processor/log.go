package processor

import (
	"log/slog"
	"sync"
	"time"
)

// logLimiter writes repeated errors at most once per interval per message, counting the rest.
type logLimiter struct {
	log *slog.Logger
	mu  sync.Mutex
	// last and dropped are guarded by mu; written and read by whoever logs.
	last    map[string]time.Time
	dropped map[string]int
}

const logEvery = 10 * time.Second

func newLogLimiter(l *slog.Logger) *logLimiter {
	return &logLimiter{log: l, last: map[string]time.Time{}, dropped: map[string]int{}}
}

func (l *logLimiter) Error(msg string, err error, attrs ...any) {
	l.mu.Lock()
	now := time.Now()
	if t, ok := l.last[msg]; ok && now.Sub(t) < logEvery {
		l.dropped[msg]++
		l.mu.Unlock()
		return
	}
	n := l.dropped[msg]
	l.last[msg], l.dropped[msg] = now, 0
	l.mu.Unlock()
	attrs = append(attrs, slog.Any("err", err))
	if n > 0 {
		attrs = append(attrs, slog.Int("suppressed", n))
	}
	l.log.Error(msg, attrs...)
}
