package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
	"github.com/rateltd/rateltd/internal/testnode"
)

// route is one guarded route as the auth tests call it, with the answer it gives when let in.
type route struct {
	name, method, path string
	admin              bool // an admin route
	ok                 int
}

var guarded = []route{
	{"acquire", "POST", "/v1/acquire/auth:k", false, 200},
	{"settle", "POST", "/v1/settle/auth:k/00000000000000000000000000000000?cost=1", false, 404}, // let in, no such grant
	{"jobs POST", "POST", "/v1/jobs/auth:k?handler=h&allow_unknown=1", false, 201},
	{"jobs GET", "GET", "/v1/jobs/auth:k/00000000-0000-0000-0000-000000000000", false, 404}, // let in, no such job
	{"stream", "GET", "/v1/stream?limit=1", false, 200},
	{"keys", "GET", "/v1/keys", false, 200},
	{"key status", "GET", "/v1/keys/auth:k", false, 200},
	{"limit GET", "GET", "/v1/keys/auth:k/limit", false, 200},
	{"pause (admin)", "POST", "/v1/keys/auth:k/pause", true, 200},
}

// try calls r with token ("" for none) and returns the code; a 401 must carry
// WWW-Authenticate: Bearer and a JSON error. The stream is read up to its headers only.
func try(t *testing.T, ts *httptest.Server, r route, token string) int {
	t.Helper()
	req, err := http.NewRequest(r.method, ts.URL+r.path, strings.NewReader("x"))
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
	if resp.StatusCode == http.StatusUnauthorized {
		var e httpapi.Error
		raw, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(raw, &e) != nil || e.Error == "" {
			t.Errorf("%s with %q: a 401 without WWW-Authenticate: Bearer or a JSON error: %v %s", r.name, token, resp.Header, raw)
		}
	}
	return resp.StatusCode
}

// TestAuth: per route (acquire, jobs POST, jobs GET, stream, and pause for the admin routes),
// who gets in with no token, a wrong token, the client token and the admin token, for each
// combination of tokens the service may be given.
func TestAuth(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			for _, setup := range []struct {
				name          string
				admin, client string
				in            map[string]func(r route) bool // by token given: which routes let it in
			}{
				{"client and admin tokens", "adm", "cli", map[string]func(route) bool{
					"": none, "wrong": none, "cli": clientRoutes, "adm": all}},
				{"admin token only (as before client tokens)", "adm", "", map[string]func(route) bool{
					"": clientRoutes, "wrong": clientRoutes, "cli": clientRoutes, "adm": all}},
				{"client token only: it guards the admin routes too", "", "cli", map[string]func(route) bool{
					"": none, "wrong": none, "cli": all, "adm": none}},
				{"no tokens", "", "", map[string]func(route) bool{"": all, "wrong": all, "cli": all, "adm": all}},
			} {
				t.Run(setup.name, func(t *testing.T) {
					c := testnode.Client(t, backend, rateltd.Config{Default: rateltd.Limit{Max: 1000, Window: time.Minute}})
					api := httpapi.NewHandler(c, httpapi.Options{AdminToken: setup.admin, ClientToken: setup.client})
					api.Dashboard(time.Hour)
					ts := httptest.NewServer(api)
					defer ts.Close()
					for _, r := range guarded {
						for _, token := range []string{"", "wrong", "cli", "adm"} {
							want := http.StatusUnauthorized
							if setup.in[token](r) {
								want = r.ok
							}
							if got := try(t, ts, r, token); got != want {
								t.Errorf("%s with token %q: %d, want %d", r.name, token, got, want)
							}
						}
					}
				})
			}
		})
	}
}

func none(route) bool           { return false }
func all(route) bool            { return true }
func clientRoutes(r route) bool { return !r.admin }

// TestAuthHeader: the scheme's case does not matter; anything but "Bearer <token>" is refused.
func TestAuthHeader(t *testing.T) {
	c := testnode.Client(t, "redis", rateltd.Config{})
	ts := httptest.NewServer(httpapi.NewHandler(c, httpapi.Options{ClientToken: "cli"}))
	defer ts.Close()
	for header, want := range map[string]int{
		"Bearer cli": 200, "bearer cli": 200, "BEARER  cli ": 200,
		"cli": 401, "Basic cli": 401, "Bearer": 401, "Bearer ": 401, "Bearer cl": 401, "Bearer clix": 401, "Bearer cli x": 401,
	} {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/acquire/hdr", nil)
		req.Header.Set("Authorization", header)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Authorization: %q: %d, want %d", header, resp.StatusCode, want)
		}
	}
}
