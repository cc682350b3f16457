package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rateltd/rateltd/config"
)

// Job is a durable job's record, kept next to its key's line until the job ends. It is stored
// msgpack-encoded as an array, in the order jobs.lua names, so that the scripts can update it.
type Job struct {
	Key     string
	Handler string
	Payload []byte
	// Priority is the line the job waits in, also when it goes back to it.
	Priority config.Priority
	// MaxRetries bounds the runs after the first that a failing handler gets.
	MaxRetries int
	// Failures counts the runs whose handler failed; Runs the times the job was granted (the
	// latest is the token of the current run); Lost the leases that lapsed while it ran.
	Failures, Runs, Lost int
	// Wait is how long, in µs, the job may wait in line each time it joins it.
	Wait int64
	// State is JobInLine, JobRunning or JobRetrying.
	State int
	// Holder is the node running the job, Owner the node that enqueued it (16 bytes each;
	// Holder is empty when the job is not running).
	Holder, Owner []byte
	// ResultTTL is how long the job's result is kept, ms.
	ResultTTL int64
	// Enqueued is when the job was enqueued, µs of server time.
	Enqueued int64
}

// Job states.
const (
	JobInLine   = 0
	JobRunning  = 1
	JobRetrying = 2
)

const jobFields = 14

// EncodeMsgpack writes j as jobs.lua reads it: bytes as str (Lua's msgpack knows no bin).
func (j *Job) EncodeMsgpack(enc *msgpack.Encoder) error {
	enc.UseCompactInts(true)
	if err := enc.EncodeArrayLen(jobFields); err != nil {
		return err
	}
	for _, err := range []error{
		enc.EncodeString(j.Key), enc.EncodeString(j.Handler), enc.EncodeString(string(j.Payload)),
		enc.EncodeInt(int64(j.Priority)), enc.EncodeInt(int64(j.MaxRetries)), enc.EncodeInt(int64(j.Failures)),
		enc.EncodeInt(int64(j.Runs)), enc.EncodeInt(int64(j.Lost)), enc.EncodeInt(j.Wait), enc.EncodeInt(int64(j.State)),
		enc.EncodeString(string(j.Holder)), enc.EncodeString(string(j.Owner)), enc.EncodeInt(j.ResultTTL),
		enc.EncodeInt(j.Enqueued),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack reads what EncodeMsgpack (or jobs.lua) wrote.
func (j *Job) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != jobFields {
		return fmt.Errorf("array of %d, want %d", n, jobFields)
	}
	var prio, retries, failures, runs, lost, state int64
	var payload, holder, owner string
	for _, err := range []error{
		decodeInto(dec.DecodeString, &j.Key), decodeInto(dec.DecodeString, &j.Handler), decodeInto(dec.DecodeString, &payload),
		decodeInto(dec.DecodeInt64, &prio), decodeInto(dec.DecodeInt64, &retries), decodeInto(dec.DecodeInt64, &failures),
		decodeInto(dec.DecodeInt64, &runs), decodeInto(dec.DecodeInt64, &lost), decodeInto(dec.DecodeInt64, &j.Wait),
		decodeInto(dec.DecodeInt64, &state), decodeInto(dec.DecodeString, &holder), decodeInto(dec.DecodeString, &owner),
		decodeInto(dec.DecodeInt64, &j.ResultTTL), decodeInto(dec.DecodeInt64, &j.Enqueued),
	} {
		if err != nil {
			return err
		}
	}
	j.Payload, j.Holder, j.Owner = []byte(payload), []byte(holder), []byte(owner)
	j.Priority, j.MaxRetries, j.Failures, j.Runs, j.Lost, j.State = config.Priority(prio), int(retries), int(failures), int(runs), int(lost), int(state)
	return nil
}

// ErrCorruptJob reports bytes that are not a job record.
var ErrCorruptJob = errors.New("queue: corrupt job record")

// DecodeJob parses a job record.
func DecodeJob(b []byte) (*Job, error) {
	var j Job
	if err := msgpack.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptJob, err)
	}
	return &j, nil
}

// Encode returns the msgpack encoding of j.
func (j *Job) Encode() ([]byte, error) {
	b, err := msgpack.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("queue: encode job: %w", err)
	}
	return b, nil
}

// GrantedJob is a durable job granted to the calling node: its id and its record, whose Runs
// is the token of this run.
type GrantedJob struct {
	ID  []byte
	Job *Job
}

// JobOutcome is how a run of a durable job ended.
type JobOutcome int

const (
	// RunDone: the handler returned a result.
	RunDone JobOutcome = iota + 1
	// RunFailed: the handler failed; the job is retried after Backoff while its retries last,
	// then dead-lettered.
	RunFailed
	// RunGivenBack: the node is closing; the job goes back to the head of its line, no retry spent.
	RunGivenBack
)

// RunEnd is what FinishJob needs to know about one run.
type RunEnd struct {
	ID      []byte
	Run     int
	Outcome JobOutcome
	// Data is the handler's result (RunDone) or its error message (RunFailed).
	Data []byte
	// Backoff is the wait before the next run (RunFailed).
	Backoff time.Duration
}

// Finish is what FinishJob did.
type Finish int

const (
	// FinishStale: the run was no longer the node's (its lease had lapsed); nothing changed.
	FinishStale Finish = iota
	// FinishDone: the result is kept.
	FinishDone
	// FinishRetry: the job runs again after its backoff.
	FinishRetry
	// FinishDead: the job failed for the last time and went to the dead-letter list.
	FinishDead
	// FinishRequeued: the job is back in line.
	FinishRequeued
)

// ResultStatus says how a durable job ended.
type ResultStatus int

const (
	// ResultDone: the handler returned Data.
	ResultDone ResultStatus = iota
	// ResultFailed: the handler failed for the last time (or the job's lease lapsed too often);
	// Data is the error's text.
	ResultFailed
	// ResultExpired: the job's time in line ran out before a node took it.
	ResultExpired
	// ResultEvicted: the job was waiting when its key was reset.
	ResultEvicted
)

// JobState is what Result found.
type JobState int

const (
	// JobUnknown: no such job, or its result has expired.
	JobUnknown JobState = iota
	// JobPending: the job has not ended.
	JobPending
	// JobEnded: the job ended; see the JobResult.
	JobEnded
)

// JobResult is a durable job's result.
type JobResult struct {
	State  JobState
	Status ResultStatus
	Data   []byte
}

func decodeResult(b []byte) (JobResult, error) {
	var v []any
	if err := msgpack.Unmarshal(b, &v); err != nil || len(v) != 2 {
		return JobResult{}, fmt.Errorf("queue: corrupt job result (%v)", err)
	}
	st, ok1 := toInt(v[0])
	var data []byte
	switch d := v[1].(type) {
	case string:
		data = []byte(d)
	case []byte:
		data = d
	default:
		ok1 = false
	}
	if !ok1 {
		return JobResult{}, errors.New("queue: corrupt job result")
	}
	return JobResult{State: JobEnded, Status: ResultStatus(st), Data: data}, nil
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), true
	}
	return 0, false
}

// JobBackend is the part of a Backend that keeps durable jobs.
type JobBackend interface {
	// Enqueue puts a durable job's ticket in its line and stores its record: Queued, Full or
	// WouldExceed, never Granted (a node that runs its handler takes it from the line).
	Enqueue(ctx context.Context, p Params, t *Ticket, raw []byte, job []byte) (AdmitReply, error)
	// FinishJob ends a run of a durable job granted to the calling node, and reports whether
	// somebody waits for its result.
	FinishJob(ctx context.Context, key string, p Params, e RunEnd) (f Finish, woken bool, err error)
	// RenewLease extends the lease of a running job; false when the run is no longer the caller's.
	RenewLease(ctx context.Context, key string, p Params, id []byte, run int, lease time.Duration) (bool, error)
	// Result reads a durable job's result, and records that somebody waits for it.
	Result(ctx context.Context, key string, id []byte) (JobResult, error)
	// Handlers records that node runs the handlers named (for ttl), and lists the handlers
	// some live node runs.
	Handlers(ctx context.Context, names []string, ttl time.Duration) ([]string, error)
	// DeadLetters returns the last n entries of key's dead-letter list, oldest first: corrupt
	// tickets as they were, durable jobs as DecodeDeadJob reads them.
	DeadLetters(ctx context.Context, key string, n int) ([][]byte, error)
}

// DeadJob is a durable job that failed for the last time, as its key's dead-letter list keeps it.
type DeadJob struct {
	ID             []byte
	Key, Handler   string
	Payload        []byte
	Failures, Lost int
	Error          string
	At             int64 // µs of server time
}

// DecodeDeadJob reads a dead-letter entry of a durable job; ok is false for other entries.
func DecodeDeadJob(b []byte) (d DeadJob, ok bool) {
	var v []any
	if msgpack.Unmarshal(b, &v) != nil || len(v) != 9 {
		return d, false
	}
	str := func(x any) (string, bool) {
		switch s := x.(type) {
		case string:
			return s, true
		case []byte:
			return string(s), true
		}
		return "", false
	}
	tag, ok1 := str(v[0])
	id, ok2 := str(v[1])
	key, ok3 := str(v[2])
	h, ok4 := str(v[3])
	payload, ok5 := str(v[4])
	failures, ok6 := toInt(v[5])
	lost, ok7 := toInt(v[6])
	msg, ok8 := str(v[7])
	at, ok9 := toInt(v[8])
	if tag != "job" || !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8 && ok9) || len(id) != IDLen {
		return d, false
	}
	return DeadJob{ID: []byte(id), Key: key, Handler: h, Payload: []byte(payload), Failures: int(failures), Lost: int(lost),
		Error: msg, At: at}, true
}
