// Package lua holds rateltd's Redis scripts, one per file, embedded so that a missing file breaks
// the build. Every per-key script is limits.lua (the rate-limit algorithms) and line.lua (pause,
// tickets, counters, TTLs) followed by its own file, so that what several scripts share is
// written once. Admit puts its fast path, admit_fast.lua, between the two: a request granted at
// once does not pay for defining the line's helpers. Each file's header names its KEYS, ARGV and
// reply; the queue package turns replies into Go values.
package lua

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed limits.lua
	limits string
	//go:embed line.lua
	line string
	//go:embed admit_fast.lua
	admitFast string
	//go:embed admit.lua
	admit string
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
)

// The scripts. The per-key ones take the KEYS and first six ARGV that limits.lua describes.
var (
	Admit       = redis.NewScript(limits + admitFast + line + admit)
	Grant       = perKey(grant)
	Claim       = perKey(claim)
	Cancel      = perKey(cancel)
	Refund      = perKey(refund)
	Check       = perKey(check)
	Status      = perKey(status)
	Reset       = perKey(reset)
	IndexAdd    = redis.NewScript(indexAdd)
	PauseUntil  = redis.NewScript(pauseUntil)
	IndexRemove = redis.NewScript(indexRemove)
)

// All lists every script, for loading them before they are pipelined.
var All = []*redis.Script{Admit, Grant, Claim, Cancel, Refund, Check, Status, Reset, IndexAdd, IndexRemove, PauseUntil}

// NumKeys is how many KEYS every per-key script takes.
const NumKeys = 10

func perKey(body string) *redis.Script { return redis.NewScript(limits + line + body) }
