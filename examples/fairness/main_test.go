package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestFairnessQuietServedInTurn runs the example on a smaller flood (80 at once, 50 a second;
// two bursts of 8 from acct_quiet while it drains, 400ms apart, so that a burst is served
// before the next), in-process and with two clients sharing Redis. It counts, not times: first
// come first served, acct_quiet's first burst waits for the flood ahead of it (some 60; at
// least 20 asked); with fair shares, each of its requests for one of acct_noisy's per request
// ahead of it in its burst (at most 9: 8 and one in flight; 12 asked); at weight 3, for one
// per three (at most 4; 5 asked, which 1:1 turns, 7 or more, exceed). All 96 requests run in every mode.
func TestFairnessQuietServedInTurn(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			s := setup{rate: 50, noisy: 80, bursts: 2, burst: 8, every: 400 * time.Millisecond}
			if backend == "redis" {
				srv := redistest.Server(t)
				s.rdb, s.prefix = srv.Client(t), srv.Prefix(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			results, err := run(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			table(&out, results)
			t.Logf("\n%s", out.String())
			overtaken := map[string]int{}
			for _, r := range results {
				overtaken[r.mode.key] = r.overtaken
			}
			if n := overtaken["api-fifo"]; n < 20 {
				t.Errorf("first come first served: acct_quiet overtaken by at most %d, want the flood ahead (20 or more)", n)
			}
			if n := overtaken["api-fair"]; n > 12 {
				t.Errorf("fair shares: acct_quiet overtaken by up to %d, want one per request ahead in its burst (at most 12)", n)
			}
			if n := overtaken["api-weighted"]; n > 5 {
				t.Errorf("weight 3: acct_quiet overtaken by up to %d, want one per three ahead in its burst (at most 5)", n)
			}
		})
	}
}
