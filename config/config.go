package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultPrefix    = "rateltd"
	DefaultBatchSize = 100
	// MaxBatchSize bounds BatchSize: one grant step records its grants in one Redis call,
	// whose arguments Lua's stack must hold.
	MaxBatchSize        = 1000
	DefaultPollInterval = time.Second
	DefaultClaimTimeout = 5 * time.Second
	DefaultStatsTTL     = time.Hour
	DefaultIndexShards  = 16
	// Durable jobs.
	DefaultWorkers      = 16
	DefaultLeaseTimeout = 30 * time.Second
	DefaultResultTTL    = 24 * time.Hour
	DefaultMaxPayload   = 1 << 20
	DefaultRetryBackoff = time.Second
	// DefaultShutdownTimeout is how long Close lets running work finish.
	DefaultShutdownTimeout = 10 * time.Second
	// MaxRetryBackoff caps the backoff between a durable job's attempts.
	MaxRetryBackoff = 10 * time.Minute
)

// DefaultLimit is Config.Default when none is given: 100 per minute.
var DefaultLimit = Limit{Max: 100, Window: time.Minute}

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
	// most MaxBatchSize.
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
	// Observer is told how every request ended (for metrics). Defaults to nil: none.
	Observer Observer
	// OnRedisError says what a request does when Redis cannot be reached. Defaults to
	// FailClosed.
	OnRedisError FailMode
	// ExpectedNodes is how many nodes usually share the limits; under FailLocal each node
	// allows Max / ExpectedNodes on its own while Redis is unreachable. Defaults to 1.
	ExpectedNodes int

	// Workers is how many durable jobs this node runs at once; it takes a job from a line
	// only when a worker is free. Defaults to 16.
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
		c.Prefix = DefaultPrefix
	}
	if c.Default == (Limit{}) {
		c.Default = DefaultLimit
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ClaimTimeout == 0 {
		c.ClaimTimeout = max(DefaultClaimTimeout, 3*c.PollInterval)
	}
	if c.ExpectedNodes == 0 {
		c.ExpectedNodes = 1
	}
	if c.StatsTTL == 0 {
		c.StatsTTL = DefaultStatsTTL
	}
	if c.IndexShards == 0 {
		c.IndexShards = DefaultIndexShards
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.LeaseTimeout == 0 {
		c.LeaseTimeout = DefaultLeaseTimeout
	}
	if c.ResultTTL == 0 {
		c.ResultTTL = DefaultResultTTL
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field of c (after WithDefaults) that is out of range.
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
	if err := c.Default.Validate("Config.Default"); err != nil {
		return err
	}
	for name, l := range c.Limits {
		if err := ValidateKey(name); err != nil {
			return bad("Limits", "name %q: %v", name, err)
		}
		if err := l.Validate(fmt.Sprintf("Config.Limits[%q]", name)); err != nil {
			return err
		}
	}
	switch {
	case c.BatchSize < 1 || c.BatchSize > MaxBatchSize:
		return bad("BatchSize", "must be 1 to %d, got %d", MaxBatchSize, c.BatchSize)
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
	case c.RetryBackoff < time.Millisecond || c.RetryBackoff > MaxRetryBackoff:
		return bad("RetryBackoff", "must be from 1ms to %v, got %v", MaxRetryBackoff, c.RetryBackoff)
	case c.ShutdownTimeout < 0:
		return bad("ShutdownTimeout", "must be positive, got %v", c.ShutdownTimeout)
	}
	return nil
}

// Resolve returns the limit of key, with defaults filled in: Limits[key], then runtime[key]
// (limits set with SetLimit), then Limits[group], then Default.
func (c Config) Resolve(key string, runtime map[string]Limit) Limit {
	if l, ok := c.Limits[key]; ok {
		return l.WithDefaults()
	}
	if l, ok := runtime[key]; ok {
		return l.WithDefaults()
	}
	if l, ok := c.Limits[Group(key)]; ok {
		return l.WithDefaults()
	}
	return c.Default.WithDefaults()
}
