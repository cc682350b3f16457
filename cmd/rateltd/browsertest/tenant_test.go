package browsertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rateltd/rateltd"
)

// checkTenants pauses a key, puts two requests of tenant gold and one of silver in its line,
// and waits for the dashboard to show that two tenants wait, gold with 2 and silver with 1;
// then resumes the key and sees the requests granted and the tenants gone.
func checkTenants(t *testing.T, bctx context.Context, lib *rateltd.Client) {
	t.Helper()
	ctx := context.Background()
	const key = "dash:tenants"
	if err := lib.Pause(ctx, key); err != nil {
		t.Fatal(err)
	}
	var chans []<-chan rateltd.Result
	for _, tenant := range []string{"gold", "gold", "silver"} {
		chans = append(chans, lib.RequestAsync(ctx, key, func(context.Context) (any, error) { return nil, nil },
			rateltd.WithTenant(tenant), rateltd.WithTimeout(50*time.Second)))
	}
	row := fmt.Sprintf(`tr[data-key=%q]`, key)
	var text string
	err := chromedp.Do(bctx, chromedp.WaitVisible(row+` .tenants[data-tenants-waiting="2"]`),
		chromedp.WaitVisible(row+` .tenant[data-tenant="gold"][data-waiting="2"]`),
		chromedp.WaitVisible(row+` .tenant[data-tenant="silver"][data-waiting="1"]`))
	if err == nil {
		text, err = chromedp.Run(bctx, chromedp.Text(row+" .tenants"))
	}
	if err != nil {
		t.Fatalf("the dashboard does not show the tenants waiting in %s: %v", key, err)
	}
	if text != "2 tenants waiting: gold 2, silver 1" {
		t.Fatalf("the dashboard shows %q", text)
	}
	if err := lib.Resume(ctx, key); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		if r := <-ch; r.Err != nil {
			t.Fatalf("a waiting request of a tenant after resume: %v", r.Err)
		}
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(row+` td.q[data-queued="0"]`)); err != nil {
		t.Fatalf("the line of %s does not empty in the dashboard: %v", key, err)
	}
	left, err := chromedp.Run(bctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('%s .tenants').length`, row)))
	if err != nil || left != 0 {
		t.Fatalf("tenants still shown after the line emptied: %d %v", left, err)
	}
}
