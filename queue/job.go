package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rateltd/rateltd/config"
)

// Job is a durable job's record, kept next to its key's line until the job ends. It is stored
// msgpack-encoded as an array, in the order jobs.lua names (J_KEY for Key, and so on), so that
// the scripts can update it.
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
	// State is jobInLine, jobRunning, jobRetrying, jobScheduled or jobCancelling.
	State int
	// Holder is the node running the job, Owner the node that enqueued it (16 bytes each;
	// Holder is empty when the job is not running).
	Holder, Owner []byte
	// ResultTTL is how long the job's result is kept, ms.
	ResultTTL int64
	// Enqueued is when the job was enqueued, µs of server time.
	Enqueued int64
	// Cost is what each run of the job counts against the rates that count units; 0 reads
	// as 1. Stored only when not 1 or when a trace context follows (a record of 15 fields),
	// so that a record of a job of cost 1 and no trace context reads on nodes of earlier
	// versions.
	Cost int64
	// TraceParent and TraceState are the W3C trace context (the traceparent and tracestate
	// headers) of the span that enqueued the job, for the spans of its runs to link to; empty
	// when the enqueue was not traced. Stored only when set (16 or 17 fields, or empty before
	// a tenant).
	TraceParent, TraceState string
	// Tenant is the job's tenant within its key (see fair.lua), empty for none; Weight its
	// weight, 0 read as 1. Stored only with a tenant (18 and 19 fields).
	Tenant string
	Weight int64
}

// Job states (jobs.lua's JOB_IN_LINE, JOB_RUNNING, JOB_RETRYING, JOB_SCHEDULED,
// JOB_CANCELLING): a scheduled job waits for its time to join its line; a cancelling one runs,
// and its node is to stop it.
const (
	jobInLine     = 0
	jobRunning    = 1
	jobRetrying   = 2
	jobScheduled  = 3
	jobCancelling = 4
)

// Schedule marks j as scheduled: enqueued to join its line later.
func (j *Job) Schedule() { j.State = jobScheduled }

// running reports whether j is of a run in progress (jobs.lua's job_runs).
func (j *Job) running() bool { return j.State == jobRunning || j.State == jobCancelling }

// jobFields is how many fields every record has: cost, traceparent, tracestate, tenant and
// weight may follow,
// and a record of a later version may carry more, which this one skips.
const jobFields = 14

// storedFields is how many fields j's record has: the optional ones are written up to the
// last that is set, each before it too (Lua's msgpack writes a table with a hole as a map).
func (j *Job) storedFields() int {
	switch {
	case j.Tenant != "":
		return jobFields + 5
	case j.TraceState != "":
		return jobFields + 3
	case j.TraceParent != "":
		return jobFields + 2
	case j.Cost > 1:
		return jobFields + 1
	}
	return jobFields
}

// EncodeMsgpack writes j as jobs.lua reads it (see Encode).
func (j *Job) EncodeMsgpack(enc *msgpack.Encoder) error {
	_, err := enc.Writer().Write(j.record())
	return err
}

// record is j's record: a msgpack array of its stored fields, bytes as str (Lua's msgpack
// knows no bin), each integer in its smallest form. Written by hand rather than by the msgpack
// library, in one allocation: every Enqueue encodes a record.
func (j *Job) record() []byte {
	n := j.storedFields()
	b := make([]byte, 0, 16+len(j.Key)+len(j.Handler)+len(j.Payload)+len(j.Holder)+len(j.Owner)+
		len(j.TraceParent)+len(j.TraceState)+len(j.Tenant)+12*9)
	if n < 16 {
		b = append(b, 0x90|byte(n)) // fixarray
	} else {
		b = append(b, 0xdc, 0, byte(n)) // array 16: up to 19 fields
	}
	b = appendStr(b, j.Key)
	b = appendStr(b, j.Handler)
	b = appendStr(b, j.Payload)
	for _, v := range [...]int64{int64(j.Priority.Line()), int64(j.MaxRetries), int64(j.Failures), int64(j.Runs),
		int64(j.Lost), j.Wait, int64(j.State)} {
		b = appendInt(b, v)
	}
	b = appendStr(b, j.Holder)
	b = appendStr(b, j.Owner)
	b = appendInt(b, j.ResultTTL)
	b = appendInt(b, j.Enqueued)
	if n > jobFields {
		b = appendInt(b, max(1, j.Cost))
	}
	if n > jobFields+1 {
		b = appendStr(b, j.TraceParent)
	}
	if n > jobFields+2 {
		b = appendStr(b, j.TraceState)
	}
	if n > jobFields+3 {
		b = appendStr(b, j.Tenant)
		b = appendInt(b, max(1, j.Weight))
	}
	return b
}

// DecodeMsgpack reads what EncodeMsgpack (or jobs.lua) wrote; fields past the last it knows
// (a later version's) are skipped. Field by field, without field readers: every grant step
// decodes each job it grants.
func (j *Job) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < jobFields {
		return fmt.Errorf("array of %d, want at least %d", n, jobFields)
	}
	for i := range n {
		switch i {
		case 0:
			j.Key, err = dec.DecodeString()
		case 1:
			j.Handler, err = dec.DecodeString()
		case 2:
			j.Payload, err = decodeBytes(dec)
		case 3:
			var line int
			err = decodeInt(dec, &line)
			j.Priority = config.PriorityOfLine(line)
		case 4:
			err = decodeInt(dec, &j.MaxRetries)
		case 5:
			err = decodeInt(dec, &j.Failures)
		case 6:
			err = decodeInt(dec, &j.Runs)
		case 7:
			err = decodeInt(dec, &j.Lost)
		case 8:
			err = decodeInt(dec, &j.Wait)
		case 9:
			err = decodeInt(dec, &j.State)
		case 10:
			j.Holder, err = decodeBytes(dec)
		case 11:
			j.Owner, err = decodeBytes(dec)
		case 12:
			err = decodeInt(dec, &j.ResultTTL)
		case 13:
			err = decodeInt(dec, &j.Enqueued)
		case 14:
			err = decodeInt(dec, &j.Cost)
		case 15:
			j.TraceParent, err = dec.DecodeString()
		case 16:
			j.TraceState, err = dec.DecodeString()
		case 17:
			j.Tenant, err = dec.DecodeString()
		case 18:
			err = decodeInt(dec, &j.Weight)
		default:
			err = dec.Skip()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeInt reads a msgpack integer into dst.
func decodeInt[T ~int | ~int64](dec *msgpack.Decoder, dst *T) error {
	v, err := dec.DecodeInt64()
	*dst = T(v)
	return err
}

// decodeBytes reads a msgpack str or bin (nil as empty) into a new, non-nil slice.
func decodeBytes(dec *msgpack.Decoder) ([]byte, error) {
	b, err := dec.DecodeBytes()
	if b == nil && err == nil {
		b = []byte{}
	}
	return b, err
}

// decodeFields reads a msgpack array of exactly one element per field reader.
func decodeFields(dec *msgpack.Decoder, fields ...func(*msgpack.Decoder) error) error {
	return decodeSomeFields(dec, len(fields), fields...)
}

// decodeSomeFields reads a msgpack array of at least need elements and at most one per field
// reader, each by its reader in order.
func decodeSomeFields(dec *msgpack.Decoder, need int, fields ...func(*msgpack.Decoder) error) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < need || n > len(fields) {
		return fmt.Errorf("array of %d, want %d to %d", n, need, len(fields))
	}
	for _, f := range fields[:n] {
		if err := f(dec); err != nil {
			return err
		}
	}
	return nil
}

// unmarshalFields is decodeFields over bytes.
func unmarshalFields(b []byte, fields ...func(*msgpack.Decoder) error) error {
	return decodeFields(msgpack.NewDecoder(bytes.NewReader(b)), fields...)
}

// str and num are field readers of decodeFields: a string (msgpack str or bin), an integer.
func str(dst *string) func(*msgpack.Decoder) error {
	return func(dec *msgpack.Decoder) error { return decodeInto(dec.DecodeString, dst) }
}

func num(dst *int64) func(*msgpack.Decoder) error {
	return func(dec *msgpack.Decoder) error { return decodeInto(dec.DecodeInt64, dst) }
}

// errCorruptJob reports bytes that are not a job record.
var errCorruptJob = errors.New("queue: corrupt job record")

// decodeJob parses a job record.
func decodeJob(b []byte) (*Job, error) {
	var j Job
	if err := msgpack.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptJob, err)
	}
	return &j, nil
}

// Encode returns the msgpack encoding of j.
func (j *Job) Encode() ([]byte, error) {
	return j.record(), nil
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
	// FinishCancelled: the job was cancelled while it ran (CancelJob) and ended so.
	FinishCancelled
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
	// ResultCancelled: the job was cancelled (CancelJob).
	ResultCancelled
)

// Renewal is what RenewLease found.
type Renewal int

const (
	// RenewLost: the run is no longer the caller's (its lease lapsed).
	RenewLost Renewal = iota
	// RenewKept: the lease is renewed.
	RenewKept
	// RenewCancelled: the lease is renewed, but the job was cancelled: stop its handler.
	RenewCancelled
)

// JobCancel is what CancelJob did.
type JobCancel int

const (
	// CancelNoJob: no such job, or it ended already.
	CancelNoJob JobCancel = iota
	// CancelEnded: the job was waiting (in line, scheduled or for a retry) and ended cancelled.
	CancelEnded
	// CancelRunning: the job runs; its node is asked to stop it.
	CancelRunning
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
	var st int64
	var data string
	if err := unmarshalFields(b, num(&st), str(&data)); err != nil {
		return JobResult{}, fmt.Errorf("queue: corrupt job result: %v", err)
	}
	return JobResult{State: JobEnded, Status: ResultStatus(st), Data: []byte(data)}, nil
}

// JobBackend is the part of a Backend that keeps durable jobs.
type JobBackend interface {
	// Enqueue puts a durable job's ticket in its line and stores its record: Queued, Full or
	// WouldExceed, never Granted (a node that runs its handler takes it from the line). With
	// runAt (µs of server time) later than now, it keeps the job, whose record is scheduled,
	// to join its line then (Scheduled), and queues nothing now.
	Enqueue(ctx context.Context, p Params, t *Ticket, raw []byte, job []byte, runAt int64) (AdmitReply, error)
	// EnqueueMany enqueues jobs of one key, of one priority, cost and tenant (the first
	// ticket's; each with its own deadline) in one atomic step: each as Enqueue would, in
	// order, until one is refused (Full or WouldExceed), after which none is tried. It returns
	// one reply per job tried.
	EnqueueMany(ctx context.Context, p Params, jobs []NewJob) ([]AdmitReply, error)
	// FinishJob ends a run of a durable job granted to the calling node, and reports whether
	// somebody waits for its result.
	FinishJob(ctx context.Context, key string, p Params, e RunEnd) (f Finish, woken bool, err error)
	// RenewLease extends the lease of a running job, and says whether the job was cancelled.
	RenewLease(ctx context.Context, key string, p Params, id []byte, run int, lease time.Duration) (Renewal, error)
	// CancelJob ends a waiting or scheduled job with the result cancelled, or marks a running
	// one cancelled for its node to stop; woken says somebody waits for its result.
	CancelJob(ctx context.Context, key string, p Params, id []byte) (c JobCancel, woken bool, err error)
	// Result reads a durable job's result, and records that somebody waits for it.
	Result(ctx context.Context, key string, id []byte) (JobResult, error)
	// Handlers records that node runs the handlers named (for ttl), and lists the handlers
	// some live node runs.
	Handlers(ctx context.Context, names []string, ttl time.Duration) ([]string, error)
	// Scheduled returns the first n of key's scheduled jobs, the earliest due first.
	Scheduled(ctx context.Context, key string, n int) ([]ScheduledJob, error)
	// DeadLetters returns the last n entries of key's dead-letter list, oldest first: corrupt
	// tickets as they were, durable jobs as DecodeDeadJob reads them.
	DeadLetters(ctx context.Context, key string, n int) ([][]byte, error)
}

// ScheduledJob is a job waiting to join its line: its id, when it joins (µs of server time)
// and its record (nil when unreadable, or when the job left the schedule between the reads).
type ScheduledJob struct {
	ID    []byte
	RunAt int64
	Job   *Job
}

// NewJob is one job to enqueue: its ticket, the ticket encoded and its record encoded.
type NewJob struct {
	Ticket      *Ticket
	Raw, Record []byte
	// RunAt is when a scheduled job joins its line (µs of server time); 0 for now. The jobs
	// of one EnqueueMany share the first one's.
	RunAt int64
}

// refused reports whether rep ends an EnqueueMany: a job refused stops the jobs after it.
func refused(rep AdmitReply) bool { return rep.Outcome == Full || rep.Outcome == WouldExceed }

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
	var tag, id, payload string
	var failures, lost int64
	err := unmarshalFields(b, str(&tag), str(&id), str(&d.Key), str(&d.Handler), str(&payload), num(&failures), num(&lost),
		str(&d.Error), num(&d.At))
	if err != nil || tag != "job" || len(id) != idLen {
		return DeadJob{}, false
	}
	d.ID, d.Payload, d.Failures, d.Lost = []byte(id), []byte(payload), int(failures), int(lost)
	return d, true
}
