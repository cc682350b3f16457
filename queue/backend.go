// Package queue is the engine behind package rateltd; it makes no stability promise and
// exports only what the module uses. Its one job is to be the whole store: everything rateltd
// keeps, read and changed in one place — the lines of waiting requests (tickets, the four
// priority lists per key, and the atomic steps that admit, grant, claim, cancel and refund),
// durable jobs and their leases and results, the runtime configuration (limits and pauses set
// at run time), pub/sub wake-ups, node heartbeats, the registry of job handlers, and the
// listing of keys, dead letters and status. Backend is implemented by Redis (shared by every
// process) and Memory (one process); both pass one conformance suite.
package queue

import (
	"context"
	"time"

	"github.com/rateltd/rateltd/config"
)

// Params are the settings one backend call needs for one key, resolved by the caller.
type Params struct {
	// Limit is the key's limit, defaults filled in.
	Limit config.Limit
	// ExtPause is a pause that does not live in the key itself (its group's or the global
	// one): NotPaused, PausedForever, or the µs of server time it lasts until.
	ExtPause int64
	// StatsTTL is how long the key's counters live after their last change.
	StatsTTL time.Duration
	// Head queues an admitted ticket at the head of its priority's line rather than at its
	// tail: a request retried after the upstream said "retry after" keeps its turn.
	Head bool
	// SlotLease is how long a slot of the limit's concurrency cap lives without renewal: the
	// node's heartbeat TTL. Defaults to DefaultSlotLease.
	SlotLease time.Duration
}

// DefaultSlotLease is Params.SlotLease when unset.
const DefaultSlotLease = 3 * time.Second

func (p Params) slotLease() time.Duration {
	if p.SlotLease <= 0 {
		return DefaultSlotLease
	}
	return p.SlotLease
}

// A pause is NotPaused, PausedForever or the µs of server time it lasts until, wherever rateltd
// keeps or passes one: Params.ExtPause, KeyState.PausedUntil, Runtime.Pauses, a key's paused
// string in Redis, and the scripts (pause.lua's NOT_PAUSED and PAUSED_FOREVER).
const (
	NotPaused     int64 = 0
	PausedForever int64 = -1
)

// PauseInForce is the pause in force at now (µs) of two pauses: PausedForever if either is,
// else the later end if it is after now, else NotPaused. It is the one rule of precedence
// between a key's own pause, its group's and everything's ("*"); pause.lua's pause_in_force
// is its twin.
func PauseInForce(now, a, b int64) int64 {
	if a == PausedForever || b == PausedForever {
		return PausedForever
	}
	if last := max(a, b); last > now {
		return last
	}
	return NotPaused
}

// Outcome is the answer of Admit.
type Outcome int

const (
	// Granted: the line was empty and the limit allowed; the grant is recorded.
	Granted Outcome = iota + 1
	// Queued: the ticket waits in its line.
	Queued
	// Full: the line is full (or the key never queues); nothing was written but a counter.
	Full
	// WouldExceed: the earliest start the line allows is past the ticket's deadline.
	WouldExceed
	// Duplicate (Enqueue): a job of that id is waiting, running or has a result kept; nothing
	// was written.
	Duplicate
	// Scheduled (Enqueue): the job is kept to join its line at Earliest; LineBefore is the
	// line's length now.
	Scheduled
)

// AdmitReply is the result of Admit.
type AdmitReply struct {
	Outcome Outcome
	// Now is the server time of the decision, µs.
	Now int64
	// Remaining is, when Granted, how many more may start now; otherwise how many the
	// window alone would let start now (the line or a pause holds them back).
	Remaining int
	// Earliest is, when not Granted, the earliest start the line allows this request, µs;
	// PausedForever when the key is paused with no end.
	Earliest int64
	// LineBefore is how many tickets waited before this one was queued.
	LineBefore int
	// Evicted is the raw ticket dropped to make room (DropOldest), if any.
	Evicted []byte
	// ResetAfter is, when Granted (this grant included), Full or WouldExceed, how long until
	// the window is entirely free again, µs; 0 otherwise.
	ResetAfter int64
	// Which is the rate Remaining and ResetAfter are of, the tightest: 1-based, 0 for none
	// (a concurrency cap alone).
	Which int
	// LineSuffix is, when Queued in a line served in fair shares on Redis, what follows the
	// ticket in its entry (for Cancel: Ticket.LineSuffix); nil otherwise.
	LineSuffix []byte
	// Shadow is, for a grant on a key of a shadow limit, what the limit would have done, and
	// ShadowWait the wait it would have had (queued, or refused for its deadline), µs.
	Shadow     ShadowVerdict
	ShadowWait int64
}

// ShadowVerdict is what a shadow limit would have done with a request it let run (shadow.lua's
// SHADOW_*); 0 for a request on a key that is not one.
type ShadowVerdict uint8

const (
	ShadowAllowed ShadowVerdict = iota + 1
	ShadowQueued
	ShadowRefused
)

// String is the verdict as spans and logs name it.
func (v ShadowVerdict) String() string {
	switch v {
	case ShadowAllowed:
		return "allowed"
	case ShadowQueued:
		return "queued"
	case ShadowRefused:
		return "refused"
	}
	return ""
}

// Decision is the admission as Check would have answered just after it, when the admission
// decided at once: Allowed when Granted, with the Remaining its grant left; when refused (Full,
// WouldExceed), RetryAfter until the earliest start the line allowed (-1 when paused with no
// end). ok is false when the ticket was queued or was a Duplicate.
func (r AdmitReply) Decision(l config.Limit) (d Decision, ok bool) {
	switch r.Outcome {
	case Granted:
		return Decision{Allowed: true, Remaining: r.Remaining, ResetAfter: micros(r.ResetAfter), Limit: limitOf(l, r.Which)}, true
	case Full, WouldExceed:
		d = Decision{Remaining: r.Remaining, RetryAfter: -1, ResetAfter: micros(r.ResetAfter), Limit: limitOf(l, r.Which)}
		if r.Earliest != PausedForever {
			d.RetryAfter = micros(max(0, r.Earliest-r.Now))
		}
		return d, true
	}
	return Decision{}, false
}

// GrantReply is the result of one key's Grant.
type GrantReply struct {
	// Now is the server time of the grants, µs.
	Now int64
	// Next is when to grant this key again, µs; 0 when its line is empty.
	Next int64
	// Paused reports that nothing was granted because the key is paused.
	Paused bool
	// Local holds the raw tickets granted that the calling node owns.
	Local [][]byte
	// Remote holds the ids of other nodes that own tickets granted here (deduplicated);
	// they are to be woken to claim them.
	Remote [][]byte
	// Jobs are the durable jobs granted to the calling node, each under a lease.
	Jobs []GrantedJob
	// Busy reports that a job for the calling node waits for one of its workers to be free.
	Busy bool
	// Woken are the ids of durable jobs ended here (expired in line) that somebody waits for.
	Woken [][]byte
}

// GrantArgs are the settings of one Grant call.
type GrantArgs struct {
	// Node is the granting node's id: its own tickets come back in GrantReply.Local.
	Node []byte
	// Batch bounds the grants per key; ClaimTimeout is how long a remote grant waits to be
	// claimed before it is refunded.
	Batch        int
	ClaimTimeout time.Duration
	// Dead are nodes known to be gone: their tickets leave the line, their unclaimed grants
	// are refunded at once.
	Dead [][]byte
	// Mine are the handlers of durable jobs the node runs; Others those that only other live
	// nodes run. A job whose handler is in neither is passed over.
	Mine, Others []string
	// Slots are the node's free workers, one entry per key: the jobs each key's step may grant.
	Slots []int
	// Lease is how long a granted job stays the node's without renewal; MaxLost, how many
	// lapsed leases a job survives. Hold is how long a line held up by a job is left alone.
	Lease, Hold time.Duration
	MaxLost     int
}

// ClaimStatus is what Claim found for one ticket.
type ClaimStatus int

const (
	// StillWaiting: the ticket is neither granted nor evicted (yet).
	StillWaiting ClaimStatus = iota
	// Claimed: the ticket had been granted and is now the caller's to run.
	Claimed
	// WasEvicted: the ticket was dropped (DropOldest or Reset).
	WasEvicted
)

// ClaimCall is one key's part of a Claim: the caller's tickets of Key and their raw encodings.
type ClaimCall struct {
	Key     string
	P       Params
	Tickets []*Ticket
	Raws    [][]byte
}

// ClaimResult is what Claim found for one ClaimCall: per ticket, its status and, when Claimed,
// when it was granted (µs); or the error that kept the step from running or being answered.
type ClaimResult struct {
	Status []ClaimStatus
	At     []int64
	Err    error
}

// CancelOutcome is what Cancel did.
type CancelOutcome int

const (
	// Removed: the ticket was still waiting and has left the line.
	Removed CancelOutcome = iota + 1
	// Refunded: the ticket had been granted but not claimed; the grant went back to the window.
	Refunded
	// Absent: the ticket was in neither place (granted to this node already, expired, evicted).
	Absent
)

// Decision is the read-only answer of Check; rateltd.Decision, where each field is documented,
// converts from it field for field.
type Decision struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration
	ResetAfter time.Duration
	Limit      int
}

// limitOf is the Max of rate which (1-based, as the scripts answer) of l, or its concurrency
// cap for 0: what a Decision's Remaining is out of.
func limitOf(l config.Limit, which int) int {
	if which < 1 || which > l.NumRates() {
		if l.NumRates() == 0 {
			return l.Concurrency
		}
		return l.Max
	}
	return l.Rate(which - 1).Max
}

// KeyState is a key's state as Status shows it.
type KeyState struct {
	Now       int64 // µs
	Used      int
	Remaining int
	Queued    [config.NumPriorities]int // waiting tickets, indexed by Priority.Line
	// OldestEnqueued is the Enqueued time of the longest-waiting ticket, µs; 0 when none waits.
	OldestEnqueued int64
	// PausedUntil is the key's own pause in force: NotPaused, PausedForever or µs.
	PausedUntil int64
	// Unclaimed counts grants waiting for their remote owner to claim them.
	Unclaimed   int
	DeadLetters int
	Counters    map[string]int64
	// Jobs counts the key's durable jobs not yet ended; Leased, those of them running or
	// waiting for a retry.
	Jobs, Leased int
	// Scheduled counts those of them scheduled to join the line later.
	Scheduled int
	// Rates is what each rate of the limit counts, the main one first. Used and Remaining
	// above are the tightest rate's: the one with the least of its Max left (with no rate,
	// the concurrency cap's slots held and free).
	Rates []RateState
	// Running counts the slots of the concurrency cap held now.
	Running int
	// Tenants holds how many tickets each tenant has waiting in the key's lines served in fair
	// shares ("" for those of no tenant there); nil when none is.
	Tenants map[string]int
}

// RateState is what one rate of a key's limit counts now: requests, or cost units for a rate
// that counts them. Used may pass the rate's Max after a settled overage.
type RateState struct {
	Used, Remaining int64
}

// Runtime is the shared configuration set at run time: limits (SetLimit) and the pauses of
// groups and of everything ("*"), each NotPaused, PausedForever or µs until.
type Runtime struct {
	Limits map[string]config.Limit
	Pauses map[string]int64
	// Factors are the fractions of adaptive keys' limits in force, by key (absent: 1).
	Factors map[string]float64
	// Bad holds the fields that could not be read, by field name ("limit:<key>" or
	// "pause:<name>"), with why. A key whose runtime limit is unreadable keeps its configured
	// one; an unreadable pause counts as a pause with no end (Resume clears it).
	Bad map[string]error
}

// Event kinds travel between nodes only to wake them early; nothing depends on their arrival.
const (
	// EventQueued: a ticket was queued into an empty line; processors take up the key.
	EventQueued byte = 'q'
	// EventRecheck: grant the key again now (resume, refund, limit change, reset).
	EventRecheck byte = 'r'
	// EventRuntime: the runtime configuration changed; reload it.
	EventRuntime byte = 'c'
	// EventClaim (to one node): grants for the key wait for it to claim them.
	EventClaim byte = 'g'
	// EventJobDone: the durable job whose id is Key ended; its waiters read the result.
	EventJobDone byte = 'j'
	// EventJobCancel: the durable job whose id is Key was cancelled while it ran; the node
	// running it renews its lease at once, which tells it so.
	EventJobCancel byte = 'x'
)

// Event is a wake-up message.
type Event struct {
	Kind byte
	Key  string
}

// Backend is where the lines and windows live. Every per-key method is one atomic step.
// Implementations are safe for concurrent use.
type Backend interface {
	JobBackend

	// Admit grants at once when the key is not paused, its line is empty and the limit allows;
	// otherwise queues the ticket, or refuses it (Full, WouldExceed). A backend that knows its
	// store to be out for the key may fail it at once with config.ErrUnavailable.
	Admit(ctx context.Context, p Params, t *Ticket, raw []byte) (AdmitReply, error)
	// Grant drops expired and corrupt tickets of each key, then grants up to batch waiting
	// tickets per key in priority and FIFO order, as far as the limit allows. Tickets of other
	// nodes are kept for them to claim; those unclaimed for claimTimeout are refunded.
	// The replies and errors are per key, in the order of keys.
	Grant(ctx context.Context, keys []string, ps []Params, g GrantArgs) ([]GrantReply, []error)
	// Claim takes the grants made for the tickets of each call (each call's tickets all of one
	// key, owned by the caller), one atomic step per call; the Redis backend sends the steps of
	// every call in one round trip. The results are per call, in the order of calls.
	Claim(ctx context.Context, calls []ClaimCall) []ClaimResult
	// Claimable reports, for each of keys, whether a claim could find anything there for the
	// tickets of a node that has missed no grant reply of its own: grants made for another
	// node to claim, or tickets evicted. One round trip; cheap where Claim runs a step per key.
	Claimable(ctx context.Context, keys []string) ([]bool, error)
	// Cancel removes a waiting ticket, or refunds its grant if it was granted and neither
	// claimed nor delivered (a local grant whose reply was lost).
	Cancel(ctx context.Context, p Params, t *Ticket, raw []byte) (CancelOutcome, error)
	// Refund gives back to the window a grant, made at grantedAt (µs), that will not run.
	// local is nil for a grant the caller holds for sure (claimed, or granted on admission);
	// for a grant of the node's own grant step it is the raw ticket, and the grant is given
	// back only if it is still among the key's local grants — a Cancel may have given it back
	// first, and a grant is given back once.
	// cost is the grant's cost.
	Refund(ctx context.Context, key string, p Params, id []byte, grantedAt int64, local []byte, cost int64) error
	// Settle changes the grant made for id at grantedAt from cost charged to cost actual in
	// every rate of the key's limit that counts units: less gives the difference back as of
	// the grant's time, more charges the overage now.
	Settle(ctx context.Context, key string, p Params, id []byte, grantedAt, charged, actual int64) error
	// RenewSlots renews the slots of the concurrency cap of key held for ids, and returns how
	// many were still held; ReleaseSlots frees them, and returns how many tickets wait in
	// the key's line (when any do, the processors are to be woken).
	RenewSlots(ctx context.Context, key string, p Params, ids [][]byte) (int, error)
	// HoldBack holds rate (0-based) of key's limit to remaining until reset µs from now: an
	// upstream said it has that much left. It only ever takes; it returns what it took.
	HoldBack(ctx context.Context, key string, p Params, rate int, remaining, reset int64) (int64, error)
	ReleaseSlots(ctx context.Context, key string, p Params, ids [][]byte) (int, error)
	// Check reports whether a request would be granted now, changing nothing.
	Check(ctx context.Context, key string, p Params, cost int64) (Decision, error)
	// State reads the key's window, line, pause and counters.
	State(ctx context.Context, key string, p Params) (KeyState, error)
	// Reset clears the key's window, line, grants and counters; tickets that waited are
	// recorded as evicted so their owners learn it.
	Reset(ctx context.Context, key string) error
	// PauseKey pauses the key until the µs given, or PausedForever. ResumeKey ends it.
	PauseKey(ctx context.Context, key string, until int64) error
	// ExtendPause pauses the key until the µs given unless it is paused as long already.
	ExtendPause(ctx context.Context, key string, until int64) error
	ResumeKey(ctx context.Context, key string) error
	// AddCounters adds each call's batch of counts to its key's counters (outcomes that happen
	// outside a script), once: a batch sent again after an error changes nothing if the first
	// sending had been applied. All in one round trip; errs[i] is calls[i]'s error.
	AddCounters(ctx context.Context, calls []CountCall) (errs []error)
	// Time is the backend's clock, µs.
	Time(ctx context.Context) (int64, error)

	// Activate records in the index that each key has a line, at server time At (µs); the
	// entry lasts at least until Until (µs, the deadline of the ticket that opened the line).
	// The keys of activations with Wake are announced to every node (EventQueued), in the same
	// round trip. It returns the errors joined.
	Activate(ctx context.Context, acts []Activation) error
	// Deactivate removes each of keys from the index unless it was activated at or after its
	// before (µs, before[i] for keys[i]), in one round trip; it returns the errors joined.
	Deactivate(ctx context.Context, keys []string, before []int64) error
	// ActiveKeys lists the keys in the index. ActiveKeysSince lists those last activated after
	// since (µs; every key for 0) with when each was (at[i] for keys[i]), and the backend's
	// time (µs) taken before it read them: an activation recorded after the reading is
	// recorded after now.
	ActiveKeys(ctx context.Context) ([]string, error)
	ActiveKeysSince(ctx context.Context, since int64) (keys []string, at []int64, now int64, err error)
	// ListKeys pages through every key that has any state (window, line, pause, counters),
	// for admin listings: about count keys after cursor ("" to start), and the cursor of the
	// next page ("" at the end). Each key comes once in a listing whose keys' state stays
	// put; one whose state is created or removed meanwhile may be missed or come twice.
	ListKeys(ctx context.Context, cursor string, count int) (keys []string, next string, err error)

	// LoadRuntime reads the runtime configuration.
	LoadRuntime(ctx context.Context) (Runtime, error)
	// SetRuntimeLimit stores a limit for key; nil removes it.
	SetRuntimeLimit(ctx context.Context, key string, l *config.Limit) error
	// SetRuntimeFactor stores the fraction of an adaptive key's limit in force (1 removes it)
	// and tells every node.
	SetRuntimeFactor(ctx context.Context, key string, f float64) error
	// SetRuntimePause pauses a group or "*" until the µs given (or PausedForever);
	// NotPaused removes the pause.
	SetRuntimePause(ctx context.Context, name string, until int64) error

	// Broadcast sends ev to every node; Notify to one.
	Broadcast(ctx context.Context, ev Event) error
	Notify(ctx context.Context, node []byte, ev Event) error
	// Heartbeat records that node is alive for ttl, and reports whether its previous
	// heartbeat had lapsed (or the backend lost it): then other nodes may have taken the node
	// for dead and dropped its tickets, or the backend may have lost its memory. Forget records
	// that the node is gone. Alive reports, for each node, whether its heartbeat is current.
	Heartbeat(ctx context.Context, node []byte, ttl time.Duration) (lapsed bool, err error)
	Forget(ctx context.Context, node []byte) error
	Alive(ctx context.Context, nodes [][]byte) ([]bool, error)

	// Listen delivers the events for node (its own and broadcast ones) until stop is called.
	// Events may be lost; the channel is closed after stop.
	Listen(node []byte) (events <-chan Event, stop func())
	// Missed reports whether a listener of this backend may have lost, since the last call, a
	// wake-up that can make a key due earlier than its schedule (EventRecheck, EventRuntime):
	// one it found missing, or one sent before the previous call that has not reached it yet.
	// An error counts as a loss. The poll looks at every key again only then.
	Missed(ctx context.Context) (bool, error)
	// Idle waits until no goroutine the backend started for a call (a flight of admits,
	// enqueues or ends of runs, which may outlive its callers) runs, or until ctx ends; it
	// returns how many still run.
	Idle(ctx context.Context) int
}

// keepClaimed is how long, at least, a key's local grants are kept once a claim adds a grant
// to them (claim.lua): long enough for the claiming node to run it or give it back.
const keepClaimed = time.Minute

// Activation is one key's entry in the index of keys with a line, for Activate.
type Activation struct {
	Key       string
	At, Until int64
	Wake      bool // announce the key to every node: a line opened
}
