package httpapi

import (
	"fmt"
	"strings"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
)

// LimitJSON is a Limit as the API reads and writes it. Durations are Go duration strings
// ("1m", "500ms"). Units makes max count cost units (?cost= of acquire and jobs) rather than
// requests; Also holds the further rates (at most 4), each kept by the limit's algorithm.
// Concurrency caps how many of the key's requests and jobs run at once (0: no cap); alone,
// with max 0 and no window, the limit is a cap with no rate: {"concurrency": 10}. Shadow
// watches the limit without enforcing it (rateltd.Limit.Shadow): every request runs at once,
// and the status counts what the limit would have done. Adaptive makes the limit in force follow
// the upstream (rateltd.Limit.Adaptive). TenantWeights weighs the tenants' shares of the key's
// line (rateltd.Limit.TenantWeights: name to weight, 1 to 1000; a tenant not named weighs 1);
// MaxQueuePerTenant bounds what one tenant may have waiting (rateltd.Limit.MaxQueuePerTenant).
type LimitJSON struct {
	Algorithm    string     `json:"algorithm"`
	Max          int        `json:"max"`
	Window       string     `json:"window,omitempty"`
	Burst        int        `json:"burst"`
	Units        bool       `json:"units"`
	Also         []RateJSON `json:"also,omitempty"`
	Concurrency  int        `json:"concurrency,omitempty"`
	MaxQueue     int        `json:"max_queue,omitempty"`
	QueueTimeout string     `json:"queue_timeout,omitempty"`
	Overflow     string     `json:"overflow,omitempty"`
	Shadow       bool       `json:"shadow,omitempty"`
	Adaptive     bool       `json:"adaptive,omitempty"`

	TenantWeights     map[string]int `json:"tenant_weights,omitempty"`
	MaxQueuePerTenant int            `json:"max_queue_per_tenant,omitempty"`
}

// RateJSON is one further rate of a limit (Limit.Also): max per window, in requests or, with
// units, in cost units; burst for the token bucket only.
type RateJSON struct {
	Max    int    `json:"max"`
	Window string `json:"window"`
	Burst  int    `json:"burst,omitempty"`
	Units  bool   `json:"units"`
}

// LimitToJSON turns l into its JSON form.
func LimitToJSON(l rateltd.Limit) LimitJSON {
	j := LimitJSON{Algorithm: l.Algorithm.String(), Max: l.Max, Burst: l.Burst, Units: l.Units,
		Concurrency: l.Concurrency, MaxQueue: l.MaxQueue, Overflow: l.Overflow.String(), Shadow: l.Shadow,
		Adaptive: l.Adaptive, TenantWeights: l.TenantWeights, MaxQueuePerTenant: l.MaxQueuePerTenant}
	if l.Window != 0 { // a cap alone has no window
		j.Window = l.Window.String()
	}
	for _, r := range l.Also {
		j.Also = append(j.Also, RateJSON{Max: r.Max, Window: r.Window.String(), Burst: r.Burst, Units: r.Units})
	}
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
	l := rateltd.Limit{Algorithm: alg, Max: j.Max, Burst: j.Burst, Units: j.Units, Concurrency: j.Concurrency,
		MaxQueue: j.MaxQueue, Shadow: j.Shadow, Adaptive: j.Adaptive, TenantWeights: j.TenantWeights,
		MaxQueuePerTenant: j.MaxQueuePerTenant}
	if j.Window != "" { // absent: no window, which only a cap alone may have (Validate says so)
		if l.Window, err = parseDuration("window", j.Window); err != nil {
			return l, err
		}
	}
	if len(j.Also) > config.MaxAlso {
		return l, fmt.Errorf("%w: also: at most %d rates, got %d", rateltd.ErrInvalidConfig, config.MaxAlso, len(j.Also))
	}
	for i, r := range j.Also {
		w, err := parseDuration(fmt.Sprintf("also[%d].window", i), r.Window)
		if err != nil {
			return l, err
		}
		l.Also = append(l.Also, rateltd.Rate{Max: r.Max, Window: w, Burst: r.Burst, Units: r.Units})
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

// StatusJSON is a Status as the API, the command and the dashboard show it. Limit is the
// key's limit as configured; Effective the limit in force (rateltd.Status.Effective): the same,
// but for an adaptive key (limit "adaptive": true) whose upstream cut it, every rate's max (and
// burst) scaled down; Rates and Remaining count against Effective. Used and Remaining are the
// tightest rate's; Rates holds each rate, the main one first. Counters has,
// besides the counts of requests and jobs, "settled" (grants whose cost was settled after
// their call), "units_returned" and "units_over" (the cost units those settles gave back, and
// charged above the cost at the grant), and for a shadow limit "shadow_allowed",
// "shadow_queued" and "shadow_refused" (what the limit would have done with the requests it let
// run), "shadow_wait_ms" and "shadow_max_wait_ms" (the would-be waits of those it would have
// queued: their sum and the longest). InFlight is how many slots of the key's concurrency
// cap are held now; for a cap alone, Used and Remaining are the slots held and free, and Rates
// is empty.
type StatusJSON struct {
	Key              string           `json:"key"`
	Limit            LimitJSON        `json:"limit"`
	Effective        LimitJSON        `json:"effective"`
	Used             int              `json:"used"`
	Remaining        int              `json:"remaining"`
	Rates            []RateStatusJSON `json:"rates"`
	InFlight         int              `json:"in_flight"`
	Queued           int              `json:"queued"`
	QueuedByPriority map[string]int   `json:"queued_by_priority"`
	OldestWaitMS     int64            `json:"oldest_wait_ms"`
	Paused           bool             `json:"paused"`
	PausedUntil      *time.Time       `json:"paused_until,omitempty"`
	Unclaimed        int              `json:"unclaimed"`
	DeadLetters      int              `json:"dead_letters"`
	Jobs             int              `json:"jobs"`
	JobsRunning      int              `json:"jobs_running"`
	JobsScheduled    int              `json:"jobs_scheduled"`
	Tenants          []TenantJSON     `json:"tenants"`
	TenantsWaiting   int              `json:"tenants_waiting"`
	Counters         map[string]int64 `json:"counters"`
}

// TenantJSON is how many requests and jobs one tenant has waiting in a key's line.
type TenantJSON struct {
	Tenant  string `json:"tenant"`
	Waiting int    `json:"waiting"`
}

// RateStatusJSON is what one rate of a key's limit counts now: its max per window, in
// requests or (units) cost units, what is used of it and what remains. A settled overage may
// take used above max.
type RateStatusJSON struct {
	Max       int    `json:"max"`
	Window    string `json:"window"`
	Burst     int    `json:"burst,omitempty"`
	Units     bool   `json:"units"`
	Used      int64  `json:"used"`
	Remaining int64  `json:"remaining"`
}

// StatusToJSON turns st into its JSON form.
func StatusToJSON(st rateltd.Status) StatusJSON {
	j := StatusJSON{Key: st.Key, Limit: LimitToJSON(st.Limit), Effective: LimitToJSON(st.Effective), Used: st.Used, Remaining: st.Remaining,
		Rates: []RateStatusJSON{}, InFlight: st.InFlight, Queued: st.Queued, QueuedByPriority: map[string]int{},
		OldestWaitMS: st.OldestWait.Milliseconds(), Paused: st.Paused, Unclaimed: st.Unclaimed,
		DeadLetters: st.DeadLetters, Jobs: st.Jobs, JobsRunning: st.JobsRunning,
		JobsScheduled: st.JobsScheduled, Tenants: []TenantJSON{}, TenantsWaiting: st.TenantsWaiting}
	for _, t := range st.Tenants {
		j.Tenants = append(j.Tenants, TenantJSON{Tenant: t.Tenant, Waiting: t.Waiting})
	}
	for _, r := range st.Rates {
		j.Rates = append(j.Rates, RateStatusJSON{Max: r.Rate.Max, Window: r.Rate.Window.String(), Burst: r.Rate.Burst,
			Units: r.Rate.Units, Used: r.Used, Remaining: r.Remaining})
	}
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
		"retried": c.Retried, "reclaimed": c.Reclaimed, "dead": c.Dead,
		"settled": c.Units.Settled, "units_returned": c.Units.Returned, "units_over": c.Units.Over,
		"shadow_allowed": c.Shadow.Allowed, "shadow_queued": c.Shadow.Queued, "shadow_refused": c.Shadow.Refused,
		"shadow_wait_ms": c.Shadow.Wait.Milliseconds(), "shadow_max_wait_ms": c.Shadow.MaxWait.Milliseconds()}
	return j
}
