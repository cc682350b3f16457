package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// TestLimitsKeptBetweenCalls: a Redis function keeps the limit it read between calls and reads
// it again only when another is given (limits.lua's bind). Keys of five limits, two of them of
// one algorithm, admitted to in turn, a ticket each per round: each key grants what its own
// limit allows, as scripts (no LoadScripts) and as functions, the same as the memory backend.
func TestLimitsKeptBetweenCalls(t *testing.T) {
	withAlso := config.Limit{Max: 6, Window: time.Minute}
	withAlso.Also[0] = config.Rate{Max: 2, Window: time.Minute}
	limits := []config.Limit{
		{Max: 3, Window: time.Minute},
		{Max: 6, Window: time.Minute},
		{Algorithm: config.FixedWindow, Max: 4, Window: time.Minute},
		withAlso,
		{Concurrency: 1},
	}
	want := []int{3, 6, 4, 2, 1}
	run := func(t *testing.T, be queue.Backend) {
		node := uuid.New()
		granted := make([]int, len(limits))
		for range 8 {
			for i, l := range limits {
				tk, raw := ticket(t, be, fmt.Sprintf("k%d", i), node, config.PriorityNormal)
				rep, err := be.Admit(context.Background(), params(l), tk, raw)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Outcome == queue.Granted {
					granted[i]++
				}
			}
		}
		if fmt.Sprint(granted) != fmt.Sprint(want) {
			t.Fatalf("granted %v, want %v", granted, want)
		}
	}
	t.Run("memory", func(t *testing.T) { run(t, queue.NewMemory()) })
	eachFreshRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		for i, functions := range []bool{false, true} {
			r := queue.NewRedis(rdb, fmt.Sprintf("%s%d", prefix, i), 4)
			if functions {
				if err := r.LoadScripts(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			run(t, r)
		}
	})
}
