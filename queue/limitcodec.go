package queue

import (
	"fmt"
	"strings"
	"time"

	"github.com/rateltd/rateltd/config"
)

// encodeLimit writes a limit for the runtime configuration hash:
// "algorithm,max,window µs,burst,max queue,queue timeout ms,overflow", then, when the main rate
// counts units, the limit has further rates, a concurrency cap or is a shadow limit,
// ",units,concurrency,shadow,adaptive,max queue per tenant" (units, shadow and adaptive 0 or 1)
// and for each further rate ";max,window µs,burst,units", and last, when tenants have weights,
// "|" and config.Limit.TenantWeights. A node of an earlier version reads the first seven
// numbers (or nine) and ignores the rest.
func encodeLimit(l config.Limit) string {
	s := fmt.Sprintf("%d,%d,%d,%d,%d,%d,%d", int(l.Algorithm), l.Max, l.Window.Microseconds(), l.Burst,
		l.MaxQueue, l.QueueTimeout.Milliseconds(), int(l.Overflow))
	if !l.Complex() && !l.Adaptive && l.TenantWeights == "" {
		return s
	}
	var b strings.Builder
	b.WriteString(s)
	fmt.Fprintf(&b, ",%d,%d,%d,%d,%d", b2i(l.Units), l.Concurrency, b2i(l.Shadow), b2i(l.Adaptive), l.MaxQueuePerTenant)
	for _, r := range l.InUse() {
		fmt.Fprintf(&b, ";%d,%d,%d,%d", r.Max, r.Window.Microseconds(), r.Burst, b2i(r.Units))
	}
	if l.TenantWeights != "" {
		b.WriteString("|" + l.TenantWeights)
	}
	return b.String()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func decodeLimit(s string) (config.Limit, error) {
	var alg, ovf int
	var win, qt int64
	var l config.Limit
	s, l.TenantWeights, _ = strings.Cut(s, "|")
	parts := strings.Split(s, ";")
	if len(parts) > 1+config.MaxAlso {
		return l, fmt.Errorf("queue: limit %q: %d rates", s, len(parts))
	}
	main := strings.Split(parts[0], ",")
	var units int
	if len(main) >= 8 {
		if _, err := fmt.Sscanf(main[7], "%d", &units); err != nil {
			return l, fmt.Errorf("queue: limit %q: %w", s, err)
		}
	}
	if len(main) >= 9 {
		if _, err := fmt.Sscanf(main[8], "%d", &l.Concurrency); err != nil {
			return l, fmt.Errorf("queue: limit %q: %w", s, err)
		}
	}
	var shadow, adaptive int
	if len(main) >= 10 {
		if _, err := fmt.Sscanf(main[9], "%d", &shadow); err != nil {
			return l, fmt.Errorf("queue: limit %q: %w", s, err)
		}
	}
	if len(main) >= 11 {
		if _, err := fmt.Sscanf(main[10], "%d", &adaptive); err != nil {
			return l, fmt.Errorf("queue: limit %q: %w", s, err)
		}
	}
	if len(main) >= 12 {
		if _, err := fmt.Sscanf(main[11], "%d", &l.MaxQueuePerTenant); err != nil {
			return l, fmt.Errorf("queue: limit %q: %w", s, err)
		}
	}
	if _, err := fmt.Sscanf(parts[0], "%d,%d,%d,%d,%d,%d,%d", &alg, &l.Max, &win, &l.Burst, &l.MaxQueue, &qt, &ovf); err != nil {
		return l, fmt.Errorf("queue: limit %q: %w", s, err)
	}
	l.Algorithm, l.Window, l.QueueTimeout, l.Overflow = config.Algorithm(alg), time.Duration(win)*time.Microsecond, time.Duration(qt)*time.Millisecond, config.Overflow(ovf)
	l.Units, l.Shadow, l.Adaptive = units == 1, shadow == 1, adaptive == 1
	for i, p := range parts[1:] {
		var r config.Rate
		var rw int64
		var ru int
		if _, err := fmt.Sscanf(p, "%d,%d,%d,%d", &r.Max, &rw, &r.Burst, &ru); err != nil {
			return l, fmt.Errorf("queue: limit %q: rate %d: %w", s, i+1, err)
		}
		r.Window, r.Units = time.Duration(rw)*time.Microsecond, ru == 1
		l.Also[i] = r
	}
	if err := l.Validate("limit"); err != nil {
		return l, err
	}
	return l, nil
}
