package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
)

// ErrNoAnswer is the error of a backend call whose answer did not come by the deadline its
// context carries. It says that Redis was silent for that long, nothing more: whether that is
// an outage depends on how long the caller gave it.
var ErrNoAnswer = errors.New("queue: no answer by the deadline")

// outageReplies are the prefixes of the error replies of a server that cannot serve now but
// will: loading its data set, a cluster without quorum or in a resharding, a slot moving while
// a failover settles (a MOVED or ASK that outlasted the client's redirects: seen in
// TestChaosClusterFailover), a replica cut from its master or written to after a failover, a
// script running too long, no free connection.
var outageReplies = []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MOVED ", "ASK ", "MASTERDOWN", "READONLY", "BUSY ",
	"ERR max number of clients reached"}

// Outage reports whether err, the error of a backend call, is a failure of Redis or of the
// connection to it: a dial or I/O error, the Redis client's own read or write timeout, or the
// reply of a server that cannot serve now (LOADING, CLUSTERDOWN, TRYAGAIN, MOVED, ASK,
// MASTERDOWN, READONLY, BUSY). It is false for a context that ended (the caller gave up, which tells
// nothing about Redis), for ErrNoAnswer, for a pool with no free connection (back-pressure,
// not an outage), for a client closed by its owner, and for a script's error or a malformed
// reply (a bug, which retrying elsewhere would not cure).
func Outage(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrNoAnswer), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrClosed):
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true // dial errors and the client's own timeouts
	}
	for _, p := range outageReplies {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// MayHaveRun reports whether a command that failed with err may have run on Redis all the same:
// the connection failed after it was sent (a timeout, a reset, an EOF). A context that ended
// before the call, a dial error or a refused connection say it never reached Redis; ErrNoAnswer
// is left to the admit's own undo (undoAdmit), which knows how it ended.
func MayHaveRun(err error) bool {
	if !Outage(err) {
		return false
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		return false
	}
	if _, ok := errors.AsType[redis.Error](err); ok {
		return false // a reply: the server refused the command (LOADING, READONLY, …)
	}
	return !errors.Is(err, syscall.ECONNREFUSED)
}

// Failure is the error of a backend call for op that failed with err: ctx's own error when ctx
// ended (with err kept as a second cause), config.ErrUnavailable with err when Redis or the
// connection failed (Outage), else err; each wrapped with op.
func Failure(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return fmt.Errorf("%s: %w", op, err)
		}
		return fmt.Errorf("%s: %w (%w)", op, cerr, err)
	}
	if Outage(err) {
		return fmt.Errorf("%s: %w: %w", op, config.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
