package processor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// heldEnds is a backend whose FinishJob waits until release is closed.
type heldEnds struct {
	queue.Backend
	release chan struct{}
}

func (h *heldEnds) FinishJob(ctx context.Context, key string, p queue.Params, e queue.RunEnd) (queue.Finish, bool, error) {
	<-h.release
	return h.Backend.FinishJob(ctx, key, p, e)
}

// TestWorkerFreeWhileTheEndIsRecorded: a node with one worker starts its next job while the end
// of the last run is still on its way to the backend; on a key with a concurrency cap, whose
// slot only that end frees, the next job waits for it.
func TestWorkerFreeWhileTheEndIsRecorded(t *testing.T) {
	for _, tc := range []struct {
		name        string
		concurrency int
		overlap     bool
	}{{"no cap", 0, true}, {"a concurrency cap", 5, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			be := &heldEnds{Backend: queue.NewMemory(), release: make(chan struct{})}
			release := sync.OnceFunc(func() { close(be.release) })
			defer release()
			o := testOptions()
			o.Workers = 1
			o.PollInterval = 50 * time.Millisecond
			o.Default = config.Limit{Max: 1000, Window: time.Second, Concurrency: tc.concurrency, QueueTimeout: time.Minute}
			n, err := New(ctx, be, o)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				release()
				n.Close(ctx)
			}()
			started := make(chan string, 2)
			if err := n.Handle("h", func(_ context.Context, p []byte) ([]byte, error) {
				started <- string(p)
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"first", "second"} {
				if _, err := n.Enqueue(ctx, Job{Key: "k", Handler: "h", Payload: []byte(p)}); err != nil {
					t.Fatal(err)
				}
			}
			if got := <-started; got != "first" {
				t.Fatalf("first handler run: %q", got)
			}
			if tc.overlap {
				select {
				case <-started:
				case <-time.After(10 * time.Second):
					t.Fatal("the second job did not start within 10s while the first run's end was held")
				}
				return
			}
			select {
			case got := <-started: // a second is ample for a grant step on the memory backend
				t.Fatalf("%q started before the first run's end freed the key's slot", got)
			case <-time.After(time.Second):
			}
			release()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("the second job did not start within 10s of the first run's end")
			}
		})
	}
}
