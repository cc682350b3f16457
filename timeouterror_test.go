package rateltd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/testnode"
)

// TestTimeoutErrorByRootName: a request whose deadline passes while it waits (here, on a
// paused key) returns an error that user code, importing only package rateltd, unpacks with
// errors.As into a *rateltd.TimeoutError naming the key, and that is still both ErrTimeout
// and context.DeadlineExceeded.
func TestTimeoutErrorByRootName(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			c := testnode.Client(t, backend, rateltd.Config{Default: rateltd.Limit{Max: 5, Window: time.Second}})
			ctx := context.Background()
			if err := c.Pause(ctx, "held"); err != nil {
				t.Fatal(err)
			}
			_, err := c.Request(ctx, "held", func(context.Context) (any, error) { return nil, nil },
				rateltd.WithTimeout(100*time.Millisecond))
			var te *rateltd.TimeoutError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v (%T), want a *rateltd.TimeoutError", err, err)
			}
			if te.Key != "held" {
				t.Errorf("TimeoutError.Key = %q, want %q", te.Key, "held")
			}
			if !errors.Is(err, rateltd.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want ErrTimeout and context.DeadlineExceeded", err)
			}
		})
	}
}
