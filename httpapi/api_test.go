package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/internal/testnode"
	"github.com/rateltd/rateltd/metrics"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// server starts the API on a real Redis (or in-process when backend is "memory").
func server(t *testing.T, backend string, cfg rateltd.Config, opts httpapi.Options) (*httptest.Server, *rateltd.Client) {
	t.Helper()
	m := metrics.New(metrics.Options{})
	cfg.Observer = m
	c := testnode.Client(t, backend, cfg)
	m.Watch(c)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	opts.Gatherer = reg
	ts := httptest.NewServer(httpapi.NewHandler(c, opts))
	t.Cleanup(ts.Close)
	return ts, c
}

type answer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func call(t *testing.T, ts *httptest.Server, method, path, token, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// eachBackend runs f as a parallel subtest on "memory", "redis" and the more backends named
// (see testnode.Client).
func eachBackend(t *testing.T, f func(t *testing.T, backend string), more ...string) {
	for _, b := range append([]string{"memory", "redis"}, more...) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			f(t, b)
		})
	}
}

// TestKeyRoutes: status, pause and resume (with the admin token), reset and limits, as the
// library sees them, with the rate-limit headers on every answer about a key.
func TestKeyRoutes(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, c := server(t, backend, rateltd.Config{Default: rateltd.Limit{Max: 5, Window: time.Minute}}, httpapi.Options{AdminToken: "s3cret"})
		ctx := context.Background()
		c.Request(ctx, "api:k", func(context.Context) (any, error) { return nil, nil })

		a := call(t, ts, "GET", "/v1/keys/api:k", "", "")
		if a.code != 200 || a.body["key"] != "api:k" || a.body["used"] != 1.0 || a.body["remaining"] != 4.0 {
			t.Fatalf("status: %d %s", a.code, a.raw)
		}
		for _, h := range []string{"RateLimit-", "X-RateLimit-"} {
			if a.header.Get(h+"Limit") != "5" || a.header.Get(h+"Remaining") != "4" || a.header.Get(h+"Reset") == "" {
				t.Fatalf("%s* headers: %v", h, a.header)
			}
		}

		if a := call(t, ts, "POST", "/v1/keys/api/pause", "", ""); a.code != 401 || a.body["error"] == nil {
			t.Fatalf("pause without token: %d %s", a.code, a.raw)
		}
		if a := call(t, ts, "POST", "/v1/keys/api/pause", "wrong", ""); a.code != 401 {
			t.Fatalf("pause with a wrong token: %d", a.code)
		}
		if a := call(t, ts, "POST", "/v1/keys/api/pause", "s3cret", ""); a.code != 200 {
			t.Fatalf("pause: %d %s", a.code, a.raw)
		}
		if st, _ := c.Status(ctx, "api:k"); !st.Paused {
			t.Fatal("the library does not see the group paused")
		}
		if a := call(t, ts, "GET", "/v1/keys/api:k", "", ""); a.body["paused"] != true {
			t.Fatalf("status does not show the pause: %s", a.raw)
		}
		if a := call(t, ts, "POST", "/v1/keys/*/resume", "s3cret", ""); a.code != 200 {
			t.Fatalf("resume *: %d %s", a.code, a.raw)
		}
		if a := call(t, ts, "POST", "/v1/keys/api/resume", "s3cret", ""); a.code != 200 {
			t.Fatalf("resume: %d %s", a.code, a.raw)
		}
		if st, _ := c.Status(ctx, "api:k"); st.Paused {
			t.Fatal("still paused after resume")
		}

		if a := call(t, ts, "PUT", "/v1/keys/api:k/limit", "s3cret", `{"max":100,"window":"1m","algorithm":"token","burst":10}`); a.code != 200 || a.body["max"] != 100.0 {
			t.Fatalf("put limit: %d %s", a.code, a.raw)
		}
		if l, _ := c.LimitOf("api:k"); l.Max != 100 || l.Algorithm != rateltd.TokenBucket || l.Burst != 10 {
			t.Fatalf("the library's limit: %+v", l)
		}
		if a := call(t, ts, "GET", "/v1/keys/api:k/limit", "", ""); a.body["algorithm"] != "token" || a.body["window"] != "1m0s" {
			t.Fatalf("get limit: %s", a.raw)
		}
		if a := call(t, ts, "POST", "/v1/keys/api:k/reset", "s3cret", ""); a.code != 200 {
			t.Fatalf("reset: %d %s", a.code, a.raw)
		}
		if st, _ := c.Status(ctx, "api:k"); st.Used != 0 {
			t.Fatalf("used %d after reset", st.Used)
		}
	})
}

// TestBadInput: every malformed request gets a 400 with a JSON error, never a 500.
func TestBadInput(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, _ := server(t, backend, rateltd.Config{}, httpapi.Options{})
		cases := []struct{ method, path, body string }{
			{"GET", "/v1/keys/a%7Bb", ""},
			{"GET", "/v1/keys/" + strings.Repeat("k", 513), ""},
			{"GET", "/v1/keys/tab%09key", ""},
			{"GET", "/v1/keys?limit=0", ""},
			{"GET", "/v1/keys?limit=x", ""},
			{"POST", "/v1/keys/a%7D/pause", ""},
			{"PUT", "/v1/keys/k/limit", `{"max":`},
			{"PUT", "/v1/keys/k/limit", `{"max":10,"window":"1 minute"}`},
			{"PUT", "/v1/keys/k/limit", `{"max":0,"window":"1m"}`},
			{"PUT", "/v1/keys/k/limit", `{"max":10,"window":"1m","algorithm":"leaky"}`},
			{"PUT", "/v1/keys/k/limit", `{"max":10,"window":"1m","colour":"red"}`},
			{"PUT", "/v1/keys/k/limit", `{"max":10,"window":"1m","overflow":"sometimes"}`},
			{"PUT", "/v1/keys/k/limit", `{"max":10,"window":"1m","pad":"` + strings.Repeat("x", 70<<10) + `"}`},
			{"POST", "/v1/acquire/k?wait=soon", ""},
			{"POST", "/v1/acquire/k?wait=-1s", ""},
			{"POST", "/v1/acquire/k?wait=2h", ""},
			{"POST", "/v1/acquire/k?priority=urgent", ""},
			{"POST", "/v1/acquire/%7B%7D", ""},
		}
		for _, tc := range cases {
			a := call(t, ts, tc.method, tc.path, "", tc.body)
			if a.code != 400 || a.header.Get("Content-Type") != "application/json" || a.body["error"] == nil || a.body["error"] == "" {
				t.Errorf("%s %s: %d %q, want 400 with a JSON error", tc.method, tc.path[:min(len(tc.path), 60)], a.code, a.raw[:min(len(a.raw), 200)])
			}
		}
	})
}

// TestAcquire: granted at once (200), granted after waiting in line (200), refused when the
// wait would exceed its bound (429 with Retry-After and the headers).
func TestAcquire(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, _ := server(t, backend, rateltd.Config{Limits: map[string]rateltd.Limit{
			"slow": {Max: 1, Window: time.Hour},
			"fast": {Max: 1, Window: 300 * time.Millisecond},
		}}, httpapi.Options{})
		if a := call(t, ts, "POST", "/v1/acquire/slow", "", ""); a.code != 200 || a.body["granted"] != true || a.header.Get("RateLimit-Remaining") != "0" {
			t.Fatalf("first acquire: %d %s %v", a.code, a.raw, a.header)
		}
		for _, wait := range []string{"", "?wait=5s&priority=high"} {
			start := time.Now()
			a := call(t, ts, "POST", "/v1/acquire/slow"+wait, "", "")
			ra, _ := strconv.Atoi(a.header.Get("Retry-After"))
			if a.code != 429 || ra < 3000 || ra > 3600 || a.header.Get("RateLimit-Limit") != "1" || a.body["retry_after_ms"] == nil {
				t.Fatalf("over the limit, wait %q: %d %s Retry-After %q", wait, a.code, a.raw, a.header.Get("Retry-After"))
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("a hopeless wait was not refused at once: %v", time.Since(start))
			}
		}
		call(t, ts, "POST", "/v1/acquire/fast", "", "")
		start := time.Now()
		a := call(t, ts, "POST", "/v1/acquire/fast?wait=3s", "", "")
		if a.code != 200 || time.Since(start) < 200*time.Millisecond {
			t.Fatalf("waiting acquire: %d %s after %v", a.code, a.raw, time.Since(start))
		}
	})
}

// TestListAndProbes: the paged key list (each key once, also on a cluster, though reading a
// listed key's status writes its counters, its first structure in a listing), /healthz,
// /readyz and /metrics.
func TestListAndProbes(t *testing.T) {
	const keys = 60 // with their counters, more structures than one SCAN batch (about 100)
	eachBackend(t, func(t *testing.T, backend string) {
		// No poll writes the keys' counters before the listing.
		ts, c := server(t, backend, rateltd.Config{PollInterval: time.Minute}, httpapi.Options{})
		ctx := context.Background()
		want := map[string]int{}
		for i := range keys {
			k := fmt.Sprintf("list:%02d", i)
			want[k] = 1
			c.Request(ctx, k, func(context.Context) (any, error) { return nil, nil })
		}
		seen := map[string]int{}
		cursor := ""
		for range 100_000 { // until the last page
			var page httpapi.KeysPage
			a := call(t, ts, "GET", "/v1/keys?limit=5&cursor="+url.QueryEscape(cursor), "", "")
			if a.code != 200 || json.Unmarshal([]byte(a.raw), &page) != nil {
				t.Fatalf("list: %d %s", a.code, a.raw)
			}
			for _, st := range page.Keys {
				seen[st.Key]++
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		if !maps.Equal(seen, want) {
			t.Fatalf("listed %v; want list:00 to list:%02d once each", seen, keys-1)
		}
		if a := call(t, ts, "GET", "/v1/keys?cursor=x.y", "", ""); backend != "memory" && a.code != 400 {
			t.Fatalf("a bad cursor: %d %s; want 400", a.code, a.raw)
		}
		if a := call(t, ts, "GET", "/healthz", "", ""); a.code != 200 {
			t.Fatalf("healthz: %d", a.code)
		}
		if a := call(t, ts, "GET", "/readyz", "", ""); a.code != 200 {
			t.Fatalf("readyz: %d", a.code)
		}
		if a := call(t, ts, "GET", "/metrics", "", ""); a.code != 200 || !strings.Contains(a.raw, fmt.Sprintf(`rateltd_admitted_total{group="list"} %d`, keys)) {
			t.Fatalf("metrics: %d %s", a.code, a.raw[:min(300, len(a.raw))])
		}
	}, "cluster")
}

// TestReadyzWhenRedisIsDown: readiness follows Redis.
func TestReadyzWhenRedisIsDown(t *testing.T) {
	srv := redistest.Fresh(t)
	c, err := rateltd.New(rateltd.Config{Redis: srv.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ts := httptest.NewServer(httpapi.NewHandler(c, httpapi.Options{}))
	defer ts.Close()
	if a := call(t, ts, "GET", "/readyz", "", ""); a.code != 200 {
		t.Fatalf("readyz with Redis up: %d", a.code)
	}
	srv.Kill()
	if a := call(t, ts, "GET", "/readyz", "", ""); a.code != 503 || a.body["error"] == nil {
		t.Fatalf("readyz with Redis down: %d %s", a.code, a.raw)
	}
	if a := call(t, ts, "GET", "/healthz", "", ""); a.code != 200 {
		t.Fatalf("healthz with Redis down: %d", a.code)
	}
}

// TestStream: the dashboard's feed pages and filters the keys with state and streams them.
func TestStream(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		c := testnode.Client(t, backend, rateltd.Config{})
		api := httpapi.NewHandler(c, httpapi.Options{})
		api.Dashboard(50 * time.Millisecond)
		ts := httptest.NewServer(api)
		defer ts.Close()
		ctx := context.Background()
		for i := range 30 {
			prefix := "even"
			if i%2 == 1 {
				prefix = "odd"
			}
			c.Request(ctx, fmt.Sprintf("%s:%02d", prefix, i), func(context.Context) (any, error) { return nil, nil })
		}
		if a := call(t, ts, "GET", "/", "", ""); a.code != 200 || !strings.Contains(a.raw, "<title>rateltd</title>") {
			t.Fatalf("dashboard page: %d", a.code)
		}
		resp, err := ts.Client().Get(ts.URL + "/v1/stream?q=odd&offset=10&limit=3")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		frames := 0
		for frames < 2 && sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var p httpapi.Page
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatal(err)
			}
			if p.Total != 15 || len(p.Keys) != 3 || p.Keys[0].Key != "odd:21" || p.Keys[2].Key != "odd:25" {
				t.Fatalf("frame: total %d, keys %+v", p.Total, p.Keys)
			}
			frames++
		}
		if frames != 2 {
			t.Fatalf("%d frames: %v", frames, sc.Err())
		}
		if a := call(t, ts, "GET", "/v1/stream?limit=0", "", ""); a.code != 400 {
			t.Fatalf("bad limit: %d", a.code)
		}
	})
}

// TestAcquireOneCommand: an acquire granted at once, and one refused at once, each cost one
// Redis command, their headers included: they come from the admission's reply.
func TestAcquireOneCommand(t *testing.T) {
	srv := redistest.Server(t)
	rdb := srv.Client(t)
	hook := &redistest.CommandCounter{}
	rdb.AddHook(hook)
	// A long poll keeps the processor's safety net out of the count.
	c, err := rateltd.New(rateltd.Config{Redis: rdb, Prefix: srv.Prefix(t), PollInterval: time.Hour,
		Limits: map[string]rateltd.Limit{"k": {Max: 1, Window: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ts := httptest.NewServer(httpapi.NewHandler(c, httpapi.Options{}))
	defer ts.Close()
	for i, want := range []int{200, 429} {
		before := hook.Count()
		a := call(t, ts, "POST", "/v1/acquire/k", "", "")
		if n := hook.Count() - before; a.code != want || n != 1 || a.header.Get("RateLimit-Remaining") != "0" ||
			a.header.Get("RateLimit-Limit") != "1" {
			t.Fatalf("acquire %d: %d with %d Redis commands, headers %v; want %d, one command, remaining 0 of 1", i, a.code, n, a.header, want)
		}
	}
}
