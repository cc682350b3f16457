package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/testnode"
	"github.com/rateltd/rateltd/middleware"
)

// TestTenant: Options.Tenant puts each request in its tenant's share of the key's line, as the
// key's status shows; MaxQueuePerTenant then refuses a second of tenant a (429) while b's
// waits; an empty tenant is no tenant, and one rateltd.WithTenant refuses answers 400.
func TestTenant(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			c := client(t, backend, rateltd.Config{Limits: map[string]rateltd.Limit{"shared": {Max: 100, Window: time.Minute,
				MaxQueuePerTenant: 1}}})
			limit, err := middleware.New(c, middleware.Options{Group: "shared", Wait: 50 * time.Second,
				Key:    func(*http.Request) (string, error) { return "all", nil },
				Tenant: func(r *http.Request) string { return r.Header.Get("X-Tenant") }})
			if err != nil {
				t.Fatal(err)
			}
			h := limit(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			serve := func(tenant string) int {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/", nil)
				req.Header.Set("X-Tenant", tenant)
				h.ServeHTTP(rec, req)
				return rec.Code
			}
			ctx := context.Background()
			if err := c.Pause(ctx, "shared:all"); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			codes := make(chan int, 3)
			for _, tenant := range []string{"a", "b", ""} {
				wg.Add(1)
				go func() { defer wg.Done(); codes <- serve(tenant) }()
			}
			defer wg.Wait()
			defer c.Resume(ctx, "shared:all") //nolint:errcheck // the waiting requests end at their wait either way
			var st rateltd.Status
			for deadline := time.Now().Add(20 * time.Second); st.Queued != 3; time.Sleep(20 * time.Millisecond) {
				if st, err = c.Status(ctx, "shared:all"); err != nil || time.Now().After(deadline) {
					t.Fatalf("status %+v %v after 20s; want 3 queued", st, err)
				}
			}
			if want := []rateltd.TenantWaiting{{Tenant: "", Waiting: 1}, {Tenant: "a", Waiting: 1}, {Tenant: "b", Waiting: 1}}; fmt.Sprint(st.Tenants) != fmt.Sprint(want) || st.TenantsWaiting != 3 {
				t.Fatalf("tenants %v (%d), want %v (3)", st.Tenants, st.TenantsWaiting, want)
			}
			if code := serve("a"); code != http.StatusTooManyRequests {
				t.Fatalf("a second of tenant a with MaxQueuePerTenant 1: %d, want 429", code)
			}
			if code := serve("a=b"); code != http.StatusBadRequest {
				t.Fatalf("tenant %q: %d, want 400", "a=b", code)
			}
			if err := c.Resume(ctx, "shared:all"); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			for range 3 {
				if code := <-codes; code != http.StatusOK {
					t.Errorf("a waiting request ended with %d, want 200 once resumed", code)
				}
			}
		})
	}
}
