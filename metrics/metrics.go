// Package metrics exposes rateltd to Prometheus: counters of request outcomes and histograms of
// queue wait and fn duration, fed by the Client as its Observer (and of durable job runs and
// handler duration, as its JobObserver), counters of cost units granted and settled (as its
// SettleObserver too), and gauges of queue depth, pause, tenants waiting, the slots of
// concurrency caps in flight and what shadow limits would have done, read from the backend at each scrape. Every
// series is named rateltd_… and labelled by
// limit group (the text of a key before its first ':'), never by key, so cardinality stays
// bounded; groups beyond Options.MaxGroups share the label "other".
//
//	m := metrics.New(metrics.Options{})
//	rl, err := rateltd.New(rateltd.Config{Redis: rdb, Observer: m})
//	m.Watch(rl)
//	prometheus.MustRegister(m) // or a registry of your own
//
// Counters and histograms count what this process saw; the gauges are the shared state, the
// same from every process.
//
// Cost units: rateltd_units_granted_total counts the cost (rateltd.WithCost, 1 by default) of
// every request whose fn ran and of every run of a durable job;
// rateltd_units_settled_total, what rateltd.Settle said those grants really cost, and
// rateltd_units_returned_total and rateltd_units_over_total what the settles gave back to the
// window or charged above the grant. What the rates that count units were charged in all is
// granted - returned + over. Settles are counted from events as they happen, in the process
// that settled, as the other counters are; the Status counters of a key (Counters.Units) are
// cluster-wide but expire with Config.StatsTTL, so they would make neither a counter nor a
// per-process figure.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
)

// Options tune the collector. The zero value is usable.
type Options struct {
	// MaxGroups bounds the distinct group labels; later groups are counted as "other".
	// Defaults to 100.
	MaxGroups int
	// WaitBuckets and RunBuckets are the histogram buckets, in seconds. Default to
	// prometheus.ExponentialBuckets(0.001, 2, 16): 1 ms to ~33 s.
	WaitBuckets, RunBuckets []float64
	// ScrapeTimeout bounds the backend reads of one scrape. Defaults to 5s.
	ScrapeTimeout time.Duration
	// MaxKeys bounds the keys whose state one scrape reads for the gauges. Defaults to 1000.
	MaxKeys int
}

// OtherGroup is the label of the groups beyond Options.MaxGroups.
const OtherGroup = "other"

// Metrics is a prometheus.Collector and a rateltd.Observer. Safe for concurrent use.
type Metrics struct {
	opts     Options
	counters map[string]*prometheus.CounterVec
	wait     *prometheus.HistogramVec
	run      *prometheus.HistogramVec
	jobs     *prometheus.CounterVec
	jobRun   *prometheus.HistogramVec
	units    map[string]*prometheus.CounterVec // by unitHelp's names
	depth    *prometheus.Desc
	paused   *prometheus.Desc
	inFlight *prometheus.Desc
	tenants  *prometheus.Desc
	shadow   shadowDescs
	errors   prometheus.Counter

	mu sync.Mutex
	// groups are the group labels handed out so far; keys, the keys seen lately (with when),
	// whose state the gauges read; clients, the Clients to read it through. Guarded by mu.
	groups  map[string]struct{}
	keys    map[string]time.Time
	clients []*rateltd.Client
}

var (
	_ prometheus.Collector   = (*Metrics)(nil)
	_ rateltd.Observer       = (*Metrics)(nil)
	_ rateltd.JobObserver    = (*Metrics)(nil)
	_ rateltd.SettleObserver = (*Metrics)(nil)
)

// The counters of cost units, by the name after "rateltd_units_" and before "_total".
var unitHelp = map[string]string{
	"granted":  "Cost units granted (WithCost, or 1): requests whose fn ran, and each run of a durable job.",
	"settled":  "Cost units that settled grants really cost (rateltd.Settle).",
	"returned": "Cost units that settles gave back (a grant settled below its cost).",
	"over":     "Cost units that settles charged above their grant's cost.",
}

// The counters, by the name after "rateltd_" and before "_total".
var counterHelp = map[string]string{
	"admitted":    "Requests whose fn ran at once, without waiting.",
	"queued":      "Requests that waited in line (then granted, expired, evicted or cancelled).",
	"granted":     "Requests whose fn ran after waiting in line.",
	"expired":     "Requests that waited until their deadline (ErrTimeout).",
	"rejected":    "Requests refused on arrival: line full or deadline out of reach.",
	"evicted":     "Requests dropped from the line (DropOldest or Reset).",
	"cancelled":   "Requests whose caller gave up while they waited.",
	"failed":      "Requests whose fn returned an error or panicked.",
	"succeeded":   "Requests whose fn returned no error.",
	"unavailable": "Requests that failed because the backend could not be reached.",
}

// New returns a collector; register it and pass it as Config.Observer.
func New(opts Options) *Metrics {
	if opts.MaxGroups <= 0 {
		opts.MaxGroups = 100
	}
	def := prometheus.ExponentialBuckets(0.001, 2, 16)
	if opts.WaitBuckets == nil {
		opts.WaitBuckets = def
	}
	if opts.RunBuckets == nil {
		opts.RunBuckets = def
	}
	if opts.ScrapeTimeout <= 0 {
		opts.ScrapeTimeout = 5 * time.Second
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 1000
	}
	m := &Metrics{
		opts:     opts,
		counters: map[string]*prometheus.CounterVec{},
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rateltd_queue_wait_seconds",
			Help: "Time from a request's arrival to its fn's start, or to its end when fn did not run.", Buckets: opts.WaitBuckets}, []string{"group"}),
		run: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rateltd_fn_duration_seconds",
			Help: "How long fn ran.", Buckets: opts.RunBuckets}, []string{"group"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rateltd_job_runs_total",
			Help: "Runs of durable jobs on this process, by how they ended: succeeded, retried, dead, given_back, lost, cancelled."},
			[]string{"group", "outcome"}),
		jobRun: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rateltd_job_duration_seconds",
			Help: "How long durable jobs' handlers ran.", Buckets: opts.RunBuckets}, []string{"group"}),
		depth: prometheus.NewDesc("rateltd_queue_depth", "Requests waiting in line, all nodes, by priority.",
			[]string{"group", "priority"}, nil),
		paused: prometheus.NewDesc("rateltd_paused", "Keys of the group that are paused (by key, group or everything).",
			[]string{"group"}, nil),
		inFlight: prometheus.NewDesc("rateltd_in_flight",
			"Slots of the group's concurrency caps (Limit.Concurrency) held now, all nodes: its capped keys' requests and jobs running. Only groups with a capped key in the scrape.",
			[]string{"group"}, nil),
		tenants: prometheus.NewDesc("rateltd_tenants_waiting",
			"Tenants (rateltd.WithTenant) with requests or jobs waiting in the lines of the group's keys, all nodes, added up over its keys (Status.TenantsWaiting: those of no tenant waiting beside tenants count as one; a tenant waiting in two keys counts twice).",
			[]string{"group"}, nil),
		shadow: newShadowDescs(),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "rateltd_scrape_errors_total",
			Help: "Backend reads for the gauges that failed."}),
		units:  map[string]*prometheus.CounterVec{},
		groups: map[string]struct{}{},
		keys:   map[string]time.Time{},
	}
	for name, help := range counterHelp {
		m.counters[name] = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rateltd_" + name + "_total", Help: help}, []string{"group"})
	}
	for name, help := range unitHelp {
		m.units[name] = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rateltd_units_" + name + "_total", Help: help}, []string{"group"})
	}
	return m
}

// Watch makes the gauges read the shared state through c: the keys with a line now and the
// keys this collector has seen requests for lately. One Client is enough per backend.
func (m *Metrics) Watch(c *rateltd.Client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clients = append(m.clients, c)
}

// group returns key's group label, "other" once MaxGroups are in use.
func (m *Metrics) group(key string) string {
	g := config.Group(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[g]; !ok {
		if len(m.groups) >= m.opts.MaxGroups {
			return OtherGroup
		}
		m.groups[g] = struct{}{}
	}
	return g
}

// keyTTL is how long a key stays in the gauges' reading after its last request.
const keyTTL = 10 * time.Minute

// ObserveRequest counts one ended request; the Client calls it.
func (m *Metrics) ObserveRequest(e rateltd.RequestEvent) {
	g := m.group(e.Key)
	m.mu.Lock()
	if _, ok := m.keys[e.Key]; ok || len(m.keys) < m.opts.MaxKeys {
		m.keys[e.Key] = time.Now()
	}
	m.mu.Unlock()
	inc := func(name string) { m.counters[name].WithLabelValues(g).Inc() }
	switch e.Outcome {
	case rateltd.OutcomeSucceeded, rateltd.OutcomeFailed:
		if e.Queued {
			inc("queued")
			inc("granted")
		} else {
			inc("admitted")
		}
		if e.Outcome == rateltd.OutcomeSucceeded {
			inc("succeeded")
		} else {
			inc("failed")
		}
		m.units["granted"].WithLabelValues(g).Add(float64(max(1, e.Cost)))
		m.run.WithLabelValues(g).Observe(e.Run.Seconds())
	case rateltd.OutcomeRejected:
		inc("rejected")
	case rateltd.OutcomeExpired, rateltd.OutcomeEvicted, rateltd.OutcomeCancelled:
		inc("queued")
		inc(e.Outcome.String())
	case rateltd.OutcomeUnavailable:
		inc("unavailable")
	}
	m.wait.WithLabelValues(g).Observe(e.Wait.Seconds())
}

// ObserveJob counts one ended run of a durable job; the Client calls it.
func (m *Metrics) ObserveJob(e rateltd.JobEvent) {
	g := m.group(e.Key)
	m.jobs.WithLabelValues(g, e.Outcome.String()).Inc()
	m.jobRun.WithLabelValues(g).Observe(e.Duration.Seconds())
	m.units["granted"].WithLabelValues(g).Add(float64(max(1, e.Cost)))
}

// ObserveSettle counts the cost units of one grant settled; the Client calls it.
func (m *Metrics) ObserveSettle(e rateltd.SettleEvent) {
	g := m.group(e.Key)
	m.units["settled"].WithLabelValues(g).Add(float64(e.Actual))
	if e.Actual < e.Cost {
		m.units["returned"].WithLabelValues(g).Add(float64(e.Cost - e.Actual))
	} else if e.Actual > e.Cost {
		m.units["over"].WithLabelValues(g).Add(float64(e.Actual - e.Cost))
	}
}

// Describe sends the descriptors of every series.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.counters {
		c.Describe(ch)
	}
	for _, c := range m.units {
		c.Describe(ch)
	}
	m.wait.Describe(ch)
	m.run.Describe(ch)
	m.jobs.Describe(ch)
	m.jobRun.Describe(ch)
	m.errors.Describe(ch)
	ch <- m.depth
	ch <- m.paused
	ch <- m.inFlight
	ch <- m.tenants
	m.shadow.describe(ch)
}

// Collect sends every series; the gauges are read from the backend now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.counters {
		c.Collect(ch)
	}
	for _, c := range m.units {
		c.Collect(ch)
	}
	m.wait.Collect(ch)
	m.run.Collect(ch)
	m.jobs.Collect(ch)
	m.jobRun.Collect(ch)
	m.collectGauges(ch)
	m.errors.Collect(ch)
}

func (m *Metrics) collectGauges(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	clients := append([]*rateltd.Client(nil), m.clients...)
	seen := make([]string, 0, len(m.keys))
	for k, at := range m.keys {
		if time.Since(at) > keyTTL {
			delete(m.keys, k)
			continue
		}
		seen = append(seen, k)
	}
	m.mu.Unlock()
	if len(clients) == 0 {
		return
	}
	c := clients[0]
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.ScrapeTimeout)
	defer cancel()
	keys := map[string]struct{}{}
	active, err := c.WaitingKeys(ctx)
	if err != nil {
		m.errors.Inc()
	}
	for _, k := range append(active, seen...) {
		if len(keys) >= m.opts.MaxKeys {
			break
		}
		keys[k] = struct{}{}
	}
	type agg struct {
		depth    [config.NumPriorities]int // by Priority.Line
		paused   int
		inFlight int
		tenants  int
		capped   bool // a key of the group has a concurrency cap
		shadow   shadowAgg
	}
	byGroup := map[string]*agg{}
	for k := range keys {
		st, err := c.Status(ctx, k)
		if err != nil {
			m.errors.Inc()
			continue
		}
		g := m.group(k)
		a := byGroup[g]
		if a == nil {
			a = &agg{}
			byGroup[g] = a
		}
		for p, n := range st.QueuedByPriority {
			a.depth[p.Line()] += n
		}
		if st.Paused {
			a.paused++
		}
		if st.Limit.Concurrency > 0 {
			a.capped = true
			a.inFlight += st.InFlight
		}
		a.tenants += st.TenantsWaiting
		a.shadow.add(st)
	}
	for g, a := range byGroup {
		for line, n := range a.depth {
			ch <- prometheus.MustNewConstMetric(m.depth, prometheus.GaugeValue, float64(n), g, config.PriorityOfLine(line).String())
		}
		ch <- prometheus.MustNewConstMetric(m.paused, prometheus.GaugeValue, float64(a.paused), g)
		ch <- prometheus.MustNewConstMetric(m.tenants, prometheus.GaugeValue, float64(a.tenants), g)
		if a.capped {
			ch <- prometheus.MustNewConstMetric(m.inFlight, prometheus.GaugeValue, float64(a.inFlight), g)
		}
		m.shadow.collect(ch, g, &a.shadow)
	}
}
