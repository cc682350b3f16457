package queue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/queue"
)

// eachFreshRedis runs f as parallel subtests on a private Redis server and a private cluster,
// for tests that do what would disturb others sharing a server (flush its scripts).
func eachFreshRedis(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, prefix string)) {
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Fresh(t)
		f(t, srv.Client(t), srv.Prefix(t))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.FreshCluster(t)
		f(t, cl.Client(t), cl.Prefix(t))
	})
}

// TestG12ScriptsFlushedUnderLoad: concurrent admits (sent in pipelines by the batcher) and grant
// steps over several keys run while a second client flushes the script cache every 2ms. Lost
// scripts cost nothing: no call fails, every ticket is granted exactly once (at admission or by
// one grant step: none twice, none lost with a dropped reply), and the grants recorded in the
// windows are exactly those the callers were told of (no command ran twice).
func TestG12ScriptsFlushedUnderLoad(t *testing.T) {
	eachFreshRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		r := queue.NewRedis(rdb, prefix, 4)
		if err := r.LoadScripts(ctx); err != nil {
			t.Fatal(err)
		}
		// GCRA with a 10-minute emission interval and a deep bucket: no limit binds within the
		// test, and the used part of the bucket counts the grants recorded exactly.
		p := params(config.Limit{Algorithm: config.TokenBucket, Max: 1000, Window: 7 * 24 * time.Hour, Burst: 100_000})
		const nkeys, callers, perCaller = 8, 32, 60
		keys := make([]string, nkeys)
		ps := make([]queue.Params, nkeys)
		for i := range keys {
			keys[i], ps[i] = fmt.Sprintf("k%d", i), p
		}

		var mu sync.Mutex
		granted := map[string]int{} // ticket id → times granted, guarded by mu
		failed := map[string]bool{} // tickets whose admit failed, guarded by mu
		var errs []error            // of admits and grant steps, guarded by mu
		record := func(id []byte) {
			mu.Lock()
			granted[string(id)]++
			mu.Unlock()
		}
		fail := func(err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		recordGrants := func(reps []queue.GrantReply, errs []error) {
			for i, rep := range reps {
				if errs[i] != nil {
					fail(errs[i])
					continue
				}
				for _, raw := range rep.Local {
					tk, err := queue.DecodeTicket(raw)
					if err != nil {
						t.Errorf("granted ticket: %v", err)
						continue
					}
					record(tk.ID)
				}
			}
		}
		g := queue.GrantArgs{Node: nodeA[:], Batch: 20, ClaimTimeout: time.Minute}

		stopFlush := redistest.FlushScriptsEvery(t, rdb, 2*time.Millisecond)
		var wg sync.WaitGroup
		done := make(chan struct{})
		// A pause toggler, so that admits queue as well as pass, and grant steps find lines;
		// and a grant step over every key, each once a millisecond.
		var side sync.WaitGroup
		side.Add(2)
		go func() {
			defer side.Done()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				k := keys[i%nkeys]
				var err error
				if i/nkeys%2 == 0 {
					err = r.PauseKey(ctx, k, queue.PausedForever)
				} else {
					err = r.ResumeKey(ctx, k)
				}
				if err != nil {
					t.Errorf("pause toggle: %v", err)
					return
				}
			}
		}()
		go func() {
			defer side.Done()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				recordGrants(r.Grant(ctx, keys, ps, g))
			}
		}()
		ids := make(chan string, callers*perCaller)
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perCaller {
					tk, raw := ticket(t, r, keys[rand.IntN(nkeys)], nodeA, config.PriorityNormal)
					ids <- string(tk.ID)
					rep, err := r.Admit(ctx, p, tk, raw)
					switch {
					case err != nil:
						fail(err)
						mu.Lock()
						failed[string(tk.ID)] = true
						mu.Unlock()
					case rep.Outcome == queue.Granted:
						record(tk.ID)
					case rep.Outcome != queue.Queued:
						t.Errorf("admit: outcome %v", rep.Outcome)
					}
				}
			}()
		}
		wg.Wait()
		close(done)
		side.Wait()
		flushes := stopFlush()
		close(ids)
		if len(errs) > 0 {
			t.Errorf("%d admits and grant steps failed, the first: %v", len(errs), errs[0])
		}

		// Drain what waits, without flushing.
		for _, k := range keys {
			if err := r.ResumeKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		queued := func() int {
			n := 0
			for _, k := range keys {
				st, err := r.State(ctx, k, p)
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range st.Queued {
					n += q
				}
			}
			return n
		}
		errs = nil
		for deadline := time.Now().Add(30 * time.Second); queued() > 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%d tickets still wait after the drain", queued())
			}
			recordGrants(r.Grant(ctx, keys, ps, g))
		}
		if len(errs) > 0 {
			t.Fatalf("the drain's grant steps failed: %v", errs[0])
		}

		// Every ticket admitted without error was granted once (a ticket whose admit failed,
		// at most once); the windows hold every grant the callers were told of, no other.
		total, told, twice, never := 0, 0, 0, 0
		for id := range ids {
			total++
			told += granted[id]
			switch n := granted[id]; {
			case n > 1:
				twice++
			case n == 0 && !failed[id]:
				never++
			}
		}
		if twice > 0 || never > 0 {
			t.Errorf("of %d tickets, %d were granted more than once and %d admitted but never granted", total, twice, never)
		}
		used := 0
		for _, k := range keys {
			st, err := r.State(ctx, k, p)
			if err != nil {
				t.Fatal(err)
			}
			used += st.Used
		}
		if used != told {
			t.Errorf("the windows hold %d grants; the callers were told of %d", used, told)
		}
		lost, err := redistest.NoScriptReplies(ctx, rdb)
		if err != nil {
			t.Fatal(err)
		}
		if lost == 0 {
			t.Fatalf("%d script flushes, yet no command met NOSCRIPT: the test shows nothing", flushes)
		}
		t.Logf("%d tickets, %d script flushes, %d NOSCRIPT replies", total, flushes, lost)
	})
}

// TestG12ResetAfterScriptsLost: Reset sends its script in a transaction, where Redis answers
// NOSCRIPT (or, for a function, that it has none) only at EXEC: the script alone is sent again
// and the key is reset. As scripts (no LoadScripts) and as functions.
func TestG12ResetAfterScriptsLost(t *testing.T) {
	eachFreshRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		for i, functions := range []bool{false, true} {
			r := queue.NewRedis(rdb, fmt.Sprintf("%s%d", prefix, i), 4)
			if functions {
				if err := r.LoadScripts(ctx); err != nil {
					t.Fatal(err)
				}
			}
			p := params(config.Limit{Max: 5, Window: time.Minute})
			tk, raw := ticket(t, r, "k", nodeA, config.PriorityNormal)
			admit(t, r, p, tk, raw, queue.Granted)
			if err := redistest.FlushScripts(ctx, rdb); err != nil {
				t.Fatal(err)
			}
			before, err := redistest.NoScriptReplies(ctx, rdb)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Reset(ctx, "k"); err != nil {
				t.Fatalf("functions %v: reset with the scripts lost: %v", functions, err)
			}
			if st, err := r.State(ctx, "k", p); err != nil || st.Used != 0 {
				t.Fatalf("functions %v: after the reset: %d used, %v; want 0", functions, st.Used, err)
			}
			if after, err := redistest.NoScriptReplies(ctx, rdb); err != nil || after == before {
				t.Fatalf("functions %v: the reset met no lost script (%d replies, %v): the test shows nothing", functions, after-before, err)
			}
		}
	})
}
