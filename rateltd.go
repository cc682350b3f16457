package rateltd

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/track"
	"github.com/rateltd/rateltd/processor"
	"github.com/rateltd/rateltd/queue"
)

// Algorithm selects how a key's window is kept.
type Algorithm = config.Algorithm

// Overflow says what a full line does with a newcomer.
type Overflow = config.Overflow

// Priority orders the requests waiting for one key: PriorityCritical > PriorityHigh >
// PriorityNormal > PriorityLow. Its zero value is PriorityNormal.
type Priority = config.Priority

// Algorithms, overflow policies and priorities.
const (
	SlidingWindow = config.SlidingWindow
	FixedWindow   = config.FixedWindow
	TokenBucket   = config.TokenBucket

	Reject     = config.Reject
	DropOldest = config.DropOldest

	PriorityLow      = config.PriorityLow
	PriorityNormal   = config.PriorityNormal
	PriorityHigh     = config.PriorityHigh
	PriorityCritical = config.PriorityCritical
)

// newTimeout bounds the backend calls New makes.
const newTimeout = 10 * time.Second

// Client is one node: it admits requests for rate-limited keys, makes them wait in line when
// the limit is reached, and runs one processor goroutine that grants the waiting ones. Create
// it with New; it is safe for concurrent use. Shut it down (Shutdown or Close) when done.
//
// A Client that New did not make — the zero Client, or a nil *Client — is a closed one: every
// method returns ErrClosed, and Close does nothing.
type Client struct {
	// node is set by New and never changes: nil only in a Client New did not make.
	node *processor.Node
	// be is the backend node runs on, for the calls that go to it directly (Check, Status,
	// the admin calls); set by New and never changes.
	be  queue.Backend
	cfg Config

	// local is FailLocal's limiter.
	local *localLimiter
	// tr makes the spans of requests, enqueues and job runs; set by New, never changed.
	tr tracing

	// closed is set by Shutdown when it begins; read by every method.
	closed atomic.Bool
	// calls counts the Request calls under way, RequestAsync's goroutines included, from
	// entry to return. Written by the calls (it refuses new ones once Shutdown began), read
	// by Shutdown.
	calls track.Count
	// fns holds the cancel of every fn's context while fn runs, for Shutdown.
	fns running
	// observing counts Observer calls under way; Shutdown closes it, so that no request that
	// ends after Shutdown returned reaches the Observer.
	observing track.Count
	// closing is closed when Shutdown begins, ending the waits of FailLocal.
	closing chan struct{}
	shut    shutdown
}

// New validates cfg and starts a Client. With cfg.Redis nil it uses an in-process backend,
// which shares limits only within this Client. The error names the field at fault and
// satisfies errors.Is(err, ErrInvalidConfig); an unreachable Redis gives ErrUnavailable.
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var be queue.Backend
	ctx, cancel := context.WithTimeout(context.Background(), newTimeout)
	defer cancel()
	if cfg.Redis == nil {
		be = queue.NewMemory()
	} else {
		r := queue.NewRedis(cfg.Redis, cfg.Prefix, cfg.IndexShards)
		if err := r.LoadScripts(ctx); err != nil {
			return nil, fmt.Errorf("rateltd: load scripts: %w: %w", ErrUnavailable, err)
		}
		be = r
	}
	return newClient(ctx, cfg, be)
}

func newClient(ctx context.Context, cfg Config, be queue.Backend) (*Client, error) {
	c := &Client{be: be, cfg: cfg, local: &localLimiter{nodes: cfg.ExpectedNodes}, closing: make(chan struct{}),
		tr: newTracing(cfg.TracerProvider)}
	o := cfg.options()
	o.StartJob = c.startJob
	if so, ok := cfg.Observer.(SettleObserver); ok {
		// Called only from Settle, in a fn or handler: after New has returned c.
		o.ObserveSettle = func(r processor.SettleRun) { c.observeSettle(so, r) }
	}
	node, err := processor.New(ctx, be, o)
	if err != nil {
		return nil, err
	}
	c.node = node
	return c, nil
}

// isClosed reports whether c was shut down, or was not made by New.
func (c *Client) isClosed() bool { return !c.made() || c.closed.Load() }

// made reports whether New made c (a zero or nil Client acts as a closed one).
func (c *Client) made() bool { return c != nil && c.node != nil }

// enter counts a call of a request's fn in c.calls, unless c is closed or was not made by New;
// the caller leaves (c.calls.Leave) when it is done.
func (c *Client) enter() bool { return c.made() && c.calls.Enter() }
