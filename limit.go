package rateltd

import (
	"fmt"
	"time"

	"github.com/rateltd/rateltd/config"
)

// Limit is the rate limit of a key and the settings of its line. The zero value is invalid:
// Max and Window are required, unless the limit is a concurrency cap alone. A Limit is a plain value, safe to copy.
type Limit struct {
	// Algorithm is how the window is kept. Defaults to SlidingWindow.
	Algorithm Algorithm
	// Max is how many executions may start per Window. Required, at least 1.
	Max int
	// Window is the length of the window, at least 1ms and at most 7 days. Required.
	Window time.Duration
	// Burst is, for TokenBucket only, how many executions may start at once after a quiet
	// period. Defaults to Max. Must be 0 for the other algorithms.
	Burst int
	// Units makes Max count cost units (see WithCost) rather than requests: with Units, a
	// request of cost 5 uses 5 of Max. Defaults to false: Max counts requests, whatever
	// their cost.
	Units bool
	// Also holds the key's further rates, at most 4, each kept by the key's Algorithm: a
	// request starts only when the main rate and every rate of Also admit it at that moment,
	// and none is charged otherwise. For example 500 requests and 30,000 tokens a minute:
	//
	//	Limit{Max: 500, Window: time.Minute,
	//		Also: []Rate{{Max: 30_000, Window: time.Minute, Units: true}}}
	//
	// Defaults to none.
	Also []Rate
	// Concurrency caps how many of the key's requests and durable jobs run at once, across all
	// nodes: a start needs a free slot as well as every rate. A slot is held from the grant
	// until fn (or the handler) returns; it lives with its node's heartbeat, so a slow call
	// keeps it and a killed node's slots come back when its heartbeat lapses. A freed slot
	// starts the head of the line at once. Alone, with Max, Window and Also zero, the key has
	// no rate: Limit{Concurrency: 10}. Defaults to 0: no cap.
	Concurrency int
	// Adaptive makes the rates in force follow the upstream (AIMD): an upstream's refusal — fn
	// or a handler returning a RetryAfterError, or a 429 given to Observe — halves every rate's
	// Max (and Burst) cluster-wide, down to 1; an upstream that states a lower limit of its
	// own (x-ratelimit-limit-*, RateLimit-Policy) to Observe brings the key down to it; each
	// window with successes and no refusal raises it by a tenth of the configured one, never
	// above it. Status.Effective shows the limit in force beside Status.Limit. Defaults to
	// false.
	Adaptive bool
	// MaxQueue is how many requests may wait in the key's line, across all priorities.
	// -1 means never queue: over the limit a request fails at once with ErrQueueFull.
	// Defaults to 1000.
	MaxQueue int
	// QueueTimeout is the longest a request waits in line; a shorter ctx deadline or
	// WithTimeout wins. Defaults to 30s.
	QueueTimeout time.Duration
	// Overflow is what a full line does with a newcomer. Defaults to Reject.
	Overflow Overflow
	// Shadow watches the limit without enforcing it, to roll a limit out and see what it
	// would do before it binds: every request on the key runs at once (a pause still holds
	// it), and is recorded in the key's windows as a grant is, so that they hold the real
	// traffic. What the limit would have done with each request is counted in
	// Status.Counters.Shadow: allowed, queued (with the wait it would have had) or refused.
	// Durable jobs on the key run as soon as a worker is free, as if unlimited. Turn it off
	// (SetLimit) and the limit binds at once. Defaults to false: the limit binds.
	Shadow bool
	// TenantWeights weighs the tenants' shares of the key's line (see WithTenant): a tenant of
	// weight 3 is served three requests (or cost units) for each one of a tenant of weight 1,
	// while both have requests waiting. Names are 1 to 64 bytes without control characters,
	// ',', '=', '{' or '}'; weights from 1 to 1000. Defaults to none: every tenant weighs 1.
	TenantWeights map[string]int
	// MaxQueuePerTenant bounds how many requests and durable jobs one tenant (WithTenant) may
	// have waiting in the key's line; past it, its newcomers fail with ErrQueueFull while the
	// other tenants still queue. MaxQueue still bounds the whole line. Defaults to 0: no bound
	// but MaxQueue.
	MaxQueuePerTenant int
}

// Rate is one further rate of a key's limit (Limit.Also).
type Rate struct {
	// Max is how much may start per Window: requests, or cost units when Units is set.
	// Required, at least 1.
	Max int
	// Window is the rate's window, at least 1ms and at most 7 days. Required.
	Window time.Duration
	// Burst is, for TokenBucket only, how much may start at once after a quiet period.
	// Defaults to Max.
	Burst int
	// Units makes the rate count cost units (WithCost, Settle) rather than requests.
	// Defaults to false.
	Units bool
}

// WithDefaults returns l with every zero field that has a default filled in: MaxQueue 1000,
// QueueTimeout 30s, and for TokenBucket a Burst of Max (in each rate).
func (l Limit) WithDefaults() Limit {
	d := limitOf(l.engine().WithDefaults())
	if len(l.Also) > config.MaxAlso {
		d.Also = append(d.Also, l.Also[config.MaxAlso:]...) // kept for Validate to refuse
	}
	return d
}

// Validate reports the first field of l that is out of range, naming it (Limit.Max, say). The
// error satisfies errors.Is(err, ErrInvalidConfig).
func (l Limit) Validate() error { return l.validate("Limit") }

// ValidateAs is Validate naming the fields under field (limits.openai.Max, say), for limits
// read from a file or a request.
func (l Limit) ValidateAs(field string) error { return l.validate(field) }

func (l Limit) validate(field string) error {
	if len(l.Also) > config.MaxAlso {
		return fmt.Errorf("%w: %s.Also: holds at most %d rates, got %d", ErrInvalidConfig, field, config.MaxAlso, len(l.Also))
	}
	for i, r := range l.Also {
		if r == (Rate{}) {
			return fmt.Errorf("%w: %s.Also[%d]: Max must be at least 1, got 0", ErrInvalidConfig, field, i)
		}
	}
	if _, err := config.WeightsString(l.TenantWeights); err != nil {
		return fmt.Errorf("%s.TenantWeights: %w", field, err)
	}
	return l.engine().Validate(field)
}

// engine is l as the engine takes it.
func (l Limit) engine() config.Limit {
	e := config.Limit{Algorithm: l.Algorithm, Max: l.Max, Window: l.Window, Burst: l.Burst, Units: l.Units,
		MaxQueue: l.MaxQueue, QueueTimeout: l.QueueTimeout, Overflow: l.Overflow, Concurrency: l.Concurrency, Shadow: l.Shadow,
		Adaptive: l.Adaptive, MaxQueuePerTenant: l.MaxQueuePerTenant}
	e.TenantWeights, _ = config.WeightsString(l.TenantWeights) // Validate reports an error
	for i, r := range l.Also[:min(len(l.Also), config.MaxAlso)] {
		e.Also[i] = config.Rate(r)
	}
	return e
}

// limitOf is the engine's limit e as a Limit.
func limitOf(e config.Limit) Limit {
	l := Limit{Algorithm: e.Algorithm, Max: e.Max, Window: e.Window, Burst: e.Burst, Units: e.Units,
		MaxQueue: e.MaxQueue, QueueTimeout: e.QueueTimeout, Overflow: e.Overflow, Concurrency: e.Concurrency, Shadow: e.Shadow,
		Adaptive: e.Adaptive, MaxQueuePerTenant: e.MaxQueuePerTenant, TenantWeights: e.Weights()}
	for _, r := range e.InUse() {
		l.Also = append(l.Also, Rate(r))
	}
	return l
}

// isZero reports whether l is the zero Limit.
func (l Limit) isZero() bool {
	return l.engine() == config.Limit{} && len(l.Also) == 0 && len(l.TenantWeights) == 0
}
