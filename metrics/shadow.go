package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rateltd/rateltd"
)

// shadowDescs are the gauges of shadow limits (rateltd.Limit.Shadow): what each group's
// shadow keys would have done with the requests they let run, read from their Status counters
// (Counters.Shadow) at each scrape. Those counters are kept by the backend for all nodes and
// lapse with Config.StatsTTL, so these are gauges: counts since the keys' counters were last
// reset or lapsed, the same from every process.
type shadowDescs struct {
	requests, wait, longest *prometheus.Desc
}

func newShadowDescs() shadowDescs {
	return shadowDescs{
		requests: prometheus.NewDesc("rateltd_shadow_requests",
			"Requests that the group's shadow limits let run, all nodes, by what the limit would have done: allowed, queued or refused. Counts since the keys' counters were reset or lapsed (Config.StatsTTL). Only groups with a shadow key in the scrape.",
			[]string{"group", "outcome"}, nil),
		wait: prometheus.NewDesc("rateltd_shadow_wait_seconds",
			"Sum of the waits the group's shadow limits would have imposed on the requests they would have queued (see rateltd_shadow_requests).",
			[]string{"group"}, nil),
		longest: prometheus.NewDesc("rateltd_shadow_wait_longest_seconds",
			"Longest wait one of the group's shadow limits would have imposed on a request (see rateltd_shadow_requests).",
			[]string{"group"}, nil),
	}
}

func (d shadowDescs) describe(ch chan<- *prometheus.Desc) {
	ch <- d.requests
	ch <- d.wait
	ch <- d.longest
}

// shadowAgg adds up the shadow counters of a group's keys.
type shadowAgg struct {
	any                      bool // a key of the group has a shadow limit
	allowed, queued, refused int64
	wait, longest            time.Duration
}

func (a *shadowAgg) add(st rateltd.Status) {
	if !st.Limit.Shadow {
		return
	}
	sh := st.Counters.Shadow
	a.any = true
	a.allowed, a.queued, a.refused = a.allowed+sh.Allowed, a.queued+sh.Queued, a.refused+sh.Refused
	a.wait += sh.Wait
	a.longest = max(a.longest, sh.MaxWait)
}

// collect sends group g's shadow gauges, when a key of g has a shadow limit.
func (d shadowDescs) collect(ch chan<- prometheus.Metric, g string, a *shadowAgg) {
	if !a.any {
		return
	}
	for outcome, n := range map[string]int64{"allowed": a.allowed, "queued": a.queued, "refused": a.refused} {
		ch <- prometheus.MustNewConstMetric(d.requests, prometheus.GaugeValue, float64(n), g, outcome)
	}
	ch <- prometheus.MustNewConstMetric(d.wait, prometheus.GaugeValue, a.wait.Seconds(), g)
	ch <- prometheus.MustNewConstMetric(d.longest, prometheus.GaugeValue, a.longest.Seconds(), g)
}
