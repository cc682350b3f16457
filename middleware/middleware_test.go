package middleware_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/internal/testnode"
	"github.com/rateltd/rateltd/middleware"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func client(t *testing.T, backend string, cfg rateltd.Config) *rateltd.Client {
	return testnode.Client(t, backend, cfg)
}

func get(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestLimitByHeader: each API key has its own line; over the limit the answer is 429 at once,
// with Retry-After and the RateLimit headers; a request without the header is a 400.
func TestLimitByHeader(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			c := client(t, backend, rateltd.Config{Limits: map[string]rateltd.Limit{"api": {Max: 2, Window: time.Minute}}})
			limit, err := middleware.New(c, middleware.Options{Key: middleware.Header("X-API-Key"), Group: "api"})
			if err != nil {
				t.Fatal(err)
			}
			var served atomic.Int64
			ts := httptest.NewServer(limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				io.WriteString(w, "ok")
			})))
			defer ts.Close()
			for i := range 2 {
				resp, body := get(t, ts.URL, map[string]string{"X-API-Key": "alice"})
				if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("RateLimit-Limit") != "2" ||
					resp.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(1-i) {
					t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, body, resp.Header)
				}
			}
			start := time.Now()
			resp, body := get(t, ts.URL, map[string]string{"X-API-Key": "alice"})
			if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 429 || ra < 50 || ra > 60 ||
				!strings.Contains(body, "retry_after_ms") || resp.Header.Get("RateLimit-Remaining") != "0" {
				t.Fatalf("over the limit: %d %q %v", resp.StatusCode, body, resp.Header)
			}
			if time.Since(start) > time.Second {
				t.Fatalf("Wait 0 did not answer at once: %v", time.Since(start))
			}
			if resp, _ := get(t, ts.URL, map[string]string{"X-API-Key": "bob"}); resp.StatusCode != 200 {
				t.Fatalf("another key shares alice's limit: %d", resp.StatusCode)
			}
			if resp, _ := get(t, ts.URL, map[string]string{"X-API-Key": "{weird}" + strings.Repeat("k", 600)}); resp.StatusCode != 200 {
				t.Fatalf("a header that is no valid key: %d", resp.StatusCode)
			}
			if resp, body := get(t, ts.URL, nil); resp.StatusCode != 400 || !strings.Contains(body, "X-API-Key") {
				t.Fatalf("no header: %d %q", resp.StatusCode, body)
			}
			if served.Load() != 4 {
				t.Fatalf("served %d, want 4", served.Load())
			}
		})
	}
}

// TestWaitInLine: with Wait, requests over the limit wait their turn and are served; never
// more than the limit start in a window.
func TestWaitInLine(t *testing.T) {
	c := client(t, "redis", rateltd.Config{Limits: map[string]rateltd.Limit{"http": {Max: 2, Window: 200 * time.Millisecond}}})
	limit, err := middleware.New(c, middleware.Options{Key: middleware.ClientIP(), Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var starts []time.Time
	ts := httptest.NewServer(limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
	})))
	defer ts.Close()
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, body := get(t, ts.URL, nil); resp.StatusCode != 200 {
				t.Errorf("%d %q", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if len(starts) != 6 {
		t.Fatalf("%d served", len(starts))
	}
	// Six at two per 200ms: the last starts at least two windows after the first.
	if d := starts[5].Sub(starts[0]); d < 350*time.Millisecond {
		t.Fatalf("six served within %v: over the limit", d)
	}
}

// TestClientIP: the peer is the client unless it is a trusted proxy; then X-Forwarded-For is
// read from the right up to the first untrusted address.
func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cases := []struct {
		remote, xff, want string
	}{
		{"203.0.113.7:5555", "", "203.0.113.7"},
		{"203.0.113.7:5555", "1.2.3.4", "203.0.113.7"},                     // untrusted peer: its header is ignored
		{"10.1.1.1:80", "198.51.100.2", "198.51.100.2"},                    // one trusted proxy
		{"10.1.1.1:80", "6.6.6.6, 198.51.100.2, 10.2.2.2", "198.51.100.2"}, // a spoofed leftmost hop
		{"[::1]:80", "2001:db8::5", "2001:db8::5"},
		{"10.1.1.1:80", "garbage, 198.51.100.2", "198.51.100.2"},
		{"10.1.1.1:80", "10.3.3.3", "10.3.3.3"}, // every hop trusted: the leftmost
	}
	key := middleware.ClientIP(proxies...)
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got, err := key(r); err != nil || got != tc.want {
			t.Errorf("%s with X-Forwarded-For %q: %q, %v; want %q", tc.remote, tc.xff, got, err, tc.want)
		}
	}
}

// TestOptionsRefused: a bad option is an error naming it, not a panic at the first request.
func TestOptionsRefused(t *testing.T) {
	c := client(t, "memory", rateltd.Config{})
	for name, opts := range map[string]middleware.Options{
		"Options.Key":      {},
		"Options.Wait":     {Key: middleware.ClientIP(), Wait: -time.Second},
		"Options.Group":    {Key: middleware.ClientIP(), Group: "a:b"},
		"Options.Priority": {Key: middleware.ClientIP(), Priority: rateltd.PriorityCritical + 1},
	} {
		if _, err := middleware.New(c, opts); !errors.Is(err, rateltd.ErrInvalidConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// priorities records the priority of every request the Client saw end.
type priorities struct {
	mu   sync.Mutex
	seen []rateltd.Priority
}

func (p *priorities) ObserveRequest(e rateltd.RequestEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, e.Priority)
}

// TestPriorityPassedThrough: the middleware queues its requests at Options.Priority, every
// priority as given (an explicit PriorityLow stays Low), and at PriorityNormal when the
// option is left at its zero value.
func TestPriorityPassedThrough(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			log := &priorities{}
			c := client(t, backend, rateltd.Config{Observer: log})
			cases := []struct {
				opt, want rateltd.Priority
			}{
				{rateltd.PriorityLow, rateltd.PriorityLow},
				{rateltd.PriorityNormal, rateltd.PriorityNormal},
				{rateltd.PriorityHigh, rateltd.PriorityHigh},
				{rateltd.PriorityCritical, rateltd.PriorityCritical},
			}
			var zero middleware.Options
			cases = append(cases, struct{ opt, want rateltd.Priority }{zero.Priority, rateltd.PriorityNormal})
			for i, tc := range cases {
				limit, err := middleware.New(c, middleware.Options{Key: middleware.Header("X-API-Key"), Priority: tc.opt})
				if err != nil {
					t.Fatal(err)
				}
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/", nil)
				req.Header.Set("X-API-Key", "alice")
				limit(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(rec, req)
				log.mu.Lock()
				got := log.seen
				log.mu.Unlock()
				if rec.Code != 200 || len(got) != i+1 || got[i] != tc.want {
					t.Fatalf("Options.Priority %v: answer %d, priorities seen %v; want %v last", tc.opt, rec.Code, got, tc.want)
				}
			}
		})
	}
}

// TestOneCommandPerRequest: a request served at once costs one Redis command, its admission,
// which also gives its RateLimit headers; so does a request refused at once, Retry-After
// included. The headers say what a Check would have.
func TestOneCommandPerRequest(t *testing.T) {
	srv := redistest.Server(t)
	rdb := srv.Client(t)
	hook := &redistest.CommandCounter{}
	rdb.AddHook(hook)
	// A long poll keeps the processor's safety net out of the count.
	c, err := rateltd.New(rateltd.Config{Redis: rdb, Prefix: srv.Prefix(t), PollInterval: time.Hour,
		Limits: map[string]rateltd.Limit{"api": {Max: 2, Window: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	limit, err := middleware.New(c, middleware.Options{Key: middleware.Header("X-API-Key"), Group: "api"})
	if err != nil {
		t.Fatal(err)
	}
	h := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	serve := func() (*httptest.ResponseRecorder, int64) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-API-Key", "alice")
		before := hook.Count()
		h.ServeHTTP(rec, req)
		return rec, hook.Count() - before
	}
	for i := range 2 {
		rec, n := serve()
		if rec.Code != 200 || n != 1 {
			t.Fatalf("served request %d: %d, %d Redis commands; want 200 and 1", i, rec.Code, n)
		}
		if got := rec.Header().Get("RateLimit-Remaining"); got != strconv.Itoa(1-i) {
			t.Fatalf("served request %d: RateLimit-Remaining %q, want %d", i, got, 1-i)
		}
		if r, _ := strconv.Atoi(rec.Header().Get("X-RateLimit-Reset")); r < 59 || r > 60 {
			t.Fatalf("served request %d: X-RateLimit-Reset %q, want 60", i, rec.Header().Get("X-RateLimit-Reset"))
		}
	}
	rec, n := serve()
	if ra, _ := strconv.Atoi(rec.Header().Get("Retry-After")); rec.Code != 429 || n != 1 || ra < 59 || ra > 60 ||
		rec.Header().Get("RateLimit-Remaining") != "0" || rec.Header().Get("RateLimit-Limit") != "2" {
		t.Fatalf("refused request: %d, %d Redis commands, %v; want 429, 1, Retry-After 60", rec.Code, n, rec.Header())
	}
}
