package rateltd

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestG12OwnDeadlineIsNoOutage: callers whose deadlines are shorter than a round trip to Redis
// get their own deadline's error, never ErrUnavailable, and the patient callers of the same
// Client, on other keys, never fail: a ctx that ended says nothing about Redis.
func TestG12OwnDeadlineIsNoOutage(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 1_000_000, Window: time.Second}})
		ctx := context.Background()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var hasty, hastyOwn atomic.Int64
		hastyErr := make(chan error, 1)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					d := time.Duration(20+rand.IntN(200)) * time.Microsecond
					cctx, cancel := context.WithTimeout(ctx, d)
					_, err := c.Request(cctx, "hasty", noop)
					cancel()
					hasty.Add(1)
					switch {
					case err == nil:
					case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrUnavailable):
						hastyOwn.Add(1)
					default:
						select {
						case hastyErr <- err:
						default:
						}
					}
				}
			}()
		}
		var patient, failed atomic.Int64
		patientErr := make(chan error, 1)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := "patient" + string(rune('a'+i))
				for {
					select {
					case <-stop:
						return
					default:
					}
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := c.Request(cctx, key, noop)
					cancel()
					patient.Add(1)
					if err != nil {
						failed.Add(1)
						select {
						case patientErr <- err:
						default:
						}
					}
				}
			}()
		}
		time.Sleep(1500 * time.Millisecond) // the length of the load, not a wait for a condition
		close(stop)
		wg.Wait()
		select {
		case err := <-hastyErr:
			t.Errorf("a hasty caller got %v; want its own deadline's error", err)
		default:
		}
		if n := failed.Load(); n > 0 {
			t.Fatalf("%d of %d patient requests failed (e.g. %v); want none", n, patient.Load(), <-patientErr)
		}
		if h.kind != "memory" && hastyOwn.Load() == 0 {
			t.Fatalf("no hasty request of %d ended by its own deadline: the test did not test", hasty.Load())
		}
		t.Logf("%d hasty requests (%d ended by their deadline), %d patient", hasty.Load(), hastyOwn.Load(), patient.Load())
	})
}
