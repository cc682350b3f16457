package config

import "time"

// Defaults of rateltd.Config.
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

// DefaultLimit is rateltd.Config.Default when none is given: 100 per minute.
var DefaultLimit = Limit{Max: 100, Window: time.Minute}
