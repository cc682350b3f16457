// Package middleware rate-limits incoming HTTP requests with rateltd: each request is keyed
// (by client IP, a header such as an API key, or a function of your own), waits in that key's
// line up to a bound, and is served when its turn comes — or answered 429 Too Many Requests
// with Retry-After. Answers carry RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset and
// their X-RateLimit-* equivalents, read from the admission's reply (rateltd.WithDecision): a
// request served or refused at once costs one Redis command. One that waited in line, or
// timed out there, reads them with a Check.
//
//	limit, err := middleware.New(rl, middleware.Options{
//		Key:  middleware.Header("X-API-Key"),
//		Wait: 2 * time.Second, // 0: answer 429 at once when over the limit
//	})
//	http.ListenAndServe(addr, limit(mux))
//
// The limits are rateltd's: configure the group ("http" unless Options.Group says otherwise)
// or its keys in rateltd.Config. A limit may count cost units (rateltd.Limit.Units, Also):
// Options.Cost then says what each request costs, and the handler may settle the real cost
// with rateltd.Settle(r.Context(), n). Options.Tenant says whose request it is within its key
// (rateltd.WithTenant), so that tenants sharing a key share its line fairly.
//
// A request carrying its caller's trace context (W3C traceparent) continues that trace: the
// span rateltd makes for it (rateltd.request) is a child of the caller's span, and the
// handler's ctx carries it (see ContinueTrace).
package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
)

// KeyFunc returns what identifies a request's caller; an error answers 400.
type KeyFunc func(*http.Request) (string, error)

// CostFunc returns what a request costs against the rates of its key's limit that count cost
// units (rateltd.WithCost): the size of its body, the tokens it asks for. An error, or a cost
// below 1, answers 400; a cost more than the limit could ever admit answers 413
// (rateltd.ErrCostTooHigh).
type CostFunc func(*http.Request) (int, error)

// Options configure the middleware.
type Options struct {
	// Key identifies the caller. Required.
	Key KeyFunc
	// Group is put before the caller's identity to make the rateltd key (Group + ":" + id), so
	// one limit in rateltd.Config.Limits covers every caller. Defaults to "http".
	Group string
	// Wait is how long a request may wait in line; 0 answers 429 at once when the limit is
	// reached. Defaults to 0.
	Wait time.Duration
	// Priority of the requests in line. Defaults to rateltd.PriorityNormal (the zero value).
	Priority rateltd.Priority
	// Cost gives each request's cost. The handler runs with a ctx (r.Context()) in which
	// rateltd.Settle says what the request really cost, when the limit counts units. Defaults
	// to nil: every request costs 1.
	Cost CostFunc
	// Tenant says whose request it is within its key (rateltd.WithTenant): the account behind
	// an API key, a header such as X-Tenant. Tenants waiting in the key's line share it by the
	// limit's TenantWeights, and MaxQueuePerTenant bounds what one may have waiting. An empty
	// tenant is no tenant; one rateltd.WithTenant refuses answers 400. Defaults to nil: no
	// request has a tenant.
	Tenant func(*http.Request) string
}

// New returns the middleware, or an error naming a bad option.
func New(c *rateltd.Client, opts Options) (func(http.Handler) http.Handler, error) {
	switch {
	case c == nil:
		return nil, fmt.Errorf("%w: middleware: nil Client", rateltd.ErrInvalidConfig)
	case opts.Key == nil:
		return nil, fmt.Errorf("%w: middleware: Options.Key is required", rateltd.ErrInvalidConfig)
	case opts.Wait < 0:
		return nil, fmt.Errorf("%w: middleware: Options.Wait must not be negative", rateltd.ErrInvalidConfig)
	}
	if opts.Group == "" {
		opts.Group = "http"
	}
	if err := config.ValidateKey(opts.Group); err != nil || strings.Contains(opts.Group, ":") {
		return nil, fmt.Errorf("%w: middleware: Options.Group %q: a group name without ':'", rateltd.ErrInvalidConfig, opts.Group)
	}
	if !opts.Priority.Valid() {
		return nil, fmt.Errorf("%w: middleware: Options.Priority: unknown priority %d", rateltd.ErrInvalidConfig, int(opts.Priority))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = ContinueTrace(r)
			id, err := opts.Key(r)
			if err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			key := KeyOf(opts.Group, id)
			cost := 1
			if opts.Cost != nil {
				if cost, err = opts.Cost(r); err == nil && cost < 1 {
					err = fmt.Errorf("cost %d: must be at least 1", cost)
				}
				if err != nil {
					writeError(w, http.StatusBadRequest, err)
					return
				}
			}
			tenant := ""
			if opts.Tenant != nil {
				tenant = opts.Tenant(r)
			}
			ran := false
			// The headers come from the admission's reply when it decided at once: a request
			// served at once is one Redis command. One that waited in line reads them anew.
			var d *rateltd.Decision
			_, err = c.Request(r.Context(), key, func(ctx context.Context) (any, error) {
				ran = true
				if d != nil {
					SetRateHeadersFrom(w.Header(), c, key, *d)
				} else {
					SetRateHeaders(ctx, w.Header(), c, key)
				}
				next.ServeHTTP(w, r.WithContext(ctx)) // ctx: the grant, for rateltd.Settle
				return nil, nil
			}, rateltd.WithCost(cost), rateltd.WithPriority(opts.Priority), rateltd.WithTimeout(max(opts.Wait, time.Microsecond)),
				rateltd.WithTenant(tenant), rateltd.WithDecision(func(got rateltd.Decision) { d = &got }))
			if ran {
				var pe *rateltd.PanicError
				if errors.As(err, &pe) {
					panic(pe.Value) // net/http's own handling of a panicking handler
				}
				return
			}
			RefuseWith(w, r, c, key, err, d)
		})
	}, nil
}

// KeyOf makes the rateltd key group:id. An id that would not make a valid key (braces,
// control characters, too long) is replaced by a hash of it.
func KeyOf(group, id string) string {
	key := group + ":" + id
	if config.ValidateKey(key) != nil {
		sum := sha256.Sum256([]byte(id))
		key = group + ":sha256:" + hex.EncodeToString(sum[:16])
	}
	return key
}

// Refused is the body of a 429 answer.
type Refused struct {
	Error        string `json:"error"`
	RetryAfterMS int64  `json:"retry_after_ms"`
}

// Refuse answers a request that did not get its turn: 429 with Retry-After when the limit
// kept it out, 503 when the backend is unavailable, nothing when its caller has gone. The
// RateLimit headers and Retry-After of a 429 come from one Check.
func Refuse(w http.ResponseWriter, r *http.Request, c *rateltd.Client, key string, err error) {
	RefuseWith(w, r, c, key, err, nil)
}

// RefuseWith is Refuse with the Decision of the request's admission when it refused the
// request at once (see rateltd.WithDecision; nil otherwise): then a 429 costs no Redis call.
// A request whose cost no rate of its limit could ever admit (rateltd.ErrCostTooHigh) gets a
// 413, with the error's text; a bad key or cost, a 400.
func RefuseWith(w http.ResponseWriter, r *http.Request, c *rateltd.Client, key string, err error, d *rateltd.Decision) {
	switch {
	case errors.Is(err, rateltd.ErrQueueFull), errors.Is(err, rateltd.ErrWouldExceedDeadline),
		errors.Is(err, rateltd.ErrTimeout), errors.Is(err, rateltd.ErrEvicted):
		if d == nil {
			if got, cerr := c.Check(context.WithoutCancel(r.Context()), key); cerr == nil {
				d = &got
			}
		}
		retry := time.Second
		if d != nil {
			SetRateHeadersFrom(w.Header(), c, key, *d)
			if d.RetryAfter > 0 {
				retry = d.RetryAfter
			}
		}
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retry.Seconds())), 10))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(Refused{Error: err.Error(), RetryAfterMS: retry.Milliseconds()})
	case r.Context().Err() != nil:
	case errors.Is(err, rateltd.ErrCostTooHigh):
		writeError(w, http.StatusRequestEntityTooLarge, err)
	case errors.Is(err, rateltd.ErrInvalidKey), errors.Is(err, rateltd.ErrInvalidConfig):
		writeError(w, http.StatusBadRequest, err)
	default:
		writeError(w, http.StatusServiceUnavailable, err)
	}
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// SetRateHeaders sets RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (seconds until
// the window is entirely free) and their X-RateLimit-* equivalents for key, from a read-only
// Check. When the backend cannot answer, it sets nothing.
func SetRateHeaders(ctx context.Context, h http.Header, c *rateltd.Client, key string) {
	d, err := c.Check(ctx, key)
	if err != nil {
		return
	}
	SetRateHeadersFrom(h, c, key, d)
}

// SetRateHeadersFrom sets SetRateHeaders's headers from d, a Decision for key (the reply of
// Check, or of the request's admission: see rateltd.WithDecision), with no call of its own.
func SetRateHeadersFrom(h http.Header, c *rateltd.Client, key string, d rateltd.Decision) {
	l, err := c.LimitOf(key)
	if err != nil {
		return
	}
	reset := strconv.FormatInt(int64(math.Ceil(d.ResetAfter.Seconds())), 10)
	max := d.Limit
	if max == 0 {
		max = l.Max
	}
	for _, p := range []string{"RateLimit-", "X-RateLimit-"} {
		h.Set(p+"Limit", strconv.Itoa(max))
		h.Set(p+"Remaining", strconv.Itoa(d.Remaining))
		h.Set(p+"Reset", reset)
	}
}

// Header keys requests by the value of the named header (an API key, a tenant id). A request
// without it is answered 400.
func Header(name string) KeyFunc {
	return func(r *http.Request) (string, error) {
		v := r.Header.Get(name)
		if v == "" {
			return "", fmt.Errorf("missing header %s", name)
		}
		return v, nil
	}
}

// ClientIP keys requests by the client's IP address. Without trusted proxies it is the
// connection's peer. When the peer is a trusted proxy, X-Forwarded-For is read from the
// right, and the first address that is not a trusted proxy is the client: addresses further
// left were written by the client itself and are not believed.
func ClientIP(trusted ...netip.Prefix) KeyFunc {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) (string, error) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		peer, err := netip.ParseAddr(host)
		if err != nil {
			return "", fmt.Errorf("peer address %q: %v", r.RemoteAddr, err)
		}
		client := peer.Unmap()
		if isTrusted(client) {
			hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
			for i := len(hops) - 1; i >= 0; i-- {
				a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
				if err != nil {
					break // a malformed hop: trust nothing beyond it
				}
				client = a.Unmap()
				if !isTrusted(client) {
					break
				}
			}
		}
		return client.String(), nil
	}
}
