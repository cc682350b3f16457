package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/httpapi"
	"github.com/rateltd/rateltd/internal/testnode"
)

// The fuzz targets drive the real handler in process (httptest, the in-process backend): for
// any input, no panic, no 5xx, and every 4xx is a JSON error. Their seeds run with go test.

// fuzzAPI is the API over an in-process Client with a generous default limit, short waits, and
// a handler "echo" that returns its payload.
func fuzzAPI(f *testing.F, opts httpapi.Options) *httpapi.API {
	c := testnode.Client(f, "memory", rateltd.Config{Default: rateltd.Limit{Max: 1_000_000, Window: time.Minute}})
	if err := c.Handle("echo", func(_ context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
		f.Fatal(err)
	}
	api := httpapi.NewHandler(c, opts)
	api.Dashboard(time.Hour)
	return api
}

// do serves one request whose path is already escaped; ctx nil means a live one.
func do(t *testing.T, api http.Handler, ctx context.Context, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	req, err := http.NewRequest(method, "http://rateltd.test"+target, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	if ctx != nil {
		req = req.WithContext(ctx)
	}
	w := httptest.NewRecorder()
	api.ServeHTTP(w, req)
	return w
}

// sane fails the test on a 5xx, or a 4xx that is not a JSON error.
func sane(t *testing.T, what string, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("%s: %d %s", what, w.Code, w.Body)
	}
	if w.Code >= 400 {
		var e httpapi.Error
		if w.Header().Get("Content-Type") != "application/json" || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
			t.Fatalf("%s: %d without a JSON error: %q", what, w.Code, w.Body)
		}
	}
}

// FuzzKeyPath: any key in a path. A valid key is served (its status names it, acquire grants
// it); an invalid one is a 400. Only a key whose path the router cleans (".", "a/../b") may be
// redirected by net/http before any route sees it.
func FuzzKeyPath(f *testing.F) {
	for _, k := range []string{"openai", "stripe:acct_42", "*", "a b", "ü:ñ", "a%2Fb", "a/b", "a{b", "}", "", "\x00", "\t",
		"\xff\xfe", strings.Repeat("k", 512), strings.Repeat("k", 513), ".", "..", "a/../b", "a//b", "?x=1", "#frag", "%", "\u2028"} {
		f.Add(k)
	}
	api := fuzzAPI(f, httpapi.Options{MaxWait: 50 * time.Millisecond})
	f.Fuzz(func(t *testing.T, key string) {
		esc := url.PathEscape(key)
		if w := do(t, api, nil, "GET", "/v1/keys/"+esc, ""); w.Code/100 == 3 || w.Code == http.StatusNotFound {
			if key != "" && path.Clean("/k/"+key) == "/k/"+key {
				t.Fatalf("GET key %q: the router did not route it: %d %s", key, w.Code, w.Body)
			}
			return // net/http redirects to the cleaned path, or finds no route for an empty key
		}
		valid := config.ValidateKey(key) == nil
		for _, r := range []struct{ method, target string }{
			{"GET", "/v1/keys/" + esc},
			{"GET", "/v1/keys/" + esc + "/limit"},
			{"POST", "/v1/acquire/" + esc},
			{"POST", "/v1/jobs/" + esc + "?handler=echo"},
			{"GET", "/v1/jobs/" + esc + "/00000000-0000-0000-0000-000000000000"},
			{"POST", "/v1/keys/" + esc + "/pause"},
			{"POST", "/v1/keys/" + esc + "/resume"},
		} {
			w := do(t, api, nil, r.method, r.target, "x")
			what := r.method + " " + r.target
			sane(t, what, w)
			star := key == "*" && (strings.HasSuffix(r.target, "/pause") || strings.HasSuffix(r.target, "/resume"))
			if !valid && !star && w.Code != http.StatusBadRequest {
				t.Fatalf("%s, an invalid key: %d %s", what, w.Code, w.Body)
			}
			if valid && w.Code == http.StatusBadRequest {
				t.Fatalf("%s, a valid key: %d %s", what, w.Code, w.Body)
			}
		}
		if !valid {
			return
		}
		var st httpapi.StatusJSON
		if w := do(t, api, nil, "GET", "/v1/keys/"+esc, ""); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &st) != nil || st.Key != key {
			t.Fatalf("status of %q: %d %s", key, w.Code, w.Body)
		}
	})
}

// FuzzQuery: any query parameters. acquire answers 400 exactly when wait or priority is bad;
// jobs, the job result, the key list and the dashboard's feed give a 4xx for bad input.
func FuzzQuery(f *testing.F) {
	f.Add("", "", "echo", "", "", "", "", "", "", "")
	f.Add("10ms", "high", "echo", "1m", "3", "order-42", "1", "0", "25", "odd")
	f.Add("-1s", "urgent", "", "soon", "-1", "", "maybe", "-1", "0", "\x00")
	f.Add("2h", "HIGH", "nobody", "0s", "1001", strings.Repeat("n", 300), "0", "x", "201", "{")
	f.Add("1e9h", "critical", strings.Repeat("h", 201), "-5m", "9999999999999999999", "a{b", "true", "9223372036854775807", "200", "")
	f.Add("0", "low", "nobody", "1ns", "0", "", "", "9223372036854775800", "100", "")
	api := fuzzAPI(f, httpapi.Options{MaxWait: 50 * time.Millisecond, MaxPayload: 64})
	done, cancel := context.WithCancel(context.Background())
	cancel() // the feed sends one frame and ends
	f.Fuzz(func(t *testing.T, wait, prio, handler, timeout, retries, name, allowUnknown, offset, limit, q string) {
		enc := func(kv ...string) string {
			v := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				v.Set(kv[i], kv[i+1])
			}
			return v.Encode()
		}
		w := do(t, api, nil, "POST", "/v1/acquire/fz?"+enc("wait", wait, "priority", prio), "")
		sane(t, "acquire", w)
		d, err := time.ParseDuration(wait)
		badWait := wait != "" && (err != nil || d < 0 || d > 50*time.Millisecond)
		_, err = config.ParsePriority(prio)
		badPrio := prio != "" && err != nil
		if (w.Code == http.StatusBadRequest) != (badWait || badPrio) {
			t.Fatalf("acquire wait %q priority %q: %d %s", wait, prio, w.Code, w.Body)
		}

		w = do(t, api, nil, "POST", "/v1/jobs/fz?"+enc("handler", handler, "priority", prio, "timeout", timeout,
			"retries", retries, "name", name, "allow_unknown", allowUnknown), "payload")
		sane(t, "enqueue", w)
		switch w.Code {
		case http.StatusCreated, http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusTooManyRequests:
		default:
			t.Fatalf("enqueue: %d %s", w.Code, w.Body)
		}
		var e httpapi.Error
		if w.Code == http.StatusUnprocessableEntity && (json.Unmarshal(w.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, strconv.Quote(handler))) {
			t.Fatalf("a 422 that does not name the handler %q: %s", handler, w.Body)
		}

		sane(t, "job", do(t, api, nil, "GET", "/v1/jobs/fz/00000000-0000-0000-0000-000000000000?"+enc("wait", wait), ""))
		sane(t, "keys", do(t, api, nil, "GET", "/v1/keys?"+enc("limit", limit, "cursor", q), ""))
		w = do(t, api, done, "GET", "/v1/stream?"+enc("offset", offset, "limit", limit, "q", q), "")
		sane(t, "stream", w)
		if w.Code == http.StatusOK {
			frame, ok := strings.CutPrefix(w.Body.String(), "data: ")
			var p httpapi.Page
			if !ok || json.Unmarshal([]byte(strings.TrimSpace(frame)), &p) != nil || p.Keys == nil {
				t.Fatalf("stream offset %q limit %q: %q", offset, limit, w.Body)
			}
		}
	})
}

// FuzzLimitBody: any body for PUT /v1/keys/{key}/limit. A 200 reads back equal: GET answers
// the limit the PUT answered, and it is a valid limit.
func FuzzLimitBody(f *testing.F) {
	for _, b := range []string{
		`{"max":100,"window":"1m"}`,
		`{"max":100,"window":"1m","algorithm":"token","burst":10,"max_queue":5,"queue_timeout":"30s","overflow":"drop_oldest"}`,
		`{"max":10,"window":"1s","algorithm":"fixed","overflow":"reject"}`,
		`{"max":10,"window":"1s","max_queue":-1}`,
		`{"max":0,"window":"1m"}`, `{"max":-1,"window":"1m"}`, `{"max":10,"window":"-1m"}`, `{"max":10,"window":"0s"}`,
		`{"max":9223372036854775807,"window":"2562047h"}`, `{"max":1,"window":"1ns"}`, `{"max":1e3,"window":"1m"}`,
		`{"max":10,"window":"1m","burst":-5,"algorithm":"token"}`, `{"max":10,"window":"1m","queue_timeout":"-1s"}`,
		`{"max":10,"window":"1m"} trailing`, `[]`, `null`, `""`, ``, `{`, `{"max":"10"}`, `{"colour":"red"}`,
		`{"max":10,"window":"1m","max":20}`, `{"MAX":10,"Window":"1m"}`, "{\"max\":10,\"window\":\"1m\u0000\"}",
		`{"max":100,"window":"1m","units":true,"also":[{"max":5,"window":"1s"},{"max":1000,"window":"1h","units":true}]}`,
		`{"max":10,"window":"1m","algorithm":"token","also":[{"max":5,"window":"1s","burst":2,"units":true}]}`,
		`{"max":10,"window":"1m","also":[]}`, `{"max":10,"window":"1m","also":null}`, `{"max":10,"window":"1m","also":[{}]}`,
		`{"max":10,"window":"1m","also":[{"max":5,"window":"1s","burst":2}]}`, `{"max":10,"window":"1m","also":{"max":5}}`,
		`{"concurrency":5}`, `{"max":10,"window":"1m","concurrency":3}`, `{"concurrency":-1}`, `{"concurrency":5,"window":""}`,
		`{"concurrency":5,"window":"0s"}`, `{"concurrency":5,"max":10}`, `{"concurrency":5,"units":true}`,
	} {
		f.Add(b)
	}
	api := fuzzAPI(f, httpapi.Options{})
	f.Fuzz(func(t *testing.T, body string) {
		w := do(t, api, nil, "PUT", "/v1/keys/fz:limit/limit", body)
		sane(t, "PUT limit", w)
		if w.Code != http.StatusOK {
			if w.Code != http.StatusBadRequest {
				t.Fatalf("PUT limit %q: %d %s", body, w.Code, w.Body)
			}
			return
		}
		var put, got httpapi.LimitJSON
		if err := json.Unmarshal(w.Body.Bytes(), &put); err != nil {
			t.Fatal(err)
		}
		if _, err := put.Limit(); err != nil {
			t.Fatalf("PUT %q answered a limit that does not parse back: %s: %v", body, w.Body, err)
		}
		r := do(t, api, nil, "GET", "/v1/keys/fz:limit/limit", "")
		if r.Code != http.StatusOK || json.Unmarshal(r.Body.Bytes(), &got) != nil || !reflect.DeepEqual(got, put) {
			t.Fatalf("PUT %q answered %s, GET reads %d %s", body, w.Body, r.Code, r.Body)
		}
	})
}

// FuzzJobPayload: any payload of a durable job comes back as the result of "echo", byte for
// byte; one over MaxPayload is a 413.
func FuzzJobPayload(f *testing.F) {
	for _, p := range []string{"", "hello", "\x00\xff\xfe", `{"json":true}`, strings.Repeat("x", 256), strings.Repeat("y", 257)} {
		f.Add([]byte(p))
	}
	api := fuzzAPI(f, httpapi.Options{MaxPayload: 256, MaxWait: 10 * time.Second})
	f.Fuzz(func(t *testing.T, payload []byte) {
		w := do(t, api, nil, "POST", "/v1/jobs/fz:jobs?handler=echo", string(payload))
		sane(t, "enqueue", w)
		if len(payload) > 256 {
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("a payload of %d bytes: %d %s", len(payload), w.Code, w.Body)
			}
			return
		}
		var j httpapi.JobJSON
		if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &j) != nil {
			t.Fatalf("enqueue: %d %s", w.Code, w.Body)
		}
		uuid := j.ID[strings.LastIndexByte(j.ID, '/')+1:]
		r := do(t, api, nil, "GET", "/v1/jobs/fz:jobs/"+uuid+"?wait=10s", "")
		var res httpapi.JobJSON
		if r.Code != http.StatusOK || json.Unmarshal(r.Body.Bytes(), &res) != nil || res.State != "done" || string(res.Result) != string(payload) {
			t.Fatalf("result of %q: %d %s", payload, r.Code, r.Body)
		}
	})
}

// FuzzCost: any ?cost= of acquire, jobs and settle. Acquire and jobs answer 400 exactly when
// the cost is not a whole number from 1 to 2^53; settle takes 0 too, and answers 404 for a
// token it never gave.
func FuzzCost(f *testing.F) {
	for _, s := range []string{"", "1", "0", "-1", "7", "9007199254740992", "9007199254740993", "1e3", "0x10", " 5", "5 ", "lots"} {
		f.Add(s)
	}
	api := fuzzAPI(f, httpapi.Options{})
	f.Fuzz(func(t *testing.T, cost string) {
		n, err := strconv.ParseInt(cost, 10, 64)
		bad := cost != "" && (err != nil || n < 1 || n > 1<<53)
		q := "?" + url.Values{"cost": {cost}}.Encode()
		for _, target := range []string{"/v1/acquire/fz:cost" + q, "/v1/jobs/fz:cost" + q + "&handler=echo"} {
			w := do(t, api, nil, "POST", target, "")
			sane(t, target, w)
			if (w.Code == http.StatusBadRequest) != bad {
				t.Fatalf("%s: %d %s", target, w.Code, w.Body)
			}
		}
		w := do(t, api, nil, "POST", "/v1/settle/fz:cost/00000000000000000000000000000000"+q, "")
		sane(t, "settle", w)
		want := http.StatusNotFound
		if cost == "" || err != nil || n < 0 || n > 1<<53 {
			want = http.StatusBadRequest
		}
		if w.Code != want {
			t.Fatalf("settle cost %q: %d %s, want %d", cost, w.Code, w.Body, want)
		}
	})
}
