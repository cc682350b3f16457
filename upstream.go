package rateltd

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/processor"
)

// Budget is what an upstream said it has left of one of its limits: Remaining more until its
// window is whole again, Reset from now. Units tells a budget of cost units (tokens) from one
// of requests.
type Budget struct {
	Units     bool
	Remaining int64
	Reset     time.Duration
	// Limit is the upstream's own limit when it states one (x-ratelimit-limit-*,
	// anthropic-ratelimit-*-limit, RateLimit-Limit, RateLimit-Policy's q); 0 when not.
	Limit int64
}

// UpstreamBudgets reads what an upstream's answer headers say of its budgets:
//   - OpenAI style: x-ratelimit-remaining-requests / x-ratelimit-reset-requests and the same
//     for -tokens (resets as durations: "1s", "6m0s", "20ms");
//   - Anthropic style: anthropic-ratelimit-requests-remaining / -reset and the same for
//     -tokens (resets as RFC 3339 times);
//   - the IETF RateLimit fields: RateLimit: "name";r=remaining;t=seconds, or the earlier
//     RateLimit-Remaining and RateLimit-Reset (seconds), and their X-RateLimit- forms (a reset
//     past 10^9 reads as Unix seconds).
//
// Unreadable or absent fields give no budget. retry is the wait of a Retry-After header (0 for
// none).
func UpstreamBudgets(h http.Header) (budgets []Budget, retry time.Duration) {
	for _, f := range []struct {
		remaining, reset, limit string
		units                   bool
	}{
		{"X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests", "X-Ratelimit-Limit-Requests", false},
		{"X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens", "X-Ratelimit-Limit-Tokens", true},
		{"Anthropic-Ratelimit-Requests-Remaining", "Anthropic-Ratelimit-Requests-Reset", "Anthropic-Ratelimit-Requests-Limit", false},
		{"Anthropic-Ratelimit-Tokens-Remaining", "Anthropic-Ratelimit-Tokens-Reset", "Anthropic-Ratelimit-Tokens-Limit", true},
		{"Ratelimit-Remaining", "Ratelimit-Reset", "Ratelimit-Limit", false},
		{"X-Ratelimit-Remaining", "X-Ratelimit-Reset", "X-Ratelimit-Limit", false},
	} {
		r, ok := parseCount(h.Get(f.remaining))
		if !ok {
			continue
		}
		if d, ok := parseReset(h.Get(f.reset)); ok {
			limit, _ := parseCount(h.Get(f.limit))
			budgets = append(budgets, Budget{Units: f.units, Remaining: r, Reset: d, Limit: limit})
		}
	}
	if b, ok := parseRateLimitField(h.Get("Ratelimit")); ok {
		b.Limit = parsePolicyQuota(h.Get("Ratelimit-Policy"))
		budgets = append(budgets, b)
	}
	if d, ok := parseRetryAfter(h.Get("Retry-After")); ok {
		retry = d
	}
	return budgets, retry
}

func parseCount(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil && n >= 0
}

// parseReset reads a reset: a Go-style duration ("6m0s"), an RFC 3339 time, or seconds (Unix
// seconds past 10^9).
func parseReset(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 {
		if n > 1e9 {
			return max(0, time.Until(time.Unix(int64(n), 0))), true
		}
		return time.Duration(n * float64(time.Second)), true
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return max(0, time.Until(t)), true
	}
	return 0, false
}

// parsePolicyQuota reads the quota (q=) of the IETF RateLimit-Policy field; 0 when none.
func parsePolicyQuota(s string) int64 {
	for _, p := range strings.Split(s, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && k == "q" {
			if n, ok := parseCount(v); ok {
				return n
			}
		}
	}
	return 0
}

// parseRateLimitField reads the IETF RateLimit field: `"policy";r=50;t=30`.
func parseRateLimitField(s string) (Budget, bool) {
	var b Budget
	var haveR, haveT bool
	for _, p := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		switch k {
		case "r":
			b.Remaining, haveR = parseCount(v)
		case "t":
			b.Reset, haveT = parseReset(v)
		}
	}
	return b, haveR && haveT
}

// Observe reads what the upstream said about its budget in resp's headers (see
// UpstreamBudgets) and, where it has less left than key's limit would still admit, holds key
// back to what the upstream has left until the upstream's reset, on every node: a budget of
// requests in the first rate of the limit that counts requests, one of tokens in the first
// that counts units. It never raises a key above its limit. A Retry-After pauses the key
// cluster-wide for its wait, as a RetryAfterError does. For an adaptive key (Limit.Adaptive),
// a 429 cuts the limit in force, and a limit the upstream states below the key's brings it
// down to that. resp may be nil (nothing to read).
func (c *Client) Observe(ctx context.Context, key string, resp *http.Response) error {
	if resp == nil {
		return c.usable(key)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		if err := c.usable(key); err != nil {
			return err
		}
		c.node.Adapt(ctx, key, processor.AdaptRefused)
	}
	return c.ObserveHeader(ctx, key, resp.Header)
}

// ObserveHeader is Observe for the header values alone.
func (c *Client) ObserveHeader(ctx context.Context, key string, h http.Header) error {
	if err := c.usable(key); err != nil {
		return err
	}
	budgets, retry := UpstreamBudgets(h)
	if retry > 0 {
		c.node.PauseFor(ctx, key, retry)
	}
	for _, b := range budgets {
		// An upstream stating a lower limit than the key's brings an adaptive key down to it.
		if i := rateFor(c.node.Configured(key), b.Units); i >= 0 && b.Limit > 0 {
			c.node.AdaptTo(ctx, key, float64(b.Limit)/float64(c.node.Configured(key).Rate(i).Max))
		}
	}
	p := c.node.Params(key)
	for _, b := range budgets {
		i := rateFor(p.Limit, b.Units)
		if i < 0 || b.Reset <= 0 {
			continue
		}
		if _, err := c.be.HoldBack(ctx, key, p, i, b.Remaining, b.Reset.Microseconds()); err != nil {
			return unavailable(ctx, err)
		}
	}
	return nil
}

// rateFor is the index of the first rate of l that counts units (or requests): the one an
// upstream's budget of that kind stands for; -1 when none does.
func rateFor(l config.Limit, units bool) int {
	for i := range l.NumRates() {
		if l.Rate(i).Units == units {
			return i
		}
	}
	return -1
}
