package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// FlushScripts empties the script cache of rdb's server, or of every master of a cluster, as a
// restart without persistence or a failover to a replica would.
func FlushScripts(ctx context.Context, rdb redis.UniversalClient) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.ScriptFlush(ctx).Err()
		})
	}
	return rdb.ScriptFlush(ctx).Err()
}

// FlushScriptsEvery flushes rdb's scripts (FlushScripts) every interval, from a goroutine of its
// own, until the returned stop is called; stop returns how many flushes were done. A flush that
// fails fails the test. Pass a client of the test's own: the flushes share no connection with
// the code under test.
func FlushScriptsEvery(tb testing.TB, rdb redis.UniversalClient, every time.Duration) (stop func() int) {
	tb.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	n := 0 // written by the goroutine, read by stop after it ended
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if err := FlushScripts(context.Background(), rdb); err != nil {
				tb.Errorf("redistest: script flush: %v", err)
				return
			}
			n++
		}
	}()
	var once sync.Once
	stop = func() int {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
		return n
	}
	tb.Cleanup(func() { stop() })
	return stop
}

// NoScriptReplies returns how many NOSCRIPT errors rdb's server (every master of a cluster) has
// replied since it started (INFO errorstats), to show that a test met lost scripts.
func NoScriptReplies(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	count := func(c *redis.Client) (int, error) {
		info, err := c.Info(ctx, "errorstats").Result()
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "errorstat_NOSCRIPT:count="); ok {
				return strconv.Atoi(v)
			}
		}
		return 0, nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		total := 0
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := count(m)
			mu.Lock()
			total += n
			mu.Unlock()
			return err
		})
		return total, err
	case *redis.Client:
		return count(c)
	}
	return 0, fmt.Errorf("redistest: errorstats of a %T", rdb)
}
