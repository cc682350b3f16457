// Package httpapi serves rateltd over HTTP: JSON routes to inspect and steer keys, an acquire
// route for callers in other languages that waits in the same line as Client.Request, health
// and readiness, and Prometheus metrics. NewHandler returns the whole API as one http.Handler.
//
//	GET  /v1/keys?cursor=&limit=100      keys with state, with their status, a page at a time
//	GET  /v1/keys/{key}                  a key's status
//	POST /v1/keys/{key}/pause            pause (a key, a group, or "*"); admin
//	POST /v1/keys/{key}/resume           resume; admin
//	POST /v1/keys/{key}/reset            reset; admin
//	GET  /v1/keys/{key}/limit            the key's limit
//	PUT  /v1/keys/{key}/limit            set it at run time, every node; admin
//	POST /v1/acquire/{key}?wait=5s&priority=high&cost=N&tenant=T
//	                                     200 when granted, with a settle token when the limit
//	                                     counts cost units; 429 with Retry-After when the wait
//	                                     would exceed wait or the line is full (see
//	                                     middleware.Refused); 413 when cost is more than the
//	                                     limit could ever admit (rateltd.ErrCostTooHigh)
//	POST /v1/settle/{key}/{token}?cost=N what the acquired call really cost (see settle.go)
//	POST /v1/jobs/{key}?handler=NAME     enqueue a durable job, the body its payload: 201 {"id"};
//	                                     422 when no live node runs NAME, unless
//	                                     &allow_unknown=1; &cost=N, &tenant=T as for acquire
//	GET  /v1/jobs/{key}/{uuid}?wait=10s  its result: 200 done/failed/expired/evicted, 202 pending
//	GET  /healthz, /readyz, /metrics
//
// Answers about a key carry RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (seconds)
// and their X-RateLimit-* equivalents. Errors are JSON {"error": "..."}; bad input is a 400.
// Admin routes require "Authorization: Bearer <token>" when Options.AdminToken is set; the
// acquire, jobs and stream routes when Options.ClientToken is set (see Options). A missing or
// wrong token gets a 401 with WWW-Authenticate: Bearer. The settle route is guarded as
// acquire is. A request carrying its caller's trace context (W3C traceparent) continues that
// trace: the spans of acquire (rateltd.request) and of a job's enqueue (rateltd.enqueue) are
// children of the caller's span (see middleware.ContinueTrace). ?tenant= says whose request or
// job it is within its key (rateltd.WithTenant): tenants waiting share the key's line by the
// limit's tenant_weights; a tenant that rateltd.WithTenant would refuse is a 400.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/middleware"
)

// Options configure the handler. The zero value is usable.
type Options struct {
	// AdminToken, when set, is required as a bearer token by the routes that change state
	// (pause, resume, reset, PUT limit). Defaults to "" (no token; see ClientToken).
	AdminToken string
	// ClientToken, when set, is required as a bearer token by /v1/acquire, /v1/jobs and
	// /v1/stream; the admin token serves there too. When AdminToken is not set, the admin
	// routes require this one. Defaults to "" (those routes are open).
	ClientToken string
	// Gatherer serves /metrics. Defaults to nil: /metrics answers 404.
	Gatherer prometheus.Gatherer
	// MaxWait bounds the wait parameter of /v1/acquire. Defaults to 1 minute.
	MaxWait time.Duration
	// MaxBody bounds request bodies, in bytes. Defaults to 64 KiB.
	MaxBody int64
	// MaxPayload bounds the body of POST /v1/jobs (a durable job's payload), in bytes; the
	// Client's Config.MaxPayload applies too. Defaults to 1 MiB.
	MaxPayload int64
	// SettleTTL is how long the grant of an /v1/acquire may be settled (POST /v1/settle)
	// after it was made. Defaults to 10 minutes.
	SettleTTL time.Duration
	// MaxSettles bounds the grants kept for settling; past it the oldest is dropped (its grant
	// keeps the cost it was admitted with). Defaults to 100,000.
	MaxSettles int
}

// API serves the routes. Create it with NewHandler.
type API struct {
	c       *rateltd.Client
	opts    Options
	mux     *http.ServeMux
	settles *settles
}

// NewHandler returns the API over c.
func NewHandler(c *rateltd.Client, opts Options) *API {
	if opts.MaxWait <= 0 {
		opts.MaxWait = time.Minute
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 64 << 10
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = config.DefaultMaxPayload
	}
	if opts.SettleTTL <= 0 {
		opts.SettleTTL = 10 * time.Minute
	}
	if opts.MaxSettles <= 0 {
		opts.MaxSettles = 100_000
	}
	a := &API{c: c, opts: opts, mux: http.NewServeMux(), settles: newSettles(opts.SettleTTL, opts.MaxSettles)}
	// Reading keys' state needs the client token when one is set, as the stream of every
	// key's state does.
	a.mux.HandleFunc("GET /v1/keys", a.client(a.listKeys))
	a.mux.HandleFunc("GET /v1/keys/{key}", a.client(a.withKey(true, a.status)))
	a.mux.HandleFunc("POST /v1/keys/{key}/pause", a.admin(a.withKey(true, a.pause)))
	a.mux.HandleFunc("POST /v1/keys/{key}/resume", a.admin(a.withKey(true, a.resume)))
	a.mux.HandleFunc("POST /v1/keys/{key}/reset", a.admin(a.withKey(true, a.reset)))
	a.mux.HandleFunc("GET /v1/keys/{key}/limit", a.client(a.withKey(true, a.getLimit)))
	a.mux.HandleFunc("PUT /v1/keys/{key}/limit", a.admin(a.withKey(true, a.putLimit)))
	a.mux.HandleFunc("POST /v1/acquire/{key}", a.client(a.withKey(false, a.acquire))) // sets them after its outcome
	a.mux.HandleFunc("POST /v1/settle/{key}/{token}", a.client(a.withKey(false, a.settle)))
	a.mux.HandleFunc("POST /v1/jobs/{key}", a.client(a.withKey(false, a.enqueue)))
	a.mux.HandleFunc("GET /v1/jobs/{key}/{uuid}", a.client(a.withKey(false, a.job)))
	a.mux.HandleFunc("DELETE /v1/jobs/{key}/{uuid}", a.client(a.withKey(false, a.cancelJob)))
	a.mux.HandleFunc("GET /v1/keys/{key}/scheduled", a.client(a.withKey(true, a.scheduled)))
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("GET /readyz", a.ready)
	if opts.Gatherer != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
	return a
}

// Handle adds a route to the API's mux (the dashboard uses it).
func (a *API) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// ServeHTTP serves r, continuing its caller's trace (middleware.ContinueTrace).
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mux.ServeHTTP(w, middleware.ContinueTrace(r))
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, Error{Error: err.Error()})
}

// fail answers err with the status code its kind calls for.
func fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, rateltd.ErrInvalidKey), errors.Is(err, rateltd.ErrInvalidConfig):
		writeError(w, http.StatusBadRequest, err)
	case errors.Is(err, rateltd.ErrUnavailable), errors.Is(err, rateltd.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

type keyHandler func(w http.ResponseWriter, r *http.Request, key string)

// withKey validates the path's key ("*" is a name only pause and resume take) and, with
// headers, sets the rate-limit headers of the answer.
func (a *API) withKey(headers bool, h keyHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if key != "*" || !strings.HasSuffix(r.URL.Path, "/pause") && !strings.HasSuffix(r.URL.Path, "/resume") {
			if err := config.ValidateKey(key); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			if headers {
				middleware.SetRateHeaders(r.Context(), w.Header(), a.c, key)
			}
		}
		h(w, r, key)
	}
}

func (a *API) status(w http.ResponseWriter, r *http.Request, key string) {
	st, err := a.c.Status(r.Context(), key)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, StatusToJSON(st))
}

// KeysPage is the answer of GET /v1/keys.
type KeysPage struct {
	Keys []StatusJSON `json:"keys"`
	Next string       `json:"next,omitempty"`
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want 1 to 1000", s))
			return
		}
		limit = n
	}
	keys, next, err := a.c.ListKeys(r.Context(), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		fail(w, err)
		return
	}
	page := KeysPage{Keys: []StatusJSON{}, Next: next}
	for _, k := range keys {
		st, err := a.c.Status(r.Context(), k)
		if err != nil {
			fail(w, err)
			return
		}
		page.Keys = append(page.Keys, StatusToJSON(st))
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *API) pause(w http.ResponseWriter, r *http.Request, name string) {
	if err := a.c.Pause(r.Context(), name); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "paused": true})
}

func (a *API) resume(w http.ResponseWriter, r *http.Request, name string) {
	if err := a.c.Resume(r.Context(), name); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "paused": false})
}

func (a *API) reset(w http.ResponseWriter, r *http.Request, key string) {
	if err := a.c.Reset(r.Context(), key); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "reset": true})
}

func (a *API) getLimit(w http.ResponseWriter, r *http.Request, key string) {
	st, err := a.c.Status(r.Context(), key)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, LimitToJSON(st.Limit))
}

func (a *API) putLimit(w http.ResponseWriter, r *http.Request, key string) {
	r.Body = http.MaxBytesReader(w, r.Body, a.opts.MaxBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var j LimitJSON
	if err := dec.Decode(&j); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusBadRequest, fmt.Errorf("body over %d bytes", tooBig.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: %v", err))
		return
	}
	l, err := j.Limit()
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if err := a.c.SetLimit(r.Context(), key, l); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, LimitToJSON(l.WithDefaults()))
}

// Acquired is the answer of a granted /v1/acquire. Cost is the grant's cost (?cost=, or 1);
// Settle, on a key whose limit counts cost units, the token that settles it (POST
// /v1/settle/{key}/{token}?cost=N), for Options.SettleTTL.
type Acquired struct {
	Key      string `json:"key"`
	Granted  bool   `json:"granted"`
	WaitedMS int64  `json:"waited_ms"`
	Cost     int    `json:"cost"`
	Settle   string `json:"settle,omitempty"`
}

func (a *API) acquire(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	wait, err := a.waitParam(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	prio, err := priorityParam(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	cost, err := costParam(q, 1)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	cost = max(cost, 1) // absent: 1
	tenant, err := tenantParam(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	start := time.Now()
	// A wait of zero answers at once: the request may only start now.
	// The headers come from the admission's reply when it decided at once (one Redis command);
	// a request that waited in line reads them after its grant. On a limit that counts units,
	// the ctx of fn holds the grant to settle.
	var d *rateltd.Decision
	var granted context.Context
	_, err = a.c.Request(r.Context(), key, func(ctx context.Context) (any, error) { granted = ctx; return nil, nil },
		rateltd.WithCost(cost), rateltd.WithPriority(prio), rateltd.WithTimeout(max(wait, time.Microsecond)),
		rateltd.WithTenant(tenant), rateltd.WithDecision(func(got rateltd.Decision) { d = &got }))
	if err != nil {
		middleware.RefuseWith(w, r, a.c, key, err, d) // 429 with Retry-After, or 400, or 503
		return
	}
	if d != nil {
		middleware.SetRateHeadersFrom(w.Header(), a.c, key, *d)
	} else {
		middleware.SetRateHeaders(r.Context(), w.Header(), a.c, key)
	}
	ans := Acquired{Key: key, Granted: true, WaitedMS: time.Since(start).Milliseconds(), Cost: cost}
	if l, err := a.c.LimitOf(key); err == nil && countsUnits(l) {
		ans.Settle = a.settles.add(key, granted)
	}
	writeJSON(w, http.StatusOK, ans)
}

// waitParam reads ?wait=, how long to wait: 0 to Options.MaxWait, 0 when absent.
func (a *API) waitParam(q url.Values) (time.Duration, error) {
	s := q.Get("wait")
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > a.opts.MaxWait {
		return 0, fmt.Errorf("wait %q: want a duration from 0 to %v, such as 5s", s, a.opts.MaxWait)
	}
	return d, nil
}

// priorityParam reads ?priority=, PriorityNormal when absent.
func priorityParam(q url.Values) (rateltd.Priority, error) {
	if s := q.Get("priority"); s != "" {
		return config.ParsePriority(s)
	}
	return rateltd.PriorityNormal, nil
}

// tenantParam reads ?tenant=, "" (no tenant) when absent.
func tenantParam(q url.Values) (string, error) {
	t := q.Get("tenant")
	if t != "" && !config.ValidTenant(t) {
		return "", fmt.Errorf("%w: tenant %q: 1 to %d bytes, no control characters, ',', '=', '{' or '}'", rateltd.ErrInvalidConfig, t, config.MaxTenantLen)
	}
	return t, nil
}

func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	if err := a.c.Ping(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
