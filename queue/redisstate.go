package queue

import (
	"context"
	"fmt"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/lua"
)

// State runs status.lua for key and reads its reply.
func (r *Redis) State(ctx context.Context, key string, p Params) (KeyState, error) {
	v, err := r.eval(ctx, lua.Status, r.ks.withJobsArgs(key, p.Limit), args(p)...).Result()
	if err != nil {
		return KeyState{}, fmt.Errorf("queue: status %q: %w", key, err)
	}
	st, err := parseState(v)
	if err != nil {
		return KeyState{}, fmt.Errorf("queue: status %q: reply: %w", key, err)
	}
	return st, nil
}

// parseTenants reads status.lua's {tenant, waiting, ...}.
func parseTenants(v any) (map[string]int, error) {
	kv, err := replySlice(v, 0)
	if err != nil || len(kv) == 0 {
		return nil, err
	}
	out := make(map[string]int, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		name, ok := kv[i].(string)
		n, err := replyInt(kv[i+1])
		if !ok || err != nil {
			return nil, fmt.Errorf("tenants: entry %d", i/2)
		}
		out[name] = int(n)
	}
	return out, nil
}

func parseState(v any) (KeyState, error) {
	s, err := replySlice(v, 18)
	if err != nil {
		return KeyState{}, err
	}
	tenants, err := parseTenants(s[17])
	if err != nil {
		return KeyState{}, err
	}
	running, err := replyInt(s[15])
	if err != nil {
		return KeyState{}, fmt.Errorf("running: %w", err)
	}
	scheduled, err := replyInt(s[16])
	if err != nil {
		return KeyState{}, fmt.Errorf("scheduled: %w", err)
	}
	rates, err := replySlice(s[14], 0)
	if err != nil {
		return KeyState{}, fmt.Errorf("rates: %w", err)
	}
	rn, err := replyInts(rates)
	if err != nil {
		return KeyState{}, fmt.Errorf("rates: %w", err)
	}
	jobs, err := replyInts(s[12:14])
	if err != nil {
		return KeyState{}, err
	}
	n, err := replyInts(s[:11])
	if err != nil {
		return KeyState{}, err
	}
	st := KeyState{Now: n[0], Used: int(n[1]), Remaining: int(n[2]), OldestEnqueued: n[7], Unclaimed: int(n[9]),
		DeadLetters: int(n[10]), Jobs: int(jobs[0]), Leased: int(jobs[1])}
	for i := range config.NumPriorities {
		st.Queued[i] = int(n[3+i])
	}
	st.PausedUntil, st.Running, st.Scheduled, st.Tenants = n[8], int(running), int(scheduled), tenants
	for i := 0; i+1 < len(rn); i += 2 {
		st.Rates = append(st.Rates, RateState{Used: rn[i], Remaining: rn[i+1]})
	}
	kv, err := replySlice(s[11], 0)
	if err != nil {
		return KeyState{}, fmt.Errorf("counters: %w", err)
	}
	st.Counters = make(map[string]int64, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		name, ok := kv[i].(string)
		if !ok {
			return KeyState{}, fmt.Errorf("counter name: got %T", kv[i])
		}
		if st.Counters[name], err = replyInt(kv[i+1]); err != nil {
			return KeyState{}, fmt.Errorf("counter %s: %w", name, err)
		}
	}
	return st, nil
}
