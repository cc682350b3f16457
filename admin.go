package rateltd

import (
	"context"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// Decision is the answer of Check: what a request for the key would meet now. Check
// consumes nothing.
type Decision struct {
	// Allowed reports whether a request would start at once.
	Allowed bool
	// Remaining is how many more requests could start now: of the limit's tightest rate (the
	// one with the least of its Max left), in cost units when that rate counts them.
	Remaining int
	// RetryAfter is how long until a request could start: 0 when Allowed, -1 when the key is
	// paused with no end.
	RetryAfter time.Duration
	// ResetAfter is how long until the window is entirely free again.
	ResetAfter time.Duration
	// Limit is what Remaining is out of: the Max of the rate it is of (the tightest, for a
	// limit of several rates), or the concurrency cap of a limit with no rate.
	Limit int
}

// RateStatus is what one rate of a key's limit counts now.
type RateStatus struct {
	// Rate is the rate: the limit's main one (Max per Window) or one of Also.
	Rate Rate
	// Used is what counts against the rate's window now: requests, or cost units when
	// Rate.Units. A settled overage may take it above Max. Remaining is what may start still.
	Used, Remaining int64
}

// Counters are a key's counts since its counters were last reset or expired (Config.StatsTTL
// after their last change), across all nodes. Admitted, Succeeded and Failed are counted by
// each node and reach Redis at its next poll (Config.PollInterval); Status writes the reading
// node's own first.
type Counters struct {
	Admitted, Queued, Granted, Expired, Rejected, Evicted, Cancelled, Refunded, Corrupt,
	Abandoned, Succeeded, Failed int64
	// Durable jobs: runs put back for a retry after a failure, leases that lapsed while a
	// job ran, and jobs that failed for the last time (dead-lettered).
	Retried, Reclaimed, Dead int64
	// BadConfig counts the times a node found the key's runtime limit (SetLimit) unreadable
	// in Redis: once per node and stored value. The key then keeps its configured limit, and
	// the node logs why.
	BadConfig int64
	// Duplicates counts second copies of a waiting request dropped from the line: the Redis
	// client sends a command again after a connection error cut its reply (go-redis's
	// MaxRetries), and an admit that had run queues its ticket twice. One request gets one
	// grant.
	Duplicates int64
	// Units counts the settling of costs after their calls.
	Units CountersUnits
	// HeldBack counts what upstreams' budgets held the key back by (Observe): requests or
	// units taken from its rates to match what the upstream said it had left.
	HeldBack int64
	// Shadow counts what a shadow limit (Limit.Shadow) would have done with the requests it
	// let run.
	Shadow CountersShadow
}

// Status is a key's state, read at one instant of server time.
type Status struct {
	Key   string
	Limit Limit
	// Effective is the limit in force: Limit, or for an adaptive key (Limit.Adaptive) whose
	// upstream cut it, Limit with every rate's Max and Burst scaled down.
	Effective Limit
	// Used is how many grants count against the window now; Remaining how many more may start.
	// For a limit of several rates or of cost units, these are the tightest rate's (the one
	// with the least of its Max left), and Rates holds each.
	Used, Remaining int
	// Rates is what each rate of the limit counts: the main one first, then those of
	// Limit.Also.
	Rates []RateStatus
	// Queued is how many requests wait, all priorities; QueuedByPriority[p], how many wait at
	// priority p. QueuedByPriority has an entry for each of the four priorities.
	Queued           int
	QueuedByPriority map[Priority]int
	// OldestWait is how long the longest-waiting request has waited.
	OldestWait time.Duration
	// Paused reports a pause of the key, its group or everything; PausedUntil is when it ends,
	// zero for a pause with no end.
	Paused      bool
	PausedUntil time.Time
	// Unclaimed counts grants waiting for their node to take them; DeadLetters, corrupt
	// tickets and durable jobs that failed for the last time, kept for inspection.
	Unclaimed, DeadLetters int
	// Jobs counts the key's durable jobs not yet ended (waiting in line, scheduled, running or
	// waiting for a retry); JobsRunning, those running or waiting for a retry; JobsScheduled,
	// those enqueued with WithDelay or WithRunAt whose time to join the line has not come.
	Jobs, JobsRunning, JobsScheduled int
	// InFlight counts the slots of the key's concurrency cap (Limit.Concurrency) held now:
	// requests and job runs started and not yet returned, across all nodes. For a cap alone
	// (no rate), Used and Remaining are the slots held and free.
	InFlight int
	// Tenants are the tenants (WithTenant) with the most requests and jobs waiting in the
	// key's line, at most TopTenants of them, the most waiting first ("" stands for those of
	// no tenant waiting beside them); TenantsWaiting, how many tenants have any waiting.
	Tenants        []TenantWaiting
	TenantsWaiting int
	Counters       Counters
}

// CountersUnits are the cost units settled after their calls (Settle), across all nodes.
type CountersUnits struct {
	// Settled counts the grants settled; Returned the units they gave back, Over the units
	// they charged above their cost at the grant.
	Settled, Returned, Over int64
}

// CountersShadow are what a shadow limit (Limit.Shadow) would have done with the requests it
// let run, across all nodes, each judged against the key's windows as they held the real
// traffic before it. They stay after Shadow is turned off, until the counters lapse or Reset.
type CountersShadow struct {
	// Allowed counts the requests the limit would have let start at once.
	Allowed int64
	// Queued counts those it would have queued; Wait is the sum of their would-be waits, each
	// until the earliest start the windows allowed it (as for the head of an empty line: a
	// lower bound of the wait behind others over the limit, exact for a TokenBucket), and
	// MaxWait the longest of them. A request held back only by the concurrency cap counts with
	// no wait.
	Queued        int64
	Wait, MaxWait time.Duration
	// Refused counts those it would have refused: the key never queues (MaxQueue -1), or the
	// earliest start was past the request's deadline (ErrWouldExceedDeadline). A full line is
	// not foreseen: a shadow key keeps no line.
	Refused int64
}

// Check reports whether a request for key would start now, without consuming anything. Of the
// options only WithCost counts: a request of that cost.
func (c *Client) Check(ctx context.Context, key string, opts ...Option) (Decision, error) {
	if err := c.usable(key); err != nil {
		return Decision{}, err
	}
	o, err := apply(opts)
	if err != nil {
		return Decision{}, err
	}
	p := c.node.Params(key)
	if err := config.CheckCost(key, p.Limit, o.costOf()); err != nil {
		return Decision{}, err
	}
	d, err := c.be.Check(ctx, key, p, o.costOf())
	if err != nil {
		return Decision{}, unavailable(ctx, err)
	}
	return Decision(d), nil
}

// Status reads the state of key.
func (c *Client) Status(ctx context.Context, key string) (Status, error) {
	if err := c.usable(key); err != nil {
		return Status{}, err
	}
	if err := c.node.FlushCounts(ctx, key); err != nil {
		return Status{}, unavailable(ctx, err)
	}
	p := c.node.Params(key)
	ks, err := c.be.State(ctx, key, p)
	if err != nil {
		return Status{}, unavailable(ctx, err)
	}
	st := Status{Key: key, Limit: limitOf(c.node.Configured(key)), Effective: limitOf(p.Limit), Used: ks.Used, Remaining: ks.Remaining, Unclaimed: ks.Unclaimed,
		DeadLetters: ks.DeadLetters, Jobs: ks.Jobs, JobsRunning: ks.Leased, JobsScheduled: ks.Scheduled,
		InFlight: ks.Running}
	st.Tenants, st.TenantsWaiting = topTenants(ks.Tenants)
	for i, r := range ks.Rates {
		if i < p.Limit.NumRates() {
			st.Rates = append(st.Rates, RateStatus{Rate: Rate(p.Limit.Rate(i)), Used: r.Used, Remaining: r.Remaining})
		}
	}
	st.QueuedByPriority = make(map[Priority]int, config.NumPriorities)
	for line, q := range ks.Queued {
		st.QueuedByPriority[config.PriorityOfLine(line)] = q
		st.Queued += q
	}
	if ks.OldestEnqueued > 0 {
		st.OldestWait = max(0, time.Duration(ks.Now-ks.OldestEnqueued)*time.Microsecond)
	}
	switch until := queue.PauseInForce(ks.Now, ks.PausedUntil, p.ExtPause); until {
	case queue.NotPaused:
	case queue.PausedForever:
		st.Paused = true
	default:
		st.Paused, st.PausedUntil = true, c.node.LocalTime(until)
	}
	m := ks.Counters
	st.Counters = Counters{Admitted: m[queue.CountAdmitted], Queued: m[queue.CountQueued], Granted: m[queue.CountGranted],
		Expired: m[queue.CountExpired], Rejected: m[queue.CountRejected], Evicted: m[queue.CountEvicted],
		Cancelled: m[queue.CountCancelled], Refunded: m[queue.CountRefunded], Corrupt: m[queue.CountCorrupt],
		Abandoned: m[queue.CountAbandoned], Retried: m[queue.CountRetried], Reclaimed: m[queue.CountReclaimed],
		Dead: m[queue.CountDead], BadConfig: m[queue.CountBadConfig], Duplicates: m[queue.CountDuplicate],
		Succeeded: m[queue.CountSucceeded], Failed: m[queue.CountFailed],
		Units:    CountersUnits{Settled: m[queue.CountSettled], Returned: m[queue.CountUnitsReturned], Over: m[queue.CountUnitsOver]},
		HeldBack: m[queue.CountHeldBack],
		Shadow: CountersShadow{Allowed: m[queue.CountShadowAllowed], Queued: m[queue.CountShadowQueued],
			Refused: m[queue.CountShadowRefused], Wait: time.Duration(m[queue.CountShadowWait]) * time.Microsecond,
			MaxWait: time.Duration(m[queue.CountShadowWaitMax]) * time.Microsecond}}
	return st, nil
}

// WaitingKeys lists the keys whose lines the processors are working on — keys with requests
// or durable jobs waiting, on any node, and keys left so lately, until a processor finds their
// line empty — in no particular order. ListKeys lists every key that has any state.
func (c *Client) WaitingKeys(ctx context.Context) ([]string, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	keys, err := c.be.ActiveKeys(ctx)
	if err != nil {
		return nil, unavailable(ctx, err)
	}
	return keys, nil
}

// ListKeys pages through every key that has any state — a window, a line, a pause or counters
// — for admin listings: about count keys after cursor ("" to start) and the cursor of the next
// page ("" after the last). Each key comes once in a listing, unless its state is created or
// removed during it (then it may be missed or come twice: on Redis the listing is a SCAN).
// A key's counters are such state: a node writes them at its polls, so a key first used less
// than a poll interval ago gains them later; each page first writes this Client's own, so that
// its reads of the keys listed (Status, which writes them too) create none meanwhile.
// On a Redis Cluster the pages go through each master in turn; a failover during the listing
// scans the new master from its start, so keys may come again. On Redis, a cursor that ListKeys
// did not return fails with ErrInvalidConfig.
func (c *Client) ListKeys(ctx context.Context, cursor string, count int) ([]string, string, error) {
	if c.isClosed() {
		return nil, "", ErrClosed
	}
	// Redis answers first, so that a listing during an outage fails as soon as it would
	// without the counts (whose round trips would each wait for the same failure).
	if _, err := c.be.Time(ctx); err != nil {
		return nil, "", unavailable(ctx, err)
	}
	_ = c.node.FlushAllCounts(ctx) // logged; a key whose counters cannot be written holds up no listing
	keys, next, err := c.be.ListKeys(ctx, cursor, count)
	if err != nil {
		return nil, "", unavailable(ctx, err)
	}
	return keys, next, nil
}

// LimitOf returns the limit in force for key, as this node resolves it (exact key, SetLimit,
// group, default), with its defaults filled in. It reads no backend, so it answers also after
// Close; a Client that New did not make returns ErrClosed.
func (c *Client) LimitOf(key string) (Limit, error) {
	if !c.made() {
		return Limit{}, ErrClosed
	}
	if err := config.ValidateKey(key); err != nil {
		return Limit{}, err
	}
	return limitOf(c.node.Params(key).Limit), nil
}

// Ping reports whether the backend answers.
func (c *Client) Ping(ctx context.Context) error {
	if c.isClosed() {
		return ErrClosed
	}
	if _, err := c.be.Time(ctx); err != nil {
		return unavailable(ctx, err)
	}
	return nil
}

// Pause stops granting for name until Resume: name is a key, and also a group (every key
// whose text before the first ':' is name); "*" pauses every key. Requests keep queueing
// while paused. A key's own pause takes effect atomically with the next grant; the pause of
// a group or of everything reaches other nodes by pub/sub at once and by their poll at the
// latest (Config.PollInterval).
func (c *Client) Pause(ctx context.Context, name string) error {
	return c.setPause(ctx, name, queue.PausedForever)
}

// Resume ends a pause made by Pause with the same name; the lines drain at the limit.
func (c *Client) Resume(ctx context.Context, name string) error {
	return c.setPause(ctx, name, queue.NotPaused)
}

func (c *Client) setPause(ctx context.Context, name string, until int64) error {
	if c.isClosed() {
		return ErrClosed
	}
	if name != "*" {
		if err := config.ValidateKey(name); err != nil {
			return err
		}
		var err error
		if until == queue.NotPaused {
			err = c.be.ResumeKey(ctx, name)
		} else {
			err = c.be.PauseKey(ctx, name, until)
		}
		if err != nil {
			return unavailable(ctx, err)
		}
		if config.Group(name) != name { // not a group name: no runtime pause to change
			return c.recheck(ctx, name)
		}
	}
	if err := c.be.SetRuntimePause(ctx, name, until); err != nil {
		return unavailable(ctx, err)
	}
	if err := c.node.RefreshRuntime(ctx); err != nil {
		return unavailable(ctx, err)
	}
	return nil
}

// Reset clears key's window, line and counters. Requests waiting for it end with ErrEvicted.
// A pause stays.
func (c *Client) Reset(ctx context.Context, key string) error {
	if err := c.usable(key); err != nil {
		return err
	}
	if err := c.be.Reset(ctx, key); err != nil {
		return unavailable(ctx, err)
	}
	return c.recheck(ctx, key)
}

// SetLimit sets the limit of key for every node, at run time. It ranks below a limit
// configured for the exact key in Config.Limits and above one configured for its group. The
// zero Limit removes the limit set for key. A change of algorithm starts the key's window
// afresh (each algorithm keeps its own), so for one window up to twice Max may start.
func (c *Client) SetLimit(ctx context.Context, key string, l Limit) error {
	if err := c.usable(key); err != nil {
		return err
	}
	var lp *config.Limit
	if !l.isZero() {
		if err := l.Validate(); err != nil {
			return err
		}
		el := l.engine()
		lp = &el
	}
	if err := c.be.SetRuntimeLimit(ctx, key, lp); err != nil {
		return unavailable(ctx, err)
	}
	if err := c.node.RefreshRuntime(ctx); err != nil {
		return unavailable(ctx, err)
	}
	c.node.Recheck(key)
	return nil
}

func (c *Client) recheck(ctx context.Context, key string) error {
	c.node.Recheck(key)
	if err := c.be.Broadcast(ctx, queue.Event{Kind: queue.EventRecheck, Key: key}); err != nil {
		return unavailable(ctx, err)
	}
	return nil
}

func (c *Client) usable(key string) error {
	if c.isClosed() {
		return ErrClosed
	}
	return config.ValidateKey(key)
}

// unavailable is the error of a backend call made under ctx that failed with err: ctx's error
// when ctx ended, ErrUnavailable with err when Redis or the connection failed, else err.
func unavailable(ctx context.Context, err error) error { return queue.Failure(ctx, "rateltd", err) }
