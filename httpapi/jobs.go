package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/middleware"
)

// Durable jobs over HTTP: any program can enqueue work for the handlers that Go nodes
// registered, and read its result.
//
//	POST /v1/jobs/{key}?handler=NAME[&priority=high][&timeout=1m][&retries=3][&name=order-42]
//	     [&cost=N][&tenant=T][&allow_unknown=1][&delay=1h | &run_at=RFC3339] (see schedule.go)
//	     body: the payload. 201 {"id": "<key>/<uuid>"}; 413 over the payload limit, or for a
//	     cost more than the key's limit could ever admit (rateltd.ErrCostTooHigh);
//	     422 when no live node runs the handler (unless allow_unknown=1: then the job waits
//	     for one); 429 with Retry-After when the line is full or too long.
//	GET  /v1/jobs/{key}/{uuid}?wait=10s
//	     200 {"id", "state": "done", "result": base64} or "failed" (with "error"), "expired",
//	     "evicted", "cancelled"; 202 {"state": "pending"} when it has not ended within wait;
//	     404 unknown.

// JobJSON is a durable job's state as the API shows it.
type JobJSON struct {
	ID     string `json:"id"`
	State  string `json:"state"` // pending, done, failed, expired, evicted, cancelled
	Result []byte `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (a *API) enqueue(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	handler := q.Get("handler")
	if handler == "" {
		writeError(w, http.StatusBadRequest, errors.New("handler: missing (?handler=NAME)"))
		return
	}
	prio, err := priorityParam(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	opts := []rateltd.Option{rateltd.WithJobName(q.Get("name")), rateltd.WithPriority(prio)}
	cost, err := costParam(q, 1)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if cost > 0 {
		opts = append(opts, rateltd.WithCost(cost))
	}
	tenant, err := tenantParam(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	opts = append(opts, rateltd.WithTenant(tenant))
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("timeout %q: want a positive duration such as 1m", s))
			return
		}
		opts = append(opts, rateltd.WithTimeout(d))
	}
	sched, err := scheduleParam(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if sched != nil {
		opts = append(opts, sched)
	}
	if s := q.Get("retries"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("retries %q: want 0 to 1000", s))
			return
		}
		opts = append(opts, rateltd.WithMaxRetries(n))
	}
	if code, err := a.handlerRuns(r, handler); err != nil {
		writeError(w, code, err)
		return
	}
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxPayload))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: body over %d bytes", rateltd.ErrPayloadTooLarge, tooBig.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: %v", err))
		return
	}
	id, err := a.c.Enqueue(r.Context(), key, handler, payload, opts...)
	switch {
	case errors.Is(err, rateltd.ErrPayloadTooLarge), errors.Is(err, rateltd.ErrCostTooHigh):
		writeError(w, http.StatusRequestEntityTooLarge, err)
	case errors.Is(err, rateltd.ErrQueueFull), errors.Is(err, rateltd.ErrWouldExceedDeadline):
		middleware.Refuse(w, r, a.c, key, err)
	case err != nil:
		fail(w, err)
	default:
		writeJSON(w, http.StatusCreated, JobJSON{ID: id, State: "pending"})
	}
}

// handlerRuns refuses a job for a handler that no live node runs, with 422, unless the
// request says ?allow_unknown=1: such a job would only wait in line, and a caller who may
// enqueue must not fill lines with work for names nobody registered.
func (a *API) handlerRuns(r *http.Request, handler string) (int, error) {
	if s := r.URL.Query().Get("allow_unknown"); s != "" {
		allow, err := strconv.ParseBool(s)
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("allow_unknown %q: want 1 or 0", s)
		}
		if allow {
			return 0, nil
		}
	}
	live, err := a.c.HandlerLive(r.Context(), handler)
	switch {
	case err != nil:
		return http.StatusServiceUnavailable, err
	case !live:
		return http.StatusUnprocessableEntity, fmt.Errorf("handler %q: no live node runs it (a Go node registers it with Client.Handle); "+
			"add allow_unknown=1 to queue the job until one does", handler)
	}
	return 0, nil
}

func (a *API) job(w http.ResponseWriter, r *http.Request, key string) {
	id := key + "/" + r.PathValue("uuid")
	wait, err := a.waitParam(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	// A wait of zero still gives the one read its round trip.
	ctx, cancel := context.WithTimeout(r.Context(), max(wait, 50*time.Millisecond))
	defer cancel()
	res, err := a.c.Wait(ctx, id)
	j := JobJSON{ID: id, State: "done", Result: res}
	var je *rateltd.JobError
	switch {
	case err == nil:
	case errors.As(err, &je):
		j.State, j.Error = "failed", je.Message
	case errors.Is(err, rateltd.ErrTimeout):
		j.State = "expired"
	case errors.Is(err, rateltd.ErrEvicted):
		j.State = "evicted"
	case errors.Is(err, rateltd.ErrCancelled):
		j.State = "cancelled"
	case errors.Is(err, rateltd.ErrJobNotFound):
		writeError(w, http.StatusNotFound, err)
		return
	case errors.Is(err, rateltd.ErrUnavailable):
		fail(w, err)
		return
	case ctx.Err() != nil && r.Context().Err() == nil:
		writeJSON(w, http.StatusAccepted, JobJSON{ID: id, State: "pending"})
		return
	default:
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}
