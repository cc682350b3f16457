package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/testnode"
	"github.com/rateltd/rateltd/middleware"
)

// TestCost: Options.Cost gives each request's cost, counted against the rate that counts
// units; the handler settles the real cost with rateltd.Settle on the request's ctx; a cost no
// rate could ever admit answers 413 with ErrCostTooHigh's text, a bad cost 400, and over the
// units a request waits or is refused as over any rate.
func TestCost(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			c := client(t, backend, rateltd.Config{Limits: map[string]rateltd.Limit{"llm": {Max: 100, Window: time.Hour,
				Also: []rateltd.Rate{{Max: 1000, Window: time.Hour, Units: true}}}}})
			limit, err := middleware.New(c, middleware.Options{Key: middleware.Header("X-API-Key"), Group: "llm",
				Cost: func(r *http.Request) (int, error) {
					n, err := strconv.Atoi(r.Header.Get("X-Tokens"))
					if err != nil {
						return 0, errors.New("X-Tokens: want a number")
					}
					return n, nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			h := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if used := r.Header.Get("X-Used"); used != "" {
					n, _ := strconv.Atoi(used)
					if err := rateltd.Settle(r.Context(), n); err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
					}
				}
			}))
			serve := func(tokens, used string) *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("POST", "/", nil)
				req.Header.Set("X-API-Key", "alice")
				req.Header.Set("X-Tokens", tokens)
				req.Header.Set("X-Used", used)
				h.ServeHTTP(rec, req)
				return rec
			}
			used := func() int64 {
				st, err := c.Status(context.Background(), middleware.KeyOf("llm", "alice"))
				if err != nil {
					t.Fatal(err)
				}
				return st.Rates[1].Used
			}
			if rec := serve("600", ""); rec.Code != 200 || used() != 600 {
				t.Fatalf("cost 600: %d %q, %d units used", rec.Code, rec.Body, used())
			}
			if rec := serve("500", ""); rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
				t.Fatalf("cost 500 with 400 left: %d %q; want 429", rec.Code, rec.Body)
			}
			if rec := serve("300", "50"); rec.Code != 200 || used() != 650 {
				t.Fatalf("cost 300 settled at 50: %d %q, %d units used; want 650", rec.Code, rec.Body, used())
			}
			if rec := serve("1001", ""); rec.Code != 413 || !strings.Contains(rec.Body.String(), rateltd.ErrCostTooHigh.Error()) {
				t.Fatalf("cost 1001 of at most 1000: %d %q; want 413", rec.Code, rec.Body)
			}
			for _, bad := range []string{"0", "-5", "many"} {
				if rec := serve(bad, ""); rec.Code != 400 {
					t.Fatalf("cost %q: %d %q; want 400", bad, rec.Code, rec.Body)
				}
			}
		})
	}
}
