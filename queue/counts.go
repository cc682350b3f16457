package queue

// The counts a node keeps per key and writes in batches (Backend.AddCounters), and the
// counters' names.

// CountCall is one key's batch of counts, for AddCounters.
type CountCall struct {
	Key   string
	P     Params
	Batch CountBatch
}

// CountBatch is one node's counts for one key, numbered so that sending it twice adds it once.
type CountBatch struct {
	// Node is the counting node's id; Seq increases with each batch the node makes for a key.
	Node   []byte
	Seq    int64
	Deltas map[string]int64
}

// Counter names, as kept per key and shown by Status.
const (
	CountAdmitted  = "admitted"  // granted at once on arrival (counted by the node, not by Admit)
	CountQueued    = "queued"    // put in line
	CountGranted   = "granted"   // granted from the line
	CountExpired   = "expired"   // dropped from the line at their deadline
	CountRejected  = "rejected"  // refused: line full or would exceed deadline
	CountEvicted   = "evicted"   // dropped from the line to make room, or by Reset
	CountCancelled = "cancelled" // left the line because their caller gave up
	CountRefunded  = "refunded"  // grants given back to the window
	CountCorrupt   = "corrupt"   // undecodable tickets moved to the dead-letter list
	CountAbandoned = "abandoned" // left the line because their node died
	CountSucceeded = "succeeded" // fn returned no error
	CountFailed    = "failed"    // fn (or a job's handler) returned an error or panicked
	CountRetried   = "retried"   // durable jobs put back for another run after a failure
	CountScheduled = "scheduled" // durable jobs enqueued to join their line later
	CountReclaimed = "reclaimed" // durable jobs whose lease lapsed while they ran
	CountDead      = "dead"      // durable jobs that failed for the last time (dead-lettered)
	CountBadConfig = "badconfig" // runtime limits (SetLimit) found unreadable, once per node and value
	CountDuplicate = "duplicate" // second copies of a ticket dropped from the line (an admit sent twice)
	// CountSettled counts the grants settled (Settle); CountUnitsReturned the cost units they
	// gave back, CountUnitsOver the units they charged over what was charged at the grant.
	CountSettled       = "settled"
	CountUnitsReturned = "units_returned"
	CountUnitsOver     = "units_over"
	// CountHeldBack counts what upstreams' budgets held keys back by (Observe).
	CountHeldBack = "held_back"
	// What a shadow limit (config.Limit.Shadow) would have done with the requests it let run
	// (see lua/shadow.lua): allowed, queued, refused; the queued ones' would-be waits, their
	// sum and the largest, µs.
	CountShadowAllowed = "shadow_allowed"
	CountShadowQueued  = "shadow_queued"
	CountShadowRefused = "shadow_refused"
	CountShadowWait    = "shadow_wait_us"
	CountShadowWaitMax = "shadow_wait_max_us"
)
