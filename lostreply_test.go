package rateltd

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/faultproxy"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/queue"
)

// replyLost is a backend whose grant steps run, but whose replies are lost while drop is set,
// as when a connection is reset after Redis ran the script.
type replyLost struct {
	queue.Backend
	drop atomic.Bool
	lost atomic.Int64 // steps whose reply was lost although they granted
	// failCancels is how many cancels still fail, as when Redis does not answer.
	failCancels atomic.Int64
}

// Claim fails while replies are lost, so that nothing is delivered before the test says.
func (b *replyLost) Claim(ctx context.Context, calls []queue.ClaimCall) []queue.ClaimResult {
	if b.drop.Load() {
		res := make([]queue.ClaimResult, len(calls))
		for i := range res {
			res[i].Err = errReplyLost
		}
		return res
	}
	return b.Backend.Claim(ctx, calls)
}

func (b *replyLost) Cancel(ctx context.Context, p queue.Params, t *queue.Ticket, raw []byte) (queue.CancelOutcome, error) {
	if b.failCancels.Add(-1) >= 0 {
		return 0, errReplyLost
	}
	return b.Backend.Cancel(ctx, p, t, raw)
}

var errReplyLost = errors.New("connection reset (reply lost)")

func (b *replyLost) Grant(ctx context.Context, keys []string, ps []queue.Params, g queue.GrantArgs) ([]queue.GrantReply, []error) {
	reps, errs := b.Backend.Grant(ctx, keys, ps, g)
	if b.drop.Load() {
		for i := range errs {
			if errs[i] == nil && len(reps[i].Local) > 0 {
				b.lost.Add(1)
			}
			errs[i] = errReplyLost
		}
	}
	return reps, errs
}

// lostReplyClient starts a Client on a replyLost backend over kind ("memory" or "redis"), with
// a key limit of 4 a minute, closed at the test's end.
func lostReplyClient(t *testing.T, kind string) (*Client, *replyLost) {
	t.Helper()
	cfg := Config{PollInterval: 100 * time.Millisecond, Default: Limit{Max: 4, Window: time.Minute}}
	var inner queue.Backend = queue.NewMemory()
	if kind == "redis" {
		srv := redistest.Server(t)
		cfg.Redis, cfg.Prefix = srv.Client(t), srv.Prefix(t)
		r := queue.NewRedis(cfg.Redis, cfg.Prefix, 1)
		if err := r.LoadScripts(context.Background()); err != nil {
			t.Fatal(err)
		}
		inner = r
	}
	be := &replyLost{Backend: inner}
	c, err := newClient(context.Background(), cfg.WithDefaults(), be)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, be
}

// TestG12LostGrantReply: a grant step that ran but whose reply never came (the connection
// reset after the script) loses nothing: the waiting requests it granted are claimed from the
// key's local grants and run, each grant once, and the counters add up; a caller that gave up
// meanwhile has its grant given back once.
func TestG12LostGrantReply(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c, be := lostReplyClient(t, kind)
			ctx := context.Background()
			if err := c.Pause(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			waiting := make([]<-chan Result, 3)
			for i := range waiting {
				waiting[i] = c.RequestAsync(ctx, "k", noop, WithTimeout(20*time.Second))
			}
			leaver, leave := context.WithCancel(ctx)
			left := c.RequestAsync(leaver, "k", func(context.Context) (any, error) {
				t.Error("the request that gave up ran")
				return nil, nil
			}, WithTimeout(20*time.Second))
			waitQueued(t, c, "k", 4)
			be.drop.Store(true)
			if err := c.Resume(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "a grant step ran and its reply was lost", func() bool {
				return be.lost.Load() > 0 && status(t, c, "k").Queued == 0
			})
			leave() // gives up with its grant made and not delivered
			if r := <-left; !errors.Is(r.Err, context.Canceled) {
				t.Fatalf("the request that gave up: %v", r.Err)
			}
			be.drop.Store(false)
			for i, ch := range waiting {
				select {
				case r := <-ch:
					if r.Err != nil {
						t.Fatalf("request %d: %v", i, r.Err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("request %d was granted by a step whose reply was lost, and never ran", i)
				}
			}
			eventually(t, 5*time.Second, "counters written", func() bool {
				st := status(t, c, "k")
				return st.Counters.Succeeded == 3
			})
			st := status(t, c, "k")
			if st.Used != 3 || st.Counters.Granted != 4 || st.Counters.Refunded != 1 {
				t.Fatalf("used %d, granted %d, refunded %d; want 3 used, 4 granted, 1 given back once",
					st.Used, st.Counters.Granted, st.Counters.Refunded)
			}
		})
	}
}

// TestGiveBackTriedAgain: a caller leaves after a grant step granted it but lost its reply,
// and its cancel fails too (Redis not answering): the cancel is tried again at the next polls,
// so the grant goes back to the window rather than being lost with a slot.
func TestGiveBackTriedAgain(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c, be := lostReplyClient(t, kind)
			ctx := context.Background()
			if err := c.Pause(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			leaver, leave := context.WithCancel(ctx)
			left := c.RequestAsync(leaver, "k", func(context.Context) (any, error) {
				t.Error("the request that gave up ran")
				return nil, nil
			}, WithTimeout(time.Minute))
			waitQueued(t, c, "k", 1)
			be.drop.Store(true)
			if err := c.Resume(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "a grant step ran and its reply was lost", func() bool { return be.lost.Load() > 0 })
			be.failCancels.Store(2)
			leave()
			if r := <-left; !errors.Is(r.Err, context.Canceled) {
				t.Fatalf("the request that gave up: %v", r.Err)
			}
			be.drop.Store(false)
			eventually(t, 5*time.Second, "the grant given back", func() bool {
				st := status(t, c, "k")
				return st.Used == 0 && st.Counters.Refunded == 1
			})
			if n := be.failCancels.Load(); n >= 0 {
				t.Fatalf("%d failing cancels left: the cancel was not tried again", n+1)
			}
		})
	}
}

// TestG5LateAdmitGivenBack: an admit whose answer comes after its caller stopped waiting (a
// slow link, a deadline shorter than the round trip) is undone: its grant on arrival goes back
// to the window, counted as admitted and refunded, so the next request finds the slot free.
func TestG5LateAdmitGivenBack(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	px, err := faultproxy.Start(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	rdb := redis.NewClient(&redis.Options{Addr: px.Addr()})
	defer rdb.Close()
	c, err := New(Config{Redis: rdb, Prefix: srv.Prefix(t), Default: Limit{Max: 1, Window: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	px.SetLatency(200*time.Millisecond, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = c.Request(ctx, "k", func(context.Context) (any, error) {
		t.Error("fn ran for a caller that had left")
		return nil, nil
	})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Request: %v; want its deadline's error", err)
	}
	px.Heal()
	eventually(t, 5*time.Second, "the late grant given back", func() bool {
		st := status(t, c, "k")
		return st.Used == 0 && st.Counters.Refunded == 1 && st.Counters.Admitted == 1
	})
	if _, err := c.Request(context.Background(), "k", noop, WithTimeout(time.Millisecond)); err != nil {
		t.Fatalf("the slot of the late grant is still taken: %v", err)
	}
}
