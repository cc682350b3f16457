package httpapi

import (
	"fmt"
	"strings"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
)

// LimitJSON is a Limit as the API reads and writes it. Durations are Go duration strings
// ("1m", "500ms").
type LimitJSON struct {
	Algorithm    string `json:"algorithm"`
	Max          int    `json:"max"`
	Window       string `json:"window"`
	Burst        int    `json:"burst"`
	MaxQueue     int    `json:"max_queue,omitempty"`
	QueueTimeout string `json:"queue_timeout,omitempty"`
	Overflow     string `json:"overflow,omitempty"`
}

// LimitToJSON turns l into its JSON form.
func LimitToJSON(l rateltd.Limit) LimitJSON {
	j := LimitJSON{Algorithm: l.Algorithm.String(), Max: l.Max, Window: l.Window.String(), Burst: l.Burst,
		MaxQueue: l.MaxQueue, Overflow: l.Overflow.String()}
	if l.QueueTimeout != 0 {
		j.QueueTimeout = l.QueueTimeout.String()
	}
	return j
}

// Limit parses j; errors name the field.
func (j LimitJSON) Limit() (rateltd.Limit, error) {
	alg, err := config.ParseAlgorithm(j.Algorithm)
	if err != nil {
		return rateltd.Limit{}, err
	}
	l := rateltd.Limit{Algorithm: alg, Max: j.Max, Burst: j.Burst, MaxQueue: j.MaxQueue}
	if l.Window, err = parseDuration("window", j.Window); err != nil {
		return l, err
	}
	if j.QueueTimeout != "" {
		if l.QueueTimeout, err = parseDuration("queue_timeout", j.QueueTimeout); err != nil {
			return l, err
		}
	}
	switch strings.ToLower(j.Overflow) {
	case "", "reject":
	case "drop_oldest", "drop-oldest", "dropoldest":
		l.Overflow = rateltd.DropOldest
	default:
		return l, fmt.Errorf("%w: overflow %q: want reject or drop_oldest", rateltd.ErrInvalidConfig, j.Overflow)
	}
	return l, l.ValidateAs("limit")
}

func parseDuration(field, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q: not a duration such as 1m or 500ms", rateltd.ErrInvalidConfig, field, s)
	}
	return d, nil
}

// StatusJSON is a Status as the API, the command and the dashboard show it.
type StatusJSON struct {
	Key              string           `json:"key"`
	Limit            LimitJSON        `json:"limit"`
	Used             int              `json:"used"`
	Remaining        int              `json:"remaining"`
	Queued           int              `json:"queued"`
	QueuedByPriority map[string]int   `json:"queued_by_priority"`
	OldestWaitMS     int64            `json:"oldest_wait_ms"`
	Paused           bool             `json:"paused"`
	PausedUntil      *time.Time       `json:"paused_until,omitempty"`
	Unclaimed        int              `json:"unclaimed"`
	DeadLetters      int              `json:"dead_letters"`
	Jobs             int              `json:"jobs"`
	JobsRunning      int              `json:"jobs_running"`
	Counters         map[string]int64 `json:"counters"`
}

// StatusToJSON turns st into its JSON form.
func StatusToJSON(st rateltd.Status) StatusJSON {
	j := StatusJSON{Key: st.Key, Limit: LimitToJSON(st.Limit), Used: st.Used, Remaining: st.Remaining,
		Queued: st.Queued, QueuedByPriority: map[string]int{}, OldestWaitMS: st.OldestWait.Milliseconds(),
		Paused: st.Paused, Unclaimed: st.Unclaimed, DeadLetters: st.DeadLetters,
		Jobs: st.Jobs, JobsRunning: st.JobsRunning}
	for p, n := range st.QueuedByPriority {
		j.QueuedByPriority[p.String()] = n
	}
	if st.Paused && !st.PausedUntil.IsZero() {
		t := st.PausedUntil.UTC()
		j.PausedUntil = &t
	}
	c := st.Counters
	j.Counters = map[string]int64{"admitted": c.Admitted, "queued": c.Queued, "granted": c.Granted,
		"expired": c.Expired, "rejected": c.Rejected, "evicted": c.Evicted, "cancelled": c.Cancelled,
		"refunded": c.Refunded, "corrupt": c.Corrupt, "abandoned": c.Abandoned, "succeeded": c.Succeeded, "failed": c.Failed,
		"retried": c.Retried, "reclaimed": c.Reclaimed, "dead": c.Dead}
	return j
}
