package rateltd

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/processor"
)

// Config configures a Client. The zero value is usable: an in-process backend, the default
// limit for every key. A Config is read once by New; changing it afterwards has no effect.
type Config struct {
	// Redis is the client of the Redis that holds the shared state: one Redis
	// (*redis.Client), one behind Sentinel (a failover client) or a Redis Cluster
	// (*redis.ClusterClient). A *redis.Ring is refused: its pub/sub, script loading and SCAN
	// reach one shard only. It is never closed by rateltd. Defaults to nil: an in-process
	// backend, for one process.
	Redis redis.UniversalClient
	// Prefix starts every Redis key rateltd writes. Defaults to "rateltd".
	Prefix string
	// Limits holds limits by exact key and by group (the text of a key before its first ':').
	// A key's limit is, in order: Limits[key], a limit set with SetLimit, Limits[group],
	// Default. Defaults to none.
	Limits map[string]Limit
	// Default is the limit of keys that have no other. Defaults to 100 per minute.
	Default Limit
	// BatchSize is how many waiting requests of one key the processor grants in one step, at
	// most MaxBatchSize (1000).
	// Defaults to 100.
	BatchSize int
	// PollInterval is how often the processor looks for work even when nothing woke it:
	// a safety net, since wake-ups travel by pub/sub, which may lose messages. Defaults to 1s.
	PollInterval time.Duration
	// ClaimTimeout is how long a grant made for a request waiting on another node stays
	// reserved for it; unclaimed after that (its node died), it is given back to the window.
	// Defaults to 5s. Must be longer than PollInterval.
	ClaimTimeout time.Duration
	// StatsTTL is how long a key's counters are kept after its last activity. Defaults to 1h.
	StatsTTL time.Duration
	// IndexShards is how many Redis keys the index of active keys is spread over. Defaults to 16.
	IndexShards int
	// Logger receives the processor's warnings and errors. Defaults to slog.Default().
	Logger *slog.Logger
	// Observer is told how every request ended (for metrics); if it is also a JobObserver, how
	// every run of a durable job here ended, and if a SettleObserver, of every grant settled.
	// Defaults to nil: none.
	Observer Observer
	// TracerProvider makes the OpenTelemetry spans of requests (rateltd.request), enqueues
	// (rateltd.enqueue) and runs of durable jobs (rateltd.job); see "Traces" in the package
	// doc. Defaults to nil: otel.GetTracerProvider(), the global one, also when it is set
	// after New; no span is made while that is the default, which drops them.
	TracerProvider trace.TracerProvider
	// OnRedisError says what a request does when Redis cannot be reached. Defaults to
	// FailClosed.
	OnRedisError FailMode
	// ExpectedNodes is how many nodes usually share the limits; under FailLocal each node
	// allows Max / ExpectedNodes on its own while Redis is unreachable. Defaults to 1.
	ExpectedNodes int

	// Workers is how many durable jobs this node runs at once; it takes a job from a line
	// only when a worker is free. A worker is free once its handler has returned, while the
	// run's end is still being recorded (on a key with a concurrency cap, once it is recorded).
	// Defaults to 16.
	Workers int
	// LeaseTimeout is how long a running durable job stays its node's without word from it.
	// The node renews the lease every third of it while the handler runs; when the node dies,
	// another node runs the job again once the lease has lapsed. Defaults to 30s.
	LeaseTimeout time.Duration
	// ResultTTL is how long a durable job's result is kept for Wait. Defaults to 24h.
	ResultTTL time.Duration
	// MaxPayload bounds a durable job's payload and its result, in bytes. Defaults to 1 MiB.
	MaxPayload int
	// RetryBackoff is the wait before a failed durable job's first retry; each further one
	// waits twice as long (at most MaxRetryBackoff), less a random part of up to half.
	// Defaults to 1s.
	RetryBackoff time.Duration

	// ShutdownTimeout is how long Close gives the fns and durable job handlers running when it
	// is called to return before it cancels their contexts: Close is Shutdown with a context
	// that ends after ShutdownTimeout. Must be positive (to stop at once, call Shutdown with a
	// cancelled context). Defaults to 10s.
	ShutdownTimeout time.Duration
}

// FailMode is what a request does when Redis cannot be reached.
type FailMode int

const (
	// FailClosed: the request fails with ErrUnavailable, by its deadline; fn does not run.
	FailClosed FailMode = iota
	// FailOpen: fn runs, unlimited.
	FailOpen
	// FailLocal: fn runs under an in-process limit of Max / ExpectedNodes per key (at least 1),
	// waiting for it within the request's deadline; no line, no priorities.
	FailLocal
)

// WithDefaults returns c with every zero field that has a default filled in.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = config.DefaultPrefix
	}
	if c.Default.isZero() {
		c.Default = limitOf(config.DefaultLimit)
	}
	if c.BatchSize == 0 {
		c.BatchSize = config.DefaultBatchSize
	}
	if c.PollInterval == 0 {
		c.PollInterval = config.DefaultPollInterval
	}
	if c.ClaimTimeout == 0 {
		c.ClaimTimeout = max(config.DefaultClaimTimeout, 3*c.PollInterval)
	}
	if c.ExpectedNodes == 0 {
		c.ExpectedNodes = 1
	}
	if c.StatsTTL == 0 {
		c.StatsTTL = config.DefaultStatsTTL
	}
	if c.IndexShards == 0 {
		c.IndexShards = config.DefaultIndexShards
	}
	if c.Workers == 0 {
		c.Workers = config.DefaultWorkers
	}
	if c.LeaseTimeout == 0 {
		c.LeaseTimeout = config.DefaultLeaseTimeout
	}
	if c.ResultTTL == 0 {
		c.ResultTTL = config.DefaultResultTTL
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = config.DefaultMaxPayload
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = config.DefaultRetryBackoff
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = config.DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field of c that is out of range, naming it; New calls it on c
// with its defaults filled in (WithDefaults). The error satisfies
// errors.Is(err, ErrInvalidConfig).
func (c Config) Validate() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%w: Config.%s: %s", ErrInvalidConfig, name, fmt.Sprintf(format, args...))
	}
	if _, ring := c.Redis.(*redis.Ring); ring {
		return bad("Redis", "a *redis.Ring is not supported: its pub/sub, script loading and SCAN reach one shard "+
			"only, so wake-ups, scripts and key listings would miss the others; use one Redis, Sentinel or a Redis Cluster")
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return bad("Prefix", "must not contain '{' or '}', got %q", c.Prefix)
	}
	if err := c.Default.validate("Config.Default"); err != nil {
		return err
	}
	for name, l := range c.Limits {
		if err := config.ValidateKey(name); err != nil {
			return bad("Limits", "name %q: %v", name, err)
		}
		if err := l.validate(fmt.Sprintf("Config.Limits[%q]", name)); err != nil {
			return err
		}
	}
	return c.validateSettings(bad)
}

// validateSettings is Validate for the fields that are plain numbers and durations.
func (c Config) validateSettings(bad func(name, format string, args ...any) error) error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > config.MaxBatchSize:
		return bad("BatchSize", "must be 1 to %d, got %d", config.MaxBatchSize, c.BatchSize)
	case c.PollInterval < time.Millisecond:
		return bad("PollInterval", "must be at least 1ms, got %v", c.PollInterval)
	case c.ClaimTimeout <= c.PollInterval:
		return bad("ClaimTimeout", "must be longer than PollInterval (%v), got %v", c.PollInterval, c.ClaimTimeout)
	case c.StatsTTL < time.Second:
		return bad("StatsTTL", "must be at least 1s, got %v", c.StatsTTL)
	case c.IndexShards < 1 || c.IndexShards > 1024:
		return bad("IndexShards", "must be from 1 to 1024, got %d", c.IndexShards)
	case c.OnRedisError < FailClosed || c.OnRedisError > FailLocal:
		return bad("OnRedisError", "unknown fail mode %d", int(c.OnRedisError))
	case c.ExpectedNodes < 1:
		return bad("ExpectedNodes", "must be at least 1, got %d", c.ExpectedNodes)
	case c.Workers < 1 || c.Workers > 10000:
		return bad("Workers", "must be from 1 to 10000, got %d", c.Workers)
	case c.LeaseTimeout < 100*time.Millisecond:
		return bad("LeaseTimeout", "must be at least 100ms, got %v", c.LeaseTimeout)
	case c.ResultTTL < time.Second:
		return bad("ResultTTL", "must be at least 1s, got %v", c.ResultTTL)
	case c.MaxPayload < 1 || c.MaxPayload > 512<<20:
		return bad("MaxPayload", "must be from 1 byte to 512 MiB, got %d", c.MaxPayload)
	case c.RetryBackoff < time.Millisecond || c.RetryBackoff > config.MaxRetryBackoff:
		return bad("RetryBackoff", "must be from 1ms to %v, got %v", config.MaxRetryBackoff, c.RetryBackoff)
	case c.ShutdownTimeout < 0:
		return bad("ShutdownTimeout", "must be positive, got %v", c.ShutdownTimeout)
	}
	return nil
}

// options is what the processor needs of c, which has its defaults filled in.
func (c Config) options() processor.Options {
	o := processor.Options{
		Limits: make(map[string]config.Limit, len(c.Limits)), Default: c.Default.engine(),
		BatchSize: c.BatchSize, PollInterval: c.PollInterval, ClaimTimeout: c.ClaimTimeout, StatsTTL: c.StatsTTL,
		Logger: c.Logger, Workers: c.Workers, LeaseTimeout: c.LeaseTimeout, ResultTTL: c.ResultTTL,
		MaxPayload: c.MaxPayload, RetryBackoff: c.RetryBackoff,
	}
	for name, l := range c.Limits {
		o.Limits[name] = l.engine()
	}
	if jo, ok := c.Observer.(JobObserver); ok {
		o.ObserveJob = func(r processor.JobRun) { jo.ObserveJob(jobEvent(r)) }
	}
	return o
}
