// Package lua holds rateltd's Redis scripts, one per file, embedded so that a missing file breaks
// the build. Every per-key script is lib.lua followed by its own file: the algorithms several
// scripts share (limiters, pause, counters, TTLs) are written once, in lib.lua. Each file's
// header names its KEYS, ARGV and reply; the queue package turns replies into Go values.
package lua

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lib.lua
	lib string
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
	//go:embed index_remove.lua
	indexRemove string
)

// The scripts. The per-key ones take the KEYS and first six ARGV that lib.lua describes.
var (
	Admit       = redis.NewScript(lib + admit)
	Grant       = redis.NewScript(lib + grant)
	Claim       = redis.NewScript(lib + claim)
	Cancel      = redis.NewScript(lib + cancel)
	Refund      = redis.NewScript(lib + refund)
	Check       = redis.NewScript(lib + check)
	Status      = redis.NewScript(lib + status)
	Reset       = redis.NewScript(lib + reset)
	IndexAdd    = redis.NewScript(indexAdd)
	IndexRemove = redis.NewScript(indexRemove)
)

// All lists every script, for loading them before they are pipelined.
var All = []*redis.Script{Admit, Grant, Claim, Cancel, Refund, Check, Status, Reset, IndexAdd, IndexRemove}

// NumKeys is how many KEYS every per-key script takes.
const NumKeys = 10
