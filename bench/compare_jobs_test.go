package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rateltd/rateltd"
)

// Durable jobs side by side: rateltd against hibiken/asynq, one key (one queue), 100-byte
// payloads, handlers that return at once. Each side keeps its defaults otherwise: asynq deletes
// a task once it is done (Retention 0), rateltd keeps the job's end for Wait (ResultTTL).

// jobSystem is a durable job system under test, opened afresh for one run.
type jobSystem interface {
	enqueue(ctx context.Context, payload []byte) error
	// work starts n workers that run every job by calling h with its payload; stop returns once
	// they have stopped.
	work(t testing.TB, n int, h func(payload []byte)) (stop func())
	close()
}

type jobSide struct {
	name string
	peer bool
	open func(t testing.TB, e *env) jobSystem
}

var jobSides = []jobSide{{name: "rateltd", open: openRateltdJobs}, {name: "asynq", peer: true, open: openAsynq(0)}}

const payloadSize = 100

// jobScenarios: enqueue with and without workers up, processing a backlog, and enqueue to
// handler start. asynq, at its defaults, looks at an empty queue again only after 0.5-1.5s
// (TaskCheckInterval 1s), which decides its figure when producers wait for their job to start:
// there, and where its workers run while producers enqueue, it is also measured looking every
// 5-15ms.
func jobScenarios() []scenario {
	checked := append(slices.Clip(jobSides), jobSide{name: "asynq, 10ms check", peer: true, open: openAsynq(10 * time.Millisecond)})
	type shape struct {
		name  string
		run   func(t testing.TB, e *env, sys jobSystem) sample
		sides []jobSide
	}
	shapes := []shape{
		{"enqueue, 16 producers, no worker", func(t testing.TB, e *env, sys jobSystem) sample { return runEnqueue(t, e, sys, false) }, jobSides},
		{"enqueue, 16 producers, 16 workers up", func(t testing.TB, e *env, sys jobSystem) sample { return runEnqueue(t, e, sys, true) }, checked},
		{"processing a backlog, 16 workers", runProcessing, jobSides},
		{"enqueue → handler start, 64 producers, 16 workers", runStart, checked},
	}
	var scs []scenario
	for _, sh := range shapes {
		sc := scenario{group: "durable jobs", name: sh.name, unit: "jobs/s"}
		for _, js := range sh.sides {
			sc.sides = append(sc.sides, side{name: js.name, peer: js.peer, run: func(t testing.TB, e *env) sample {
				sys := js.open(t, e)
				defer sys.close()
				return sh.run(t, e, sys)
			}})
		}
		scs = append(scs, sc)
	}
	return scs
}

// runEnqueue: 16 producers enqueue as fast as they can for one job window, with 16 workers
// running the jobs meanwhile or none; latency is Enqueue's. With workers, the warm-up lasts
// until they have run a job (asynq's first look at an empty queue puts it to sleep for up to
// 1.5s), and the sample says how many handlers ran in the window, per job enqueued: the
// sides' workers need not keep the same pace.
func runEnqueue(t testing.TB, e *env, sys jobSystem, workers bool) sample {
	t.Helper()
	var ran atomic.Bool
	var runs atomic.Int64
	ran.Store(!workers)
	if workers {
		defer sys.work(t, 16, func([]byte) { ran.Store(true); runs.Add(1) })()
	}
	payload := make([]byte, payloadSize)
	enq := func(ctx context.Context, _ int) error { return sys.enqueue(ctx, payload) }
	for deadline := time.Now().Add(time.Minute); ; {
		if _, _, err := drive(16, e.cfg.warm, 1, enq); err != nil {
			t.Fatal(err)
		}
		if ran.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no job ran within a minute")
		}
	}
	var ranIn int64
	s := e.measure(t, func() (int64, []time.Duration) {
		before := runs.Load()
		n, lat, err := drive(16, e.cfg.window, 1, enq)
		if err != nil {
			t.Fatal(err)
		}
		ranIn = runs.Load() - before
		return n, lat
	})
	s.Ran = float64(ranIn) / float64(s.Ops)
	return s
}

// runProcessing: a backlog of cfg.backlog jobs enqueued with no worker up, then 16 workers
// started; measured from their start until the handler has run for every job.
func runProcessing(t testing.TB, e *env, sys jobSystem) sample {
	t.Helper()
	backlog := int64(e.cfg.backlog)
	payload := make([]byte, payloadSize)
	var next atomic.Int64
	if _, _, err := drive(16, time.Hour, 1, func(ctx context.Context, _ int) error {
		if next.Add(1) > backlog {
			return errFilled
		}
		return sys.enqueue(ctx, payload)
	}); !errors.Is(err, errFilled) {
		t.Fatal(err)
	}
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	return e.measure(t, func() (int64, []time.Duration) {
		var ran atomic.Int64
		all := make(chan struct{})
		stop = sys.work(t, 16, func([]byte) {
			if ran.Add(1) == backlog {
				close(all)
			}
		})
		select {
		case <-all:
		case <-time.After(2 * time.Minute):
			t.Fatalf("%d of %d jobs ran within 2 minutes", ran.Load(), backlog)
		}
		return backlog, nil
	})
}

var errFilled = errors.New("bench: backlog filled")

// runStart: 64 producers, each enqueueing a job and waiting until its handler has started
// before enqueueing the next; 16 workers. The producers run without a break from the warm-up
// to the end of the window (a gap would let the workers find the line empty: asynq then stops
// looking for up to 1.5s), and the window counts the jobs that started in it, from its start
// until every producer has seen its last job start. Latency is from
// before Enqueue to the handler's start.
func runStart(t testing.TB, e *env, sys jobSystem) sample {
	t.Helper()
	const producers = 64
	started := make([]chan time.Time, producers)
	for i := range started {
		started[i] = make(chan time.Time, 1)
	}
	var ran atomic.Int64
	defer sys.work(t, 16, func(p []byte) {
		ran.Add(1)
		select { // a job run twice must not block its worker
		case started[binary.BigEndian.Uint16(p)] <- time.Now():
		default:
		}
	})()
	l := startLoop(sys, producers, started)
	defer l.end()
	// The warm-up lasts until the workers have run a job, as in runEnqueue.
	time.Sleep(e.cfg.warm)
	for deadline := time.Now().Add(time.Minute); ran.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no job ran within a minute")
		}
	}
	return e.measure(t, func() (int64, []time.Duration) {
		from := time.Now()
		time.Sleep(e.cfg.window)
		jobs, err := l.end()
		if err != nil {
			t.Fatal(err)
		}
		var lat []time.Duration
		for _, j := range jobs {
			if !j.started.Before(from) {
				lat = append(lat, j.started.Sub(j.enqueued))
			}
		}
		return int64(len(lat)), lat
	})
}

// loop is runStart's producers.
type loop struct {
	stop  atomic.Bool
	wg    sync.WaitGroup
	jobs  [][]startedJob // by producer, each written by its producer until wg is done
	errs  []error        // same
	ended sync.Once
}

type startedJob struct{ enqueued, started time.Time }

func startLoop(sys jobSystem, producers int, started []chan time.Time) *loop {
	l := &loop{jobs: make([][]startedJob, producers), errs: make([]error, producers)}
	ctx := context.Background()
	for p := range producers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			payload := make([]byte, payloadSize)
			binary.BigEndian.PutUint16(payload, uint16(p))
			for !l.stop.Load() {
				at := time.Now()
				if l.errs[p] = sys.enqueue(ctx, payload); l.errs[p] != nil {
					return
				}
				select {
				case s := <-started[p]:
					l.jobs[p] = append(l.jobs[p], startedJob{at, s})
				case <-time.After(time.Minute):
					l.errs[p] = fmt.Errorf("bench: producer %d: its job did not start within a minute", p)
					return
				}
			}
		}()
	}
	return l
}

// end stops the producers once each has seen its last job start, and returns every job.
func (l *loop) end() ([]startedJob, error) {
	l.ended.Do(func() {
		l.stop.Store(true)
		l.wg.Wait()
	})
	var all []startedJob
	for _, j := range l.jobs {
		all = append(all, j...)
	}
	return all, errors.Join(l.errs...)
}

// rateltdJobs: jobs are enqueued by a Client that runs none (no handler registered), and run
// by another Client of the same prefix: a producer process and a worker process.
type rateltdJobs struct {
	e        *env
	producer *rateltd.Client
}

func jobConfig(e *env, workers int) rateltd.Config {
	return rateltd.Config{Redis: e.rdb, Prefix: e.prefix, Workers: workers, Default: rateltd.Limit{
		Algorithm: rateltd.TokenBucket, Max: fastLimit, Window: time.Second, MaxQueue: 10_000_000, QueueTimeout: 10 * time.Minute}}
}

func openRateltdJobs(t testing.TB, e *env) jobSystem {
	c, err := rateltd.New(jobConfig(e, 0))
	if err != nil {
		t.Fatal(err)
	}
	return &rateltdJobs{e: e, producer: c}
}

func (r *rateltdJobs) enqueue(ctx context.Context, payload []byte) error {
	_, err := r.producer.Enqueue(ctx, "jobs", "echo", payload)
	return err
}

func (r *rateltdJobs) work(t testing.TB, n int, h func([]byte)) func() {
	w, err := rateltd.New(jobConfig(r.e, n))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Handle("echo", func(_ context.Context, p []byte) ([]byte, error) {
		h(p)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	return func() { w.Close() }
}

func (r *rateltdJobs) close() { r.producer.Close() }

// asynqJobs: an asynq Client and, to run jobs, an asynq Server, on the run's Redis client and
// a queue named after the run's prefix.
type asynqJobs struct {
	e      *env
	check  time.Duration // asynq.Config.TaskCheckInterval; 0 for its default
	client *asynq.Client
	queue  asynq.Option
	name   string
}

func openAsynq(check time.Duration) func(testing.TB, *env) jobSystem {
	return func(t testing.TB, e *env) jobSystem {
		e.patterns = append(e.patterns, "asynq:{"+e.prefix+"}:*")
		return &asynqJobs{e: e, check: check, client: asynq.NewClientFromRedisClient(e.rdb), queue: asynq.Queue(e.prefix), name: e.prefix}
	}
}

func (a *asynqJobs) enqueue(ctx context.Context, payload []byte) error {
	_, err := a.client.EnqueueContext(ctx, asynq.NewTask("echo", payload), a.queue)
	return err
}

func (a *asynqJobs) work(t testing.TB, n int, h func([]byte)) func() {
	srv := asynq.NewServerFromRedisClient(a.e.rdb, asynq.Config{Concurrency: n, Queues: map[string]int{a.name: 1},
		TaskCheckInterval: a.check, Logger: quietLogger{}})
	if err := srv.Start(asynq.HandlerFunc(func(_ context.Context, task *asynq.Task) error {
		h(task.Payload())
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	return srv.Shutdown
}

// close forgets the queue; its keys go with the run's (env.patterns).
func (a *asynqJobs) close() {
	a.e.probe.SRem(context.Background(), "asynq:queues", a.name)
}

// quietLogger drops asynq's chatter and keeps its errors.
type quietLogger struct{}

func (quietLogger) Debug(...any)   {}
func (quietLogger) Info(...any)    {}
func (quietLogger) Warn(...any)    {}
func (quietLogger) Error(a ...any) { log.Print(append([]any{"asynq: "}, a...)...) }
func (quietLogger) Fatal(a ...any) { log.Print(append([]any{"asynq: "}, a...)...) }
