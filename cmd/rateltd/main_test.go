package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
	"github.com/rateltd/rateltd/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// cli runs the command with the test's Redis and prefix and returns its exit code and output.
type cli struct {
	t           *testing.T
	url, prefix string
	lib         *rateltd.Client // a library Client on the same Redis and prefix
}

func newCLI(t *testing.T) *cli {
	srv := redistest.Server(t)
	c := &cli{t: t, url: srv.URL(), prefix: srv.Prefix(t)}
	lib, err := rateltd.New(rateltd.Config{Redis: srv.Client(t), Prefix: c.prefix, Default: rateltd.Limit{Max: 3, Window: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	c.lib = lib
	return c
}

// eventually fails the test unless cond holds within 5s.
func (c *cli) eventually(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	all := append([]string{"--redis", c.url, "--prefix", c.prefix}, args...)
	code := run(context.Background(), all, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestStatusPauseResetLimit(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	if code, out, _ := c.run("status"); code != 0 || !strings.Contains(out, "no keys with state") {
		t.Fatalf("status of nothing: %d %q", code, out)
	}
	c.lib.Request(ctx, "api:k", func(context.Context) (any, error) { return nil, nil })

	code, out, errOut := c.run("status")
	if code != 0 || !strings.Contains(out, "api:k") || !strings.Contains(out, "KEY") {
		t.Fatalf("status: %d %q %q", code, out, errOut)
	}
	// A durable job no node runs waits in line: the table shows it in JOBS.
	if _, err := c.lib.Enqueue(ctx, "jobs:k", "nobody", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := c.run("status", "jobs:k"); code != 0 || !strings.Contains(out, "JOBS (running)") || !strings.Contains(out, "  1 (0)  ") {
		t.Fatalf("status of a key with a waiting job: %d %q", code, out)
	}
	code, out, _ = c.run("status", "api:k", "--json")
	var sts []httpapi.StatusJSON
	if code != 0 || json.Unmarshal([]byte(out), &sts) != nil || len(sts) != 1 || sts[0].Key != "api:k" || sts[0].Used != 1 {
		t.Fatalf("status --json: %d %q", code, out)
	}

	if code, out, _ := c.run("pause", "api"); code != 0 || out != "api paused\n" {
		t.Fatalf("pause: %d %q", code, out)
	}
	// The library's node learns of a group pause by pub/sub, or at its next poll.
	c.eventually("the library sees the group paused", func() bool { st, _ := c.lib.Status(ctx, "api:k"); return st.Paused })
	if _, out, _ := c.run("status", "api:k"); !strings.Contains(out, "yes") {
		t.Fatalf("status does not show the pause: %q", out)
	}
	if code, _, _ := c.run("resume", "api"); code != 0 {
		t.Fatal("resume failed")
	}
	c.eventually("the library sees the group resumed", func() bool { st, _ := c.lib.Status(ctx, "api:k"); return !st.Paused })

	if code, out, errOut := c.run("limit", "set", "api:k", "--max", "7", "--window", "1m", "--algorithm", "token", "--burst", "2"); code != 0 || !strings.Contains(out, "7/1m token burst 2") {
		t.Fatalf("limit set: %d %q %q", code, out, errOut)
	}
	c.eventually("the library sees the limit set", func() bool { l, _ := c.lib.LimitOf("api:k"); return l.Max == 7 })
	if code, out, _ := c.run("limit", "get", "api:k", "--json"); code != 0 || !strings.Contains(out, `"max":7`) {
		t.Fatalf("limit get: %d %q", code, out)
	}
	if code, out, _ := c.run("limit", "unset", "api:k"); code != 0 || !strings.Contains(out, "100/1m sliding") {
		t.Fatalf("limit unset: %d %q (want the default back)", code, out)
	}

	if code, out, _ := c.run("reset", "api:k"); code != 0 || out != "api:k reset\n" {
		t.Fatalf("reset: %d %q", code, out)
	}
	if st, _ := c.lib.Status(ctx, "api:k"); st.Used != 0 {
		t.Fatalf("used %d after reset", st.Used)
	}
	if code, out, _ := c.run("watch", "--times", "2", "--interval", "10ms", "api:k"); code != 0 || strings.Count(out, "rateltd watch") != 2 {
		t.Fatalf("watch: %d %q", code, out)
	}
}

// TestDead: a durable job that failed for the last time shows in `rateltd dead`, as a table and
// as JSON.
func TestDead(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	if code, out, _ := c.run("dead", "jobs:k"); code != 0 || out != "jobs:k: no dead letters\n" {
		t.Fatalf("dead of nothing: %d %q", code, out)
	}
	if err := c.lib.Handle("fails", func(context.Context, []byte) ([]byte, error) { return nil, errors.New("smtp said no") }); err != nil {
		t.Fatal(err)
	}
	id, err := c.lib.Enqueue(ctx, "jobs:k", "fails", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.lib.Wait(wctx, id); !errors.Is(err, rateltd.ErrJobFailed) {
		t.Fatalf("Wait: %v", err)
	}
	code, out, errOut := c.run("dead", "jobs:k")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "fails") || !strings.Contains(out, `"smtp said no"`) || !strings.Contains(out, "5 bytes") {
		t.Fatalf("dead: %d %q %q", code, out, errOut)
	}
	code, out, _ = c.run("dead", "jobs:k", "--json")
	var dls []struct {
		JobID   string `json:"job_id"`
		Payload []byte `json:"payload"`
		Error   string `json:"error"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &dls) != nil || len(dls) != 1 || dls[0].JobID != id || string(dls[0].Payload) != "hello" || dls[0].Error != "smtp said no" {
		t.Fatalf("dead --json: %d %q", code, out)
	}
}

// TestBadInput: bad input exits 2 with one line naming the problem; a failure exits 1.
func TestBadInput(t *testing.T) {
	c := newCLI(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no command"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"pause"}, 2, "exactly one name"},
		{[]string{"pause", "a{b"}, 2, "invalid key"},
		{[]string{"reset", "*"}, 2, "not a key to reset"},
		{[]string{"limit", "set", "k", "--max", "0", "--window", "1m"}, 2, "limit.Max"},
		{[]string{"limit", "set", "k", "--max", "5", "--window", "soon"}, 2, "invalid value"},
		{[]string{"limit", "set", "k", "--max", "5", "--window", "1m", "--algorithm", "leaky"}, 2, "leaky"},
		{[]string{"limit", "frob", "k"}, 2, "limit get KEY"},
		{[]string{"status", "--bogus"}, 2, "bogus"},
		{[]string{"--bogus", "status"}, 2, "bogus"},
		{[]string{"watch", "--interval", "1ms"}, 2, "--interval"},
		{[]string{"dead"}, 2, "exactly one key"},
		{[]string{"dead", "-n", "0", "k"}, 2, "-n must be 1 to 1000"},
		{[]string{"--config", "/nonexistent.yaml", "status"}, 2, "nonexistent"},
		{[]string{"bench", "--duration", "1ms"}, 2, "--duration"},
		{[]string{"bench", "--goroutines", "0"}, 2, "--goroutines"},
		{[]string{"bench", "--algorithm", "leaky"}, 2, "leaky"},
		{[]string{"bench", "--memory"}, 2, "--memory"},
		{[]string{"bench", "now"}, 2, "no arguments"},
		{[]string{"--redis", "nope://x", "status"}, 2, "--redis"},
		{[]string{"--redis", "redis://127.0.0.1:1/0", "status"}, 1, "unavailable"},
		{[]string{"--redis", "redis://127.0.0.1:1/0", "bench"}, 1, "unavailable"},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		args := tc.args
		if len(args) > 0 && args[0] != "--redis" {
			args = append([]string{"--redis", c.url, "--prefix", c.prefix}, args...)
		}
		code := run(context.Background(), args, &out, &errOut)
		e := errOut.String()
		if code != tc.code || !strings.HasPrefix(e, "rateltd: ") || strings.Count(e, "\n") != 1 || !strings.Contains(e, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and one line with %q", tc.args, code, e, tc.code, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%q: stdout %q; want nothing (errors go to stderr alone)", tc.args, out.String())
		}
	}
}

// TestHelp: --help (or -h) on every command prints its usage once, on stdout alone, and exits 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--prefix", "p", "--help"}, {"status", "--help"},
		{"status", "-h"}, {"watch", "--help"}, {"pause", "--help"}, {"resume", "--help"}, {"reset", "--help"},
		{"limit", "--help"}, {"dead", "--help"}, {"serve", "--help"}, {"demo", "--help"}, {"bench", "--help"}} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, &out, &errOut)
		if code != 0 || strings.Count(out.String(), "usage: rateltd") != 1 || errOut.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 0 and the usage once on stdout, nothing on stderr",
				args, code, out.String(), errOut.String())
		}
	}
}

// startServe runs serve for the test on a free port and returns its address.
func startServe(t *testing.T, e *env, tk tokens, demo bool) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, e, "127.0.0.1:0", tk, demo, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case addr := <-ready:
		return addr
	case err := <-done:
		t.Fatal(err)
	}
	return ""
}

// TestServe: serve answers the API and the dashboard, and stops when its context ends.
func TestServe(t *testing.T) {
	c := newCLI(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var out bytes.Buffer
	e := &env{g: &globals{redisURL: c.url, redisSet: true, prefix: c.prefix}, out: &out, err: &out}
	go func() { done <- serve(ctx, e, "127.0.0.1:0", tokens{admin: "tok"}, false, ready) }()
	addr := <-ready
	defer http.DefaultClient.CloseIdleConnections()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/": 200, "/v1/keys": 200} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	resp, err := http.Post("http://"+addr+"/v1/keys/k/pause", "", nil)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("pause without the token: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeWithConfigFile: serve takes its limits and admin token from --config; a bad file
// is refused naming its line.
func TestServeWithConfigFile(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	good := dir + "/rateltd.yaml"
	os.WriteFile(good, []byte("admin_token: from-file\nlimits:\n  openai: {max: 42, window: 1m}\n"), 0o600)
	var out bytes.Buffer
	addr := startServe(t, &env{g: &globals{redisURL: c.url, redisSet: true, prefix: c.prefix, configFile: good}, out: &out, err: &out}, tokens{}, false)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	resp, err := http.Get("http://" + addr + "/v1/keys/openai/limit")
	if err != nil {
		t.Fatal(err)
	}
	var l httpapi.LimitJSON
	json.NewDecoder(resp.Body).Decode(&l)
	resp.Body.Close()
	if l.Max != 42 {
		t.Fatalf("limit from the file: %+v", l)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/keys/openai/pause", nil)
	req.Header.Set("Authorization", "Bearer from-file")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pause with the file's token: %v %v", resp, err)
	}
	resp.Body.Close()

	bad := dir + "/bad.yaml"
	os.WriteFile(bad, []byte("limits:\n  openai: {max: 42, window: forever}\n"), 0o600)
	code, _, errOut := c.run("--config", bad, "serve", "--addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errOut, "bad.yaml:2: limits.openai.window") {
		t.Fatalf("bad file: %d %q", code, errOut)
	}
}

// TestDemo: the demo runs in-process without any Redis, and within seconds its keys have
// requests waiting in line.
func TestDemo(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	var out bytes.Buffer
	addr := startServe(t, &env{g: &globals{redisURL: "redis://127.0.0.1:1/0", prefix: "rateltd"}, out: &out, err: &out}, tokens{}, true)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v1/keys")
		if err != nil {
			t.Fatal(err)
		}
		var page httpapi.KeysPage
		json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		queued := 0
		for _, st := range page.Keys {
			queued += st.Queued
		}
		if len(page.Keys) == 4 && queued > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo: %d keys, %d queued after 20s", len(page.Keys), queued)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "demo: simulated callers") {
		t.Fatalf("demo output: %q", out.String())
	}
}

// lockedBuffer is a bytes.Buffer that the command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeClientToken: the client token comes from --client-token, else
// $RATELTD_CLIENT_TOKEN, else client_token: in --config; acquire needs it (or the admin
// token); --help names the flag and the variable.
func TestServeClientToken(t *testing.T) {
	c := newCLI(t)
	file := t.TempDir() + "/rateltd.yaml"
	os.WriteFile(file, []byte("admin_token: adm-file\nclient_token: cli-file\n"), 0o600)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	for _, tc := range []struct {
		name, env string
		args      []string
		token     string // the client token in force
	}{
		{"flag", "cli-env", []string{"serve", "--client-token", "cli-flag"}, "cli-flag"},
		{"environment", "cli-env", []string{"serve"}, "cli-env"},
		{"file", "", []string{"--config", file, "serve"}, "cli-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("RATELTD_CLIENT_TOKEN", tc.env)
			ctx, cancel := context.WithCancel(context.Background())
			var out lockedBuffer
			done := make(chan int, 1)
			args := append([]string{"--redis", c.url, "--prefix", c.prefix}, append(tc.args, "--addr", "127.0.0.1:0")...)
			go func() { done <- run(ctx, args, &out, &out) }()
			defer func() {
				cancel()
				if code := <-done; code != 0 {
					t.Errorf("serve exited %d: %s", code, out.String())
				}
			}()
			var addr string
			c.eventually("serve listens", func() bool {
				_, rest, ok := strings.Cut(out.String(), "serving http://")
				addr, _, _ = strings.Cut(rest, "/")
				return ok && addr != ""
			})
			acquire := func(token string) int {
				req, _ := http.NewRequest("POST", "http://"+addr+"/v1/acquire/tok:k", nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			for token, want := range map[string]int{"": 401, "cli-env-not": 401, tc.token: 200} {
				if got := acquire(token); got != want {
					t.Errorf("acquire with %q: %d, want %d", token, got, want)
				}
			}
			if tc.name == "file" {
				if got := acquire("adm-file"); got != 200 {
					t.Errorf("acquire with the admin token: %d, want 200", got)
				}
			}
		})
	}
	// --help names the flag and the variable, and prints no token.
	t.Setenv("RATELTD_CLIENT_TOKEN", "cli-secret")
	t.Setenv("RATELTD_ADMIN_TOKEN", "adm-secret")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--help"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "-client-token") || !strings.Contains(out.String(), "$RATELTD_CLIENT_TOKEN") ||
		strings.Contains(out.String(), "secret") {
		t.Fatalf("serve --help: %d %q", code, out.String())
	}
}
