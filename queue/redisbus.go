package queue

// The Redis backend's nodes and the state they share outside any key: heartbeats, the
// server's clock, the index of active keys, the runtime configuration and pub/sub wake-ups.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/lua"
)

func (r *Redis) Heartbeat(ctx context.Context, node []byte, ttl time.Duration) (bool, error) {
	err := r.rdb.SetArgs(ctx, r.ks.heartbeat(node), 1, redis.SetArgs{TTL: ttl, Get: true}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("queue: heartbeat: %w", err)
	}
	return false, nil
}

func (r *Redis) Forget(ctx context.Context, node []byte) error {
	if err := r.rdb.Del(ctx, r.ks.heartbeat(node)).Err(); err != nil {
		return fmt.Errorf("queue: forget node: %w", err)
	}
	return nil
}

func (r *Redis) Alive(ctx context.Context, nodes [][]byte) ([]bool, error) {
	cmds := make([]*redis.IntCmd, len(nodes))
	pipe := r.rdb.Pipeline()
	for i, n := range nodes {
		cmds[i] = pipe.Exists(ctx, r.ks.heartbeat(n))
	}
	if len(nodes) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("queue: heartbeats: %w", err)
		}
	}
	alive := make([]bool, len(nodes))
	for i, c := range cmds {
		alive[i] = c.Val() == 1
	}
	return alive, nil
}

func (r *Redis) Time(ctx context.Context) (int64, error) {
	t, err := r.rdb.Time(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("queue: time: %w", err)
	}
	return t.UnixMicro(), nil
}

func (r *Redis) Activate(ctx context.Context, acts []Activation) error {
	cmds := make([]*redis.Cmd, 0, 2*len(acts))
	keys := make([]string, 0, 2*len(acts)) // keys[i]: the key of cmds[i]
	for _, a := range acts {
		ttl := max(a.Until-a.At+indexGrace, indexGrace) / 1000
		cmds = append(cmds, evalSHA(ctx, lua.IndexAdd, []any{r.ks.shardOf(a.Key)}, a.Key, a.At, ttl))
		keys = append(keys, a.Key)
		if a.Wake {
			cmds = append(cmds, redis.NewCmd(ctx, "publish", r.ks.events(), encodeEvent(Event{Kind: EventQueued, Key: a.Key})))
			keys = append(keys, a.Key)
		}
	}
	return r.evalJoined(ctx, "activate", cmds, keys)
}

func (r *Redis) Deactivate(ctx context.Context, keys []string, before []int64) error {
	cmds := make([]*redis.Cmd, len(keys))
	for i, key := range keys {
		cmds[i] = evalSHA(ctx, lua.IndexRemove, []any{r.ks.shardOf(key)}, key, before[i])
	}
	return r.evalJoined(ctx, "deactivate", cmds, keys)
}

// evalJoined sends cmds in one round trip and returns their errors joined, each named by what
// and keys[i], the key cmds[i] is for.
func (r *Redis) evalJoined(ctx context.Context, what string, cmds []*redis.Cmd, keys []string) error {
	r.evalPipelined(ctx, cmds)
	var errs []error
	for i, c := range cmds {
		if err := c.Err(); err != nil {
			errs = append(errs, fmt.Errorf("queue: %s %q: %w", what, keys[i], err))
		}
	}
	return errors.Join(errs...)
}

func (r *Redis) ActiveKeys(ctx context.Context) ([]string, error) {
	keys, _, _, err := r.ActiveKeysSince(ctx, 0)
	return keys, err
}

func (r *Redis) ActiveKeysSince(ctx context.Context, since int64) ([]string, []int64, int64, error) {
	from := "-inf"
	if since != 0 {
		from = "(" + strconv.FormatInt(since, 10)
	}
	cmds := make([]*redis.ZSliceCmd, r.ks.shards)
	pipe := r.rdb.Pipeline()
	now := pipe.Time(ctx) // first: what is added after the reads is added after now
	for i := range cmds {
		cmds[i] = pipe.ZRangeByScoreWithScores(ctx, r.ks.shard(i), &redis.ZRangeBy{Min: from, Max: "+inf"})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, 0, fmt.Errorf("queue: active keys: %w", err)
	}
	var keys []string
	var at []int64
	for _, c := range cmds {
		for _, z := range c.Val() {
			key, _ := z.Member.(string)
			keys, at = append(keys, key), append(at, int64(z.Score))
		}
	}
	return keys, at, now.Val().UnixMicro(), nil
}

// Runtime configuration fields: "limit:<key>" and "pause:<group or *>".
const (
	fieldLimit = RuntimeLimitField
	fieldPause = "pause:"
	// fieldFactor+key holds the fraction of an adaptive key's limit in force.
	fieldFactor = "factor:"
)

// RuntimeLimitField begins the name of a runtime limit's field in Runtime.Bad: it is followed
// by the key.
const RuntimeLimitField = "limit:"

func (r *Redis) LoadRuntime(ctx context.Context) (Runtime, error) {
	m, err := r.rdb.HGetAll(ctx, r.ks.runtime()).Result()
	if err != nil {
		return Runtime{}, fmt.Errorf("queue: load runtime config: %w", err)
	}
	return parseRuntime(m), nil
}

// parseRuntime reads the runtime hash. A field it cannot read goes to Runtime.Bad: an
// unreadable limit is left out (the key keeps its configured one), an unreadable pause counts
// as a pause with no end, the safe reading of an operator's pause.
func parseRuntime(m map[string]string) Runtime {
	rt := Runtime{Limits: map[string]config.Limit{}, Pauses: map[string]int64{}, Factors: map[string]float64{}}
	bad := func(f string, err error) {
		if rt.Bad == nil {
			rt.Bad = map[string]error{}
		}
		rt.Bad[f] = fmt.Errorf("queue: runtime config field %q: %w", f, err)
	}
	for f, v := range m {
		switch {
		case strings.HasPrefix(f, fieldLimit):
			l, err := decodeLimit(v)
			if err != nil {
				bad(f, err)
				continue
			}
			rt.Limits[f[len(fieldLimit):]] = l
		case strings.HasPrefix(f, fieldPause):
			var until int64
			if _, err := fmt.Sscan(v, &until); err != nil {
				bad(f, err)
				until = PausedForever
			}
			rt.Pauses[f[len(fieldPause):]] = until
		case strings.HasPrefix(f, fieldFactor):
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || x <= 0 || x > 1 {
				bad(f, fmt.Errorf("factor %q: want a number above 0 and at most 1", v))
				continue
			}
			rt.Factors[f[len(fieldFactor):]] = x
		}
	}
	return rt
}

func (r *Redis) SetRuntimeLimit(ctx context.Context, key string, l *config.Limit) error {
	var err error
	if l == nil {
		err = r.rdb.HDel(ctx, r.ks.runtime(), fieldLimit+key).Err()
	} else {
		err = r.rdb.HSet(ctx, r.ks.runtime(), fieldLimit+key, encodeLimit(*l)).Err()
	}
	if err != nil {
		return fmt.Errorf("queue: set limit %q: %w", key, err)
	}
	return r.Broadcast(ctx, Event{Kind: EventRuntime, Key: key})
}

func (r *Redis) SetRuntimeFactor(ctx context.Context, key string, f float64) error {
	var err error
	if f >= 1 {
		err = r.rdb.HDel(ctx, r.ks.runtime(), fieldFactor+key).Err()
	} else {
		err = r.rdb.HSet(ctx, r.ks.runtime(), fieldFactor+key, strconv.FormatFloat(f, 'g', 6, 64)).Err()
	}
	if err != nil {
		return fmt.Errorf("queue: set factor %q: %w", key, err)
	}
	return r.Broadcast(ctx, Event{Kind: EventRuntime, Key: key})
}

func (r *Redis) SetRuntimePause(ctx context.Context, name string, until int64) error {
	var err error
	if until == NotPaused {
		err = r.rdb.HDel(ctx, r.ks.runtime(), fieldPause+name).Err()
	} else {
		err = r.rdb.HSet(ctx, r.ks.runtime(), fieldPause+name, until).Err()
	}
	if err != nil {
		return fmt.Errorf("queue: pause %q: %w", name, err)
	}
	return r.Broadcast(ctx, Event{Kind: EventRuntime, Key: name})
}

func (r *Redis) Broadcast(ctx context.Context, ev Event) error {
	if numbered(ev.Kind) {
		return r.broadcastNumbered(ctx, ev)
	}
	if err := r.rdb.Publish(ctx, r.ks.events(), encodeEvent(ev)).Err(); err != nil {
		return fmt.Errorf("queue: broadcast: %w", err)
	}
	return nil
}

func (r *Redis) Notify(ctx context.Context, node []byte, ev Event) error {
	if err := r.rdb.Publish(ctx, r.ks.node(node), encodeEvent(ev)).Err(); err != nil {
		return fmt.Errorf("queue: notify: %w", err)
	}
	return nil
}

// Listen keeps the events not yet read in a queue without duplicates rather than a bounded
// buffer: a burst of wake-ups for many keys (a grant step's, a resume's) is delivered whole,
// each key once, so that none of those keys waits for the next poll. The numbers of numbered
// wake-ups it hears go to Missed.
func (r *Redis) Listen(node []byte) (<-chan Event, func()) {
	h := &heard{}
	r.wakes.add(h)
	ps := r.rdb.Subscribe(context.Background(), r.ks.events(), r.ks.node(node))
	out := make(chan Event)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		coalesce(ps.Channel(), out, h)
	}()
	stop := func() {
		_ = ps.Close()
		<-done
		r.wakes.remove(h)
	}
	return out, stop
}

// coalesce forwards the events of in to out, in order of arrival, until in is closed; an event
// that already waits to be read is not queued again. The numbers of numbered ones go to h.
func coalesce(in <-chan *redis.Message, out chan<- Event, h *heard) {
	var queued []Event
	waiting := map[Event]struct{}{}
	for {
		var send chan<- Event // nil, so never ready, while nothing waits
		var head Event
		if len(queued) > 0 {
			send, head = out, queued[0]
		}
		select {
		case m, ok := <-in:
			if !ok {
				return
			}
			ev, num, ok := decodeMessage(m.Payload)
			if num > 0 {
				h.hear(num)
			}
			if _, dup := waiting[ev]; ok && !dup {
				waiting[ev] = struct{}{}
				queued = append(queued, ev)
			}
		case send <- head:
			delete(waiting, head)
			queued[0] = Event{}
			queued = queued[1:]
		}
	}
}

func (r *Redis) Idle(ctx context.Context) int {
	r.admit.flights.Wait(ctx)
	r.enqueues.flights.Wait(ctx)
	r.finishes.flights.Wait(ctx)
	return r.admit.flights.Running() + r.enqueues.flights.Running() + r.finishes.flights.Running()
}

func encodeEvent(ev Event) string { return string(ev.Kind) + ev.Key }

func decodeEvent(s string) (Event, bool) {
	if s == "" {
		return Event{}, false
	}
	return Event{Kind: s[0], Key: s[1:]}, true
}
