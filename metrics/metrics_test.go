package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/internal/testnode"
	"github.com/rateltd/rateltd/metrics"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// value returns the value of the series name with the given labels, or -1 when absent.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// TestMetricsByGroup: outcomes are counted per group, histograms observe waits and runs, and
// the gauges show the shared line and pauses, on both backends.
func TestMetricsByGroup(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			m := metrics.New(metrics.Options{MaxGroups: 2})
			cfg := rateltd.Config{Observer: m, Default: rateltd.Limit{Max: 2, Window: time.Hour, QueueTimeout: 2 * time.Hour}}
			c := testnode.Client(t, backend, cfg)
			m.Watch(c)
			reg := prometheus.NewRegistry()
			reg.MustRegister(m)
			ctx := context.Background()
			ok := func(context.Context) (any, error) { return nil, nil }
			bad := func(context.Context) (any, error) { return nil, errors.New("no") }

			c.Request(ctx, "api:a", ok)
			c.Request(ctx, "api:b", bad)
			c.Request(ctx, "api:b", ok)
			c.Request(ctx, "api:b", ok, rateltd.WithTimeout(time.Second)) // full for the hour: rejected
			c.Request(ctx, "db", ok)
			c.Request(ctx, "third", ok) // a third group: beyond MaxGroups
			if err := c.Pause(ctx, "api:a"); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			w1 := c.RequestAsync(cctx, "api:a", ok)
			w2 := c.RequestAsync(cctx, "api:a", ok, rateltd.WithPriority(rateltd.PriorityHigh))
			deadline := time.Now().Add(5 * time.Second)
			for value(t, reg, "rateltd_queue_depth", map[string]string{"group": "api", "priority": "normal"}) != 1 ||
				value(t, reg, "rateltd_queue_depth", map[string]string{"group": "api", "priority": "high"}) != 1 {
				if time.Now().After(deadline) {
					t.Fatal("queue depth never showed the two waiting requests")
				}
				time.Sleep(10 * time.Millisecond)
			}
			api := map[string]string{"group": "api"}
			for name, want := range map[string]float64{
				"rateltd_admitted_total": 3, "rateltd_succeeded_total": 2, "rateltd_failed_total": 1,
				"rateltd_rejected_total": 1, "rateltd_paused": 1, "rateltd_fn_duration_seconds": 3,
				"rateltd_queue_wait_seconds": 4,
			} {
				if got := value(t, reg, name, api); got != want {
					t.Errorf("%s{group=api} = %v, want %v", name, got, want)
				}
			}
			if got := value(t, reg, "rateltd_admitted_total", map[string]string{"group": metrics.OtherGroup}); got != 1 {
				t.Errorf("the third group is not counted as %q: %v", metrics.OtherGroup, got)
			}
			cancel()
			<-w1
			<-w2
			if got := value(t, reg, "rateltd_cancelled_total", api); got != 2 {
				t.Errorf("cancelled = %v, want 2", got)
			}
			if got := value(t, reg, "rateltd_queued_total", api); got != 2 {
				t.Errorf("queued = %v, want 2", got)
			}
			if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %+v", err, problems)
			}
		})
	}
}

func TestMetricsOfDurableJobs(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			m := metrics.New(metrics.Options{})
			c := testnode.Client(t, backend, rateltd.Config{Observer: m, RetryBackoff: time.Millisecond})
			reg := prometheus.NewRegistry()
			reg.MustRegister(m)
			ctx := context.Background()
			c.Handle("ok", func(_ context.Context, p []byte) ([]byte, error) { return p, nil })
			c.Handle("bad", func(context.Context, []byte) ([]byte, error) { return nil, errors.New("no") })
			for _, h := range []string{"ok", "bad"} {
				id, err := c.Enqueue(ctx, "mail:x", h, nil, rateltd.WithMaxRetries(1))
				if err != nil {
					t.Fatal(err)
				}
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				c.Wait(wctx, id)
				cancel()
			}
			// A run is observed just after its result is kept: Wait may return first.
			runs := func(outcome string) float64 {
				return value(t, reg, "rateltd_job_runs_total", map[string]string{"group": "mail", "outcome": outcome})
			}
			for deadline := time.Now().Add(5 * time.Second); runs("dead")+runs("retried")+runs("succeeded") < 3 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			for outcome, want := range map[string]float64{"succeeded": 1, "retried": 1, "dead": 1} {
				if got := runs(outcome); got != want {
					t.Errorf("rateltd_job_runs_total{outcome=%s} = %v, want %v", outcome, got, want)
				}
			}
			if got := value(t, reg, "rateltd_job_duration_seconds", map[string]string{"group": "mail"}); got != 3 {
				t.Errorf("rateltd_job_duration_seconds count = %v, want 3", got)
			}
			if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %+v", err, problems)
			}
		})
	}
}
