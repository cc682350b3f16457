package rateltd

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
)

// soak is how long TestSoak runs; 0 skips it. Not in CI: go test -run Soak . -soak=10m
var soak = flag.Duration("soak", 0, "run TestSoak for this long (e.g. 10m); 0 skips it")

// soakEvery is how often TestSoak samples.
const soakEvery = 10 * time.Second

// soakSample is one reading of TestSoak.
type soakSample struct {
	at         time.Duration
	redisBytes int64 // INFO memory used_memory
	keys       int   // keys under the test's prefix (SCAN)
	goroutines int
	heap       uint64 // HeapInuse after a GC
}

// TestSoak runs the chaos load with no fault (three Clients, two keys at 50/s, mixed
// priorities, cancels, durable jobs) on a private Redis for -soak, sampling every 10s Redis's
// memory, the keys under the test's prefix, goroutines and the Go heap. It fails when the
// mean of the last third exceeds that of the first by more than the bounds of soakBounds, or
// when an outcome breaks a rule of the chaos suite, and prints the samples.
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("soak mode only: go test -run Soak . -soak=10m")
	}
	srv := redistest.Fresh(t)
	direct, prefix := srv.Client(t), srv.Prefix(t)
	nodes := make([]*Client, chaosNodes)
	for i := range nodes {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { rdb.Close() })
		nodes[i] = chaosNode(t, rdb, prefix, nil)
	}
	load := newChaosLoad(t, nodes, nil)
	load.tally = true
	load.start()
	var samples []soakSample
	begin := time.Now()
	for tick := time.NewTicker(soakEvery); ; {
		<-tick.C
		samples = append(samples, sampleSoak(t, direct, prefix, time.Since(begin)))
		if time.Since(begin) >= *soak {
			tick.Stop()
			break
		}
	}
	load.end()
	var b strings.Builder
	fmt.Fprintf(&b, "%8s %12s %6s %10s %10s\n", "at", "redis bytes", "keys", "goroutines", "heap")
	for _, s := range samples {
		fmt.Fprintf(&b, "%8v %12d %6d %10d %10d\n", s.at.Round(time.Second), s.redisBytes, s.keys, s.goroutines, s.heap)
	}
	load.mu.Lock()
	fmt.Fprintf(&b, "outcomes %v; broken %v\n", load.kinds, load.bad)
	bad := len(load.bad)
	load.mu.Unlock()
	t.Log("\n" + b.String())
	if bad > 0 {
		t.Error("outcomes broke the chaos suite's rules")
	}
	checkSoak(t, samples)
}

// soakBounds: how much the mean of the last third of the samples may exceed that of the
// first — a share, and an absolute slack for small figures.
var soakBounds = []struct {
	name  string
	of    func(soakSample) float64
	share float64
	slack float64
}{
	{"Redis used_memory", func(s soakSample) float64 { return float64(s.redisBytes) }, 0.10, 512 << 10},
	{"keys under the prefix", func(s soakSample) float64 { return float64(s.keys) }, 0.10, 20},
	{"goroutines", func(s soakSample) float64 { return float64(s.goroutines) }, 0.10, 20},
	{"Go heap in use", func(s soakSample) float64 { return float64(s.heap) }, 0.20, 2 << 20},
}

func checkSoak(t *testing.T, samples []soakSample) {
	t.Helper()
	third := len(samples) / 3
	if third == 0 {
		t.Logf("%d samples: too few to compare thirds", len(samples))
		return
	}
	mean := func(ss []soakSample, of func(soakSample) float64) float64 {
		sum := 0.0
		for _, s := range ss {
			sum += of(s)
		}
		return sum / float64(len(ss))
	}
	for _, b := range soakBounds {
		first, last := mean(samples[:third], b.of), mean(samples[len(samples)-third:], b.of)
		if last > first*(1+b.share)+b.slack {
			t.Errorf("%s grew from %.0f to %.0f (first and last third); allowed %.0f%% + %.0f", b.name, first, last, 100*b.share, b.slack)
		}
	}
}

func sampleSoak(t *testing.T, rdb *redis.Client, prefix string, at time.Duration) soakSample {
	t.Helper()
	ctx := context.Background()
	s := soakSample{at: at, goroutines: runtime.NumGoroutine()}
	info, err := rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	if s.redisBytes, err = strconv.ParseInt(info["Memory"]["used_memory"], 10, 64); err != nil {
		t.Fatalf("used_memory: %v", err)
	}
	for it := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator(); it.Next(ctx); {
		s.keys++
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s.heap = m.HeapInuse
	return s
}
