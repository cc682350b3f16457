package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rateltd/rateltd"
)

// Scheduled and cancelled durable jobs over HTTP:
//
//	POST   /v1/jobs/{key}?handler=NAME&delay=1h (or &run_at=2030-01-02T15:04:05Z, RFC 3339)
//	       the job joins its line then (see POST /v1/jobs/{key}).
//	GET    /v1/keys/{key}/scheduled[?n=100]
//	       200 {"key", "jobs": [{"id", "handler", "priority", "run_at", "payload_bytes"}]}, the
//	       earliest due first (n from 1 to 1000).
//	DELETE /v1/jobs/{key}/{uuid}
//	       cancels the job (Client.CancelJob): 200 {"id", "state": "cancelled"}; a running job's
//	       handler is asked to stop. 404 when no such job waits or runs.

// ScheduledJSON is a scheduled job as the API lists it.
type ScheduledJSON struct {
	ID           string    `json:"id"`
	Handler      string    `json:"handler"`
	Priority     string    `json:"priority"`
	RunAt        time.Time `json:"run_at"`
	PayloadBytes int       `json:"payload_bytes"`
}

// scheduleParam reads ?delay= or ?run_at=: the option that schedules the job, nil when neither.
func scheduleParam(q url.Values) (rateltd.Option, error) {
	delay, at := q.Get("delay"), q.Get("run_at")
	switch {
	case delay != "" && at != "":
		return nil, errors.New("delay and run_at: give one of them")
	case delay != "":
		d, err := time.ParseDuration(delay)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("delay %q: want a duration such as 1h", delay)
		}
		return rateltd.WithDelay(d), nil
	case at != "":
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return nil, fmt.Errorf("run_at %q: want an RFC 3339 time such as 2030-01-02T15:04:05Z", at)
		}
		return rateltd.WithRunAt(t), nil
	}
	return nil, nil
}

func (a *API) scheduled(w http.ResponseWriter, r *http.Request, key string) {
	n := 100
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("n %q: want 1 to 1000", s))
			return
		}
		n = v
	}
	sjs, err := a.c.ScheduledJobs(r.Context(), key, n)
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]ScheduledJSON, len(sjs))
	for i, s := range sjs {
		out[i] = ScheduledJSON{ID: s.ID, Handler: s.Handler, Priority: s.Priority.String(), RunAt: s.RunAt.UTC(),
			PayloadBytes: len(s.Payload)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "jobs": out})
}

func (a *API) cancelJob(w http.ResponseWriter, r *http.Request, key string) {
	id := key + "/" + r.PathValue("uuid")
	err := a.c.CancelJob(r.Context(), id)
	switch {
	case errors.Is(err, rateltd.ErrJobNotFound), errors.Is(err, rateltd.ErrInvalidKey):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		fail(w, err)
	default:
		writeJSON(w, http.StatusOK, JobJSON{ID: id, State: "cancelled"})
	}
}
