// Package lua is the engine behind package rateltd; it makes no stability promise and exports only
// what the module uses (package queue). Its one job is to hold rateltd's Redis scripts, one per
// file, embedded so that a missing file breaks the build. Every per-key script is limits.lua (the
// rate-limit algorithms), pause.lua (what a pause is and which one is in force) and line.lua
// (tickets, counters, TTLs) and fair.lua (fair shares between tenants within a line) followed by
// its own file, so that what several scripts share is
// written once. Admit puts its fast path, admit_fast.lua, before line.lua, after quiet.lua (the
// fast path's condition: no pause, no line) and shadow.lua (a shadow limit's grants): a request
// granted at once does not pay for defining the line's helpers. AdmitMany, the admit of several tickets and keys in one call, opens with
// admit_many.lua, whose locals stand in for KEYS and ARGV, so that the same helpers serve one key
// after another. Each file's header names its KEYS, ARGV and reply; the queue package turns
// replies into Go values. Each script is also a Redis function library (library.go): the same
// source, with its helpers made once when Redis loads it rather than on every call; package
// queue calls the functions where Redis has them and the scripts elsewhere.
package lua

import (
	"crypto/sha1"
	_ "embed"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed limits.lua
	limits string
	//go:embed pause.lua
	pause string
	//go:embed quiet.lua
	quiet string
	//go:embed shadow.lua
	shadow string
	//go:embed line.lua
	line string
	//go:embed fair.lua
	fair string
	//go:embed admit_fast.lua
	admitFast string
	//go:embed admit.lua
	admit string
	//go:embed admit_many.lua
	admitMany string
	//go:embed admit_many_end.lua
	admitManyEnd string
	//go:embed grant.lua
	grant string
	//go:embed claim.lua
	claim string
	//go:embed cancel.lua
	cancel string
	//go:embed refund.lua
	refund string
	//go:embed check.lua
	check string
	//go:embed settle.lua
	settle string
	//go:embed slots.lua
	slots string
	//go:embed holdback.lua
	holdback string
	//go:embed status.lua
	status string
	//go:embed reset.lua
	reset string
	//go:embed index_add.lua
	indexAdd string
	//go:embed pause_until.lua
	pauseUntil string
	//go:embed index_remove.lua
	indexRemove string
	//go:embed jobs.lua
	jobs string
	//go:embed enqueue.lua
	enqueue string
	//go:embed enqueue_end.lua
	enqueueEnd string
	//go:embed enqueue_many.lua
	enqueueMany string
	//go:embed enqueue_many_end.lua
	enqueueManyEnd string
	//go:embed job_finish.lua
	jobFinish string
	//go:embed job_done.lua
	jobDone string
	//go:embed job_done_many.lua
	jobDoneMany string
	//go:embed job_renew.lua
	jobRenew string
	//go:embed job_wait.lua
	jobWait string
	//go:embed job_cancel.lua
	jobCancel string
	//go:embed handlers.lua
	handlers string
	//go:embed counters.lua
	counters string
	//go:embed broadcast.lua
	broadcast string
)

// The scripts. The per-key ones take the KEYS and first six ARGV that limits.lua describes;
// those that know durable jobs take the five KEYS of jobs.lua after them.
var (
	Admit       = NewScript(limits + pause + quiet + shadow + admitFast + line + fair + admit + "\nreturn line_admit()\n")
	AdmitMany   = NewScript(admitMany + limits + pause + quiet + shadow + line + fair + admit + admitManyEnd)
	Enqueue     = NewScript(limits + pause + enqueue + line + fair + jobs + admit + enqueueEnd + "\nreturn enqueue_job(ARGV[14], tonumber(ARGV[15]) or 0)\n")
	EnqueueMany = NewScript(limits + pause + enqueueMany + line + fair + jobs + admit + enqueueEnd + enqueueManyEnd)
	Grant       = withJobs(grant)
	Claim       = withJobs(claim)
	Cancel      = withJobs(cancel)
	Refund      = withJobs(refund)
	Check       = perKey(check)
	Settle      = perKey(settle)
	Slots       = perKey(slots)
	HoldBack    = perKey(holdback)
	Status      = withJobs(status)
	Reset       = withJobs(reset)
	JobDone     = withJobs(jobFinish + jobDone)
	JobDoneMany = withJobs(jobFinish + jobDoneMany)
	JobRenew    = withJobs(jobRenew)
	JobWait     = withJobs(jobWait)
	JobCancel   = withJobs(jobCancel)
	IndexAdd    = NewScript(indexAdd)
	PauseUntil  = NewScript(pause + pauseUntil)
	IndexRemove = NewScript(indexRemove)
	Handlers    = NewScript(handlers)
	Counters    = NewScript(counters)
	Broadcast   = NewScript(broadcast)
)

// All lists every script, for loading them before they are pipelined.
var All = []*redis.Script{Admit, AdmitMany, Enqueue, EnqueueMany, Grant, Claim, Cancel, Refund, Check, Settle, Slots, HoldBack, Status, Reset, JobDone,
	JobDoneMany, JobRenew,
	JobWait, JobCancel, IndexAdd, IndexRemove, PauseUntil, Handlers, Counters, Broadcast}

func perKey(body string) *redis.Script { return NewScript(limits + pause + line + fair + body) }

func withJobs(body string) *redis.Script {
	return NewScript(limits + pause + line + fair + jobs + body)
}

// scripts maps the SHA1 of every script made by NewScript, and the name of its function, to
// its source and library (go-redis's Script keeps its source to itself). Written by NewScript,
// read by Source and Function.
var scripts sync.Map

// script is what NewScript keeps of a script.
type script struct {
	sha, src string
	fn, lib  string // the name of its function, the source of its library (see Library)
}

// NewScript returns the script of src and keeps src for Source, and src as a Redis function
// (Library) for Function. Safe for concurrent use. It panics when src cannot be a library: a
// script of this package's making always can, which its tests check.
func NewScript(src string) *redis.Script {
	s := redis.NewScript(src)
	body, err := libraryBody(src)
	if err != nil {
		panic(fmt.Errorf("lua: script %s: %w", s.Hash(), err))
	}
	// The name is the digest of the library's body, so that a library made differently from
	// the same script is another library.
	sc := &script{sha: s.Hash(), src: src, fn: FunctionPrefix + fmt.Sprintf("%x", sha1.Sum([]byte(body)))[:20]}
	sc.lib = named(sc.fn, body)
	scripts.Store(sc.sha, sc)
	scripts.Store(sc.fn, sc)
	return s
}

// FunctionPrefix opens the name of every script's function and library: rateltd_ and the first
// 20 hex digits of the SHA1 of the library, so that nodes of different versions each find their
// own, and a library of that name always holds the same code.
const FunctionPrefix = "rateltd_"

// Source returns the source of the script made by NewScript whose SHA1 (or function's name) is
// sha, for sending it as EVAL when Redis has lost it (NOSCRIPT, or the function not found);
// false when no such script was made.
func Source(sha string) (string, bool) {
	v, ok := scripts.Load(sha)
	if !ok {
		return "", false
	}
	return v.(*script).src, true
}

// Function returns the name of the function of the script whose SHA1 is sha and the source of
// its library, for FUNCTION LOAD and FCALL; false when NewScript made no such script.
func Function(sha string) (name, lib string, ok bool) {
	v, ok := scripts.Load(sha)
	if !ok {
		return "", "", false
	}
	sc := v.(*script)
	return sc.fn, sc.lib, true
}
