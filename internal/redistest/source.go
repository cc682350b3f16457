package redistest

import (
	"errors"
	"fmt"
	"os"
)

// source is where the shared server comes from.
type source int

const (
	sourceNone   source = iota // nowhere: the test skips, or fails under RATELTD_REQUIRE_REDIS=1
	sourceURL                  // REDIS_URL: a server already running
	sourceBinary               // redis-server on PATH, started by this harness
	sourceDocker               // the image redis:7, run by a Docker daemon that answers
)

func (s source) String() string {
	return [...]string{"none", "REDIS_URL", "redis-server", "docker"}[s]
}

// choice is where the shared server comes from; with sourceNone, why (err) and whether the
// test fails (fail) rather than skips.
type choice struct {
	src  source
	err  error
	fail bool
}

// errNoRedis is the reason of a choice of sourceNone.
var errNoRedis = errors.New("redistest: no Redis: REDIS_URL is unset, redis-server is not on PATH " +
	"(apt-get install redis-server) and no Docker daemon answers")

// choose decides where the shared server comes from, in this order: REDIS_URL (url) when set,
// else redis-server on PATH (binary), else a Docker daemon when docker reports it answers (it
// is called only then, as it dials the daemon); else nowhere, and the test fails when require
// (RATELTD_REQUIRE_REDIS=1, as in CI), else skips.
func choose(url string, binary bool, docker func() error, require bool) choice {
	switch {
	case url != "":
		return choice{src: sourceURL}
	case binary:
		return choice{src: sourceBinary}
	}
	err := docker()
	if err == nil {
		return choice{src: sourceDocker}
	}
	return choice{src: sourceNone, err: fmt.Errorf("%w (%w)", errNoRedis, err), fail: require}
}

// required reports whether tests must fail, not skip, without Redis.
func required() bool { return os.Getenv("RATELTD_REQUIRE_REDIS") == "1" }
