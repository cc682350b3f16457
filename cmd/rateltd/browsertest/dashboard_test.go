package browsertest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// browser starts headless Chromium, or skips the test when there is none — unless
// RATELTD_REQUIRE_BROWSER=1 (as in CI), where that is a failure.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("RATELTD_REQUIRE_BROWSER") == "1" {
			t.Fatal("no Chromium found (apt-get install chromium), and RATELTD_REQUIRE_BROWSER=1")
		}
		t.Skip("no Chromium found: apt-get install chromium to run the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1400, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

// TestDashboardInBrowser: with a client token set, the dashboard of "rateltd serve" asks for a
// token and its feed goes live with the client token; a key appears; pressing pause asks for
// the admin token, shows the key paused and the library sees it paused; the queue depth
// follows the load; resume drains it. A key of two rates shows both, each with what it counts;
// a key with a concurrency cap shows its slots in flight; a key with a shadow limit shows it
// as shadow, with what the limit would have done; an adaptive key cut by its upstream shows
// the limit in force under the configured one; scheduled durable jobs are counted; a key with
// tenants waiting shows how many and the top ones.
func TestDashboardInBrowser(t *testing.T) {
	bctx := browser(t)
	srv := redistest.Server(t)
	prefix := srv.Prefix(t)
	lib, err := rateltd.New(rateltd.Config{Redis: srv.Client(t), Prefix: prefix, Default: rateltd.Limit{Max: 3, Window: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	addr := startCommand(t, map[string]string{"RATELTD_ADMIN_TOKEN": "", "RATELTD_CLIENT_TOKEN": ""},
		"--redis", srv.URL(), "--prefix", prefix, "serve", "--addr", "127.0.0.1:0", "--admin-token", "tok", "--client-token", "cli")
	prompts := answerPrompts(bctx, map[string]string{"Token (client or admin)": "cli", "Admin token": "tok"})
	ctx := context.Background()
	const key = "dash:key"
	if _, err := lib.Request(ctx, key, func(context.Context) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`tr[data-key=%q]`, key)
	queued := func(n int) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(fmt.Sprintf(`%s td.q[data-queued="%d"]`, row, n))
	}
	err = chromedp.Do(bctx, chromedp.Navigate("http://"+addr+"/"), chromedp.WaitVisible(row), queued(0))
	if err == nil {
		err = chromedp.Do(bctx, chromedp.Click(row+` button[data-act="pause"]`), chromedp.WaitVisible(row+` .state .badge`))
	}
	if err != nil {
		t.Fatalf("pause in the dashboard: %v", err)
	}
	if st, err := lib.Status(ctx, key); err != nil || !st.Paused {
		t.Fatalf("the library does not see the key paused: %+v %v", st, err)
	}
	// Load: three requests wait in the paused key's line.
	var chans []<-chan rateltd.Result
	for range 3 {
		chans = append(chans, lib.RequestAsync(ctx, key, func(context.Context) (any, error) { return nil, nil }, rateltd.WithTimeout(30*time.Second)))
	}
	if err := chromedp.Do(bctx, queued(3), chromedp.Click(row+` button[data-act="resume"]`), queued(0)); err != nil {
		t.Fatalf("queue depth in the dashboard: %v", err)
	}
	for _, ch := range chans {
		if r := <-ch; r.Err != nil {
			t.Fatalf("waiting request after resume: %v", r.Err)
		}
	}
	if st, _ := lib.Status(ctx, key); st.Paused {
		t.Fatal("still paused after resume in the dashboard")
	}
	if got := prompts(); !slices.Equal(got, []string{"Token (client or admin)", "Admin token"}) {
		t.Fatalf("the dashboard asked %q, want the client prompt for its feed, then the admin prompt for pause", got)
	}
	checkRates(t, bctx, lib)
	checkSlots(t, bctx, lib)
	checkShadow(t, bctx, lib)
	checkEffective(t, bctx, lib)
	checkScheduled(t, bctx, lib)
	checkTenants(t, bctx, lib)
}

// checkEffective sets, at run time, an adaptive limit of 20 a minute, cuts it to 10 with an
// upstream's 429 (Observe), and waits for the dashboard to show the limit in force, 10 a
// minute, under the configured one.
func checkEffective(t *testing.T, bctx context.Context, lib *rateltd.Client) {
	t.Helper()
	ctx := context.Background()
	const key = "dash:adaptive"
	if err := lib.SetLimit(ctx, key, rateltd.Limit{Max: 20, Window: time.Minute, Adaptive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := lib.Request(ctx, key, func(context.Context) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	refused := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{}}
	if err := lib.Observe(ctx, key, refused); err != nil {
		t.Fatal(err)
	}
	if st, err := lib.Status(ctx, key); err != nil || st.Effective.Max != 10 {
		t.Fatalf("the library holds %+v in force, want 10: %v", st.Effective, err)
	}
	row := fmt.Sprintf(`tr[data-key=%q]`, key)
	var limit string
	err := chromedp.Do(bctx, chromedp.WaitVisible(row+` .effective[data-max="10"]`))
	if err == nil {
		limit, err = chromedp.Run(bctx, chromedp.Text(row+" td.limit"))
	}
	if err != nil {
		t.Fatalf("the dashboard does not show the limit in force of %s: %v", key, err)
	}
	if !strings.HasPrefix(limit, "20 / 1m sliding adaptive") || !strings.Contains(limit, "in force now: 10 / 1m") {
		t.Fatalf("the dashboard shows limit %q", limit)
	}
}

// checkScheduled enqueues two durable jobs to run in an hour and waits for the dashboard to
// count them as scheduled.
func checkScheduled(t *testing.T, bctx context.Context, lib *rateltd.Client) {
	t.Helper()
	ctx := context.Background()
	const key = "dash:later"
	for range 2 {
		if _, err := lib.Enqueue(ctx, key, "mail", []byte("later"), rateltd.WithDelay(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	row := fmt.Sprintf(`tr[data-key=%q]`, key)
	var jobs string
	err := chromedp.Do(bctx, chromedp.WaitVisible(row+` td.jobs[data-jobs="2"][data-jobs-scheduled="2"]`))
	if err == nil {
		jobs, err = chromedp.Run(bctx, chromedp.Text(row+" td.jobs"))
	}
	if err != nil {
		t.Fatalf("the dashboard does not show the scheduled jobs of %s: %v", key, err)
	}
	if !strings.Contains(jobs, "2 scheduled") {
		t.Fatalf("the dashboard shows jobs %q", jobs)
	}
}

// checkShadow sets, at run time, a shadow limit of 1 request every 10s, runs 3 requests (all
// run at once), the last with 1ms to wait, and waits for the dashboard to show the limit as
// shadow and what it would have done: 1 allowed, 1 queued (with its would-be wait) and 1
// refused (its deadline was out of reach).
func checkShadow(t *testing.T, bctx context.Context, lib *rateltd.Client) {
	t.Helper()
	ctx := context.Background()
	const key = "dash:shadow"
	if err := lib.SetLimit(ctx, key, rateltd.Limit{Max: 1, Window: 10 * time.Second, Shadow: true}); err != nil {
		t.Fatal(err)
	}
	for _, timeout := range []time.Duration{time.Minute, time.Minute, time.Millisecond} {
		if _, err := lib.Request(ctx, key, func(context.Context) (any, error) { return nil, nil }, rateltd.WithTimeout(timeout)); err != nil {
			t.Fatalf("a request on a shadow key: %v", err)
		}
	}
	row := fmt.Sprintf(`tr[data-key=%q]`, key)
	var limit, usage string
	err := chromedp.Do(bctx, chromedp.WaitVisible(row+` .would[data-shadow-allowed="1"][data-shadow-queued="1"][data-shadow-refused="1"]`))
	if err == nil {
		limit, err = chromedp.Run(bctx, chromedp.Text(row+" td.limit"))
	}
	if err == nil {
		usage, err = chromedp.Run(bctx, chromedp.Text(row+" td.usage"))
	}
	if err != nil {
		t.Fatalf("the dashboard does not show the shadow counts of %s: %v", key, err)
	}
	if limit != "1 / 10s sliding shadow" || !strings.Contains(usage, "would have: 1 allowed, 1 queued") || !strings.Contains(usage, "1 refused") {
		t.Fatalf("the dashboard shows limit %q and usage %q", limit, usage)
	}
}

// checkSlots sets, at run time, a concurrency cap of 2 alone on one key and a rate with a cap
// of 3 on another, holds one request of each running, and waits for the dashboard to show
// each key's slots: 1 in flight of its cap, with the cap in the limit column.
func checkSlots(t *testing.T, bctx context.Context, lib *rateltd.Client) {
	t.Helper()
	ctx := context.Background()
	keys := map[string]rateltd.Limit{"dash:cap": {Concurrency: 2}, "dash:both": {Max: 5, Window: time.Minute, Concurrency: 3}}
	release := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(release); wg.Wait() })
	for key, l := range keys {
		if err := lib.SetLimit(ctx, key, l); err != nil {
			t.Fatal(err)
		}
		running := make(chan struct{})
		wg.Go(func() {
			lib.Request(ctx, key, func(context.Context) (any, error) { close(running); <-release; return nil, nil })
		})
		select {
		case <-running:
		case <-time.After(10 * time.Second):
			t.Fatalf("a request of %s did not start within 10s", key)
		}
	}
	for key, want := range map[string]struct{ limit, usage string }{
		"dash:cap":  {"concurrency 2", "1 in flight of 2 at once"},
		"dash:both": {"5 / 1m sliding, concurrency 3", "1 in flight of 3 at once"},
	} {
		row := fmt.Sprintf(`tr[data-key=%q]`, key)
		slots := keys[key].Concurrency
		var limit, usage string
		err := chromedp.Do(bctx, chromedp.WaitVisible(fmt.Sprintf(`%s .slots[data-in-flight="1"][data-concurrency="%d"]`, row, slots)))
		if err == nil {
			limit, err = chromedp.Run(bctx, chromedp.Text(row+" td.limit"))
		}
		if err == nil {
			usage, err = chromedp.Run(bctx, chromedp.Text(row+" td.usage"))
		}
		if err != nil {
			t.Fatalf("the dashboard does not show the slots of %s: %v", key, err)
		}
		if limit != want.limit || !strings.Contains(usage, want.usage) {
			t.Fatalf("%s: the dashboard shows limit %q and usage %q, want %q and %q", key, limit, usage, want.limit, want.usage)
		}
	}
}

// checkRates sets a limit of two rates, 5 requests and 100 cost units a minute, at run time
// (so that the serving process has it too), spends a request of cost 30, and waits for the
// dashboard to show both rates: 1 of 5 requests used and 30 of 100 units.
func checkRates(t *testing.T, bctx context.Context, lib *rateltd.Client) {
	t.Helper()
	ctx := context.Background()
	const key = "dash:rates"
	l := rateltd.Limit{Max: 5, Window: time.Minute, Also: []rateltd.Rate{{Max: 100, Window: time.Minute, Units: true}}}
	if err := lib.SetLimit(ctx, key, l); err != nil {
		t.Fatal(err)
	}
	if _, err := lib.Request(ctx, key, func(context.Context) (any, error) { return nil, nil }, rateltd.WithCost(30)); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`tr[data-key=%q]`, key)
	var limit, usage string
	err := chromedp.Do(bctx,
		chromedp.WaitVisible(row+` .rate[data-rate="0"][data-used="1"][data-remaining="4"][data-max="5"][data-units="false"]`),
		chromedp.WaitVisible(row+` .rate[data-rate="1"][data-used="30"][data-remaining="70"][data-max="100"][data-units="true"]`),
	)
	if err == nil {
		limit, err = chromedp.Run(bctx, chromedp.Text(row+" td.limit"))
	}
	if err == nil {
		usage, err = chromedp.Run(bctx, chromedp.Text(row+" td.usage"))
	}
	if err != nil {
		t.Fatalf("the dashboard does not show both rates of %s: %v", key, err)
	}
	if limit != "5 / 1m + 100 units / 1m sliding" || !strings.Contains(usage, "1 used, 4 left of 5 req / 1m") ||
		!strings.Contains(usage, "30 used, 70 left of 100 units / 1m") {
		t.Fatalf("the dashboard shows limit %q and usage %q", limit, usage)
	}
}

// answerPrompts answers the page's prompt() dialogs from answers, by their message, and
// returns a function that lists the messages asked so far.
func answerPrompts(bctx context.Context, answers map[string]string) func() []string {
	var mu sync.Mutex
	var asked []string
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			mu.Lock()
			asked = append(asked, ev.Message)
			mu.Unlock()
			text, ok := answers[ev.Message]
			if _, err := chromedp.Call(bctx, page.HandleJavaScriptDialog,
				page.HandleJavaScriptDialogParams{Accept: ok, PromptText: text}); err != nil {
				return
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked)
	}
}

// TestDashboardScreenshot writes a screenshot of the dashboard under "rateltd demo" to the path
// in RATELTD_SCREENSHOT (relative to the repository's root; docs/dashboard.png is made so);
// without it the test is skipped.
func TestDashboardScreenshot(t *testing.T) {
	path := os.Getenv("RATELTD_SCREENSHOT")
	if path == "" {
		t.Skip("set RATELTD_SCREENSHOT=docs/dashboard.png to make the screenshot")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(repoRoot(t), path)
	}
	bctx := browser(t)
	// In-process: no Redis named, none in the environment.
	addr := startCommand(t, map[string]string{"REDIS_URL": "", "RATELTD_ADMIN_TOKEN": "", "RATELTD_CLIENT_TOKEN": ""},
		"demo", "--addr", "127.0.0.1:0")
	err := chromedp.Do(bctx,
		chromedp.Navigate("http://"+addr+"/"),
		chromedp.WaitVisible(`tr[data-key="openai"]`),
		chromedp.Sleep(8*time.Second), // the demo's waves fill the lines and the charts
	)
	var png []byte
	if err == nil {
		png, err = chromedp.Run(bctx, chromedp.FullScreenshot(100))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
