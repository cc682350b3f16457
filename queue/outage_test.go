package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
)

// TestOutage: only failures of Redis or of the connection count as an outage, found from the
// errors a real go-redis client returns.
func TestOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Fresh(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	errCancelled := rdb.Ping(cancelled).Err()
	expired, cancel2 := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel2()
	<-expired.Done()
	errExpired := rdb.Ping(expired).Err()
	errScript := rdb.Eval(ctx, "return redis.error_reply('ERR boom')", nil).Err()
	// The replies of a server that cannot serve now, as Redis sends them.
	reply := func(msg string) error { return rdb.Eval(ctx, "return redis.error_reply(ARGV[1])", nil, msg).Err() }
	errType := func() error {
		k := srv.Prefix(t) + "s"
		rdb.Set(ctx, k, "x", time.Minute)
		return rdb.LPush(ctx, k, "y").Err()
	}()
	closed := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	closed.Close()
	errClosed := closed.Ping(ctx).Err()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	refused := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer refused.Close()
	errRefused := refused.Ping(ctx).Err()

	// A server that accepts and never answers: the client's own read timeout.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	slow := redis.NewClient(&redis.Options{Addr: silent.Addr().String(), ReadTimeout: 50 * time.Millisecond,
		MaxRetries: -1, Protocol: 2, DisableIdentity: true})
	defer slow.Close()
	errReadTimeout := slow.Ping(ctx).Err()

	for _, c := range []struct {
		name   string
		err    error
		outage bool
	}{
		{"cancelled ctx", errCancelled, false},
		{"expired ctx", errExpired, false},
		{"no answer by the caller's deadline", fmt.Errorf("admit: %w", ErrNoAnswer), false},
		{"script error", errScript, false},
		{"wrong type", errType, false},
		{"client closed by its owner", errClosed, false},
		{"pool timeout (back-pressure)", redis.ErrPoolTimeout, false},
		{"connection refused", errRefused, true},
		{"client's own read timeout", errReadTimeout, true},
		{"LOADING", reply("LOADING Redis is loading the dataset in memory"), true},
		{"CLUSTERDOWN", reply("CLUSTERDOWN The cluster is down"), true},
		{"TRYAGAIN", reply("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{"MOVED past the client's redirects", reply("MOVED 8958 127.0.0.1:35075"), true},
		{"ASK past the client's redirects", reply("ASK 8958 127.0.0.1:35075"), true},
		{"READONLY", reply("READONLY You can't write against a read only replica."), true},
	} {
		if c.err == nil {
			t.Fatalf("%s: the client returned no error; the case tests nothing", c.name)
		}
		if got := Outage(c.err); got != c.outage {
			t.Errorf("%s (%v): Outage = %v, want %v", c.name, c.err, got, c.outage)
		}
	}
}

// TestFailure: a backend error keeps its cause, ctx's error wins over ErrUnavailable, and
// only an outage is ErrUnavailable.
func TestFailure(t *testing.T) {
	t.Parallel()
	down := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	err := Failure(cancelled, "status", down)
	if !errors.Is(err, context.Canceled) || errors.Is(err, config.ErrUnavailable) || !errors.Is(err, down) {
		t.Errorf("cancelled ctx: %v; want context.Canceled with the cause, not ErrUnavailable", err)
	}
	err = Failure(context.Background(), "status", down)
	if !errors.Is(err, config.ErrUnavailable) || !errors.Is(err, down) || !strings.HasPrefix(err.Error(), "status: ") {
		t.Errorf("outage: %v; want ErrUnavailable and the cause, named by the operation", err)
	}
	bug := errors.New("malformed reply")
	if err = Failure(context.Background(), "status", bug); errors.Is(err, config.ErrUnavailable) || !errors.Is(err, bug) {
		t.Errorf("not an outage: %v; want the cause alone", err)
	}
}

// TestParseGrantOddJobs: a grant reply whose job list is not pairs is an error that says so.
func TestParseGrantOddJobs(t *testing.T) {
	t.Parallel()
	rep := []any{int64(0), int64(1), int64(0), []any{}, []any{}, []any{"only-an-id"}, int64(0), []any{}}
	_, err := parseGrant(rep)
	if err == nil || !strings.Contains(err.Error(), "1 elements") || strings.Contains(err.Error(), "nil") {
		t.Fatalf("err = %v; want one naming the odd length", err)
	}
}

// TestParseRuntimeBadFields: a runtime field that cannot be read is reported, not dropped in
// silence; an unreadable pause holds.
func TestParseRuntimeBadFields(t *testing.T) {
	t.Parallel()
	rt := parseRuntime(map[string]string{
		"limit:good": encodeLimit(config.Limit{Max: 5, Window: time.Second}),
		"limit:bad":  "\xc1garbage",
		"pause:grp":  "soon",
	})
	if _, ok := rt.Limits["good"]; !ok {
		t.Errorf("the readable limit was lost: %+v", rt.Limits)
	}
	if _, ok := rt.Limits["bad"]; ok {
		t.Errorf("an unreadable limit was taken: %+v", rt.Limits["bad"])
	}
	if rt.Bad["limit:bad"] == nil || rt.Bad["pause:grp"] == nil || len(rt.Bad) != 2 {
		t.Errorf("Bad = %v; want both unreadable fields", rt.Bad)
	}
	if rt.Pauses["grp"] != PausedForever {
		t.Errorf("unreadable pause = %d; want PausedForever", rt.Pauses["grp"])
	}
}
