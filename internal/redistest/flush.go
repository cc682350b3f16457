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

// FlushScripts empties the script cache and deletes the function libraries of rdb's server, or
// of every master of a cluster, as a restart without persistence would (a failover to a
// replica loses the scripts, not the functions).
func FlushScripts(ctx context.Context, rdb redis.UniversalClient) error {
	flush := func(ctx context.Context, c *redis.Client) error {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.ScriptFlush(ctx)
			p.FunctionFlush(ctx)
			return nil
		})
		return err
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, flush)
	}
	if c, ok := rdb.(*redis.Client); ok {
		return flush(ctx, c)
	}
	return fmt.Errorf("redistest: flush the scripts of a %T", rdb)
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

// NoScriptReplies returns how many replies rdb's server (every master of a cluster) has given
// since it started that said it had lost a script (INFO errorstats), to show that a test met
// lost scripts: NOSCRIPT to an EVALSHA, and ERR, the error Redis answers an FCALL of a function
// it does not have with (which it counts with every other ERR: these tests meet no other).
func NoScriptReplies(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	count := func(c *redis.Client) (int, error) {
		info, err := c.Info(ctx, "errorstats").Result()
		if err != nil {
			return 0, err
		}
		n := 0
		for _, line := range strings.Split(info, "\n") {
			line = strings.TrimSpace(line)
			for _, stat := range []string{"errorstat_NOSCRIPT:count=", "errorstat_ERR:count="} {
				if v, ok := strings.CutPrefix(line, stat); ok {
					k, err := strconv.Atoi(v)
					if err != nil {
						return 0, err
					}
					n += k
				}
			}
		}
		return n, nil
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
