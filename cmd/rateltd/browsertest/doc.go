// Package browsertest drives the dashboard of the rateltd command in headless Chromium: it
// builds the command, starts "rateltd serve" (or "rateltd demo") as a process, and clicks
// through the page with chromedp.
//
// It is a module of its own (with a replace of the repository's root), so that chromedp and
// the Chrome DevTools protocol stay out of the library's go.mod. Run it from this directory:
//
//	go test -count=1 ./...
//
// Without Chromium the tests skip, or fail when RATELTD_REQUIRE_BROWSER=1 (as in CI). The
// screenshot in the README is made by
//
//	RATELTD_SCREENSHOT=docs/dashboard.png go test -count=1 -run TestDashboardScreenshot .
//
// where a relative path is taken from the repository's root.
package browsertest
