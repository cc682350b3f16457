package rateltd_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rateltd/rateltd"
)

// Requests over the limit wait in line and run when the window allows; the caller gets fn's
// result either way. With no Config.Redis, the limit holds within this process.
func ExampleClient_Request() {
	rl, err := rateltd.New(rateltd.Config{
		Limits: map[string]rateltd.Limit{"api": {Max: 2, Window: 100 * time.Millisecond}},
	})
	if err != nil {
		panic(err)
	}
	defer rl.Close()

	ctx := context.Background()
	start := time.Now()
	for i := 1; i <= 3; i++ {
		v, err := rl.Request(ctx, "api", func(ctx context.Context) (any, error) {
			return fmt.Sprintf("call %d", i), nil // call the rate-limited API here
		})
		if err != nil {
			panic(err)
		}
		fmt.Println(v, "waited:", time.Since(start) > 50*time.Millisecond)
	}
	// Output:
	// call 1 waited: false
	// call 2 waited: false
	// call 3 waited: true
}

// Do is Request with a typed result.
func ExampleDo() {
	rl, err := rateltd.New(rateltd.Config{Default: rateltd.Limit{Max: 10, Window: time.Second}})
	if err != nil {
		panic(err)
	}
	defer rl.Close()

	n, err := rateltd.Do(context.Background(), rl, "stripe:acct_42", func(ctx context.Context) (int, error) {
		return 42, nil
	}, rateltd.WithPriority(rateltd.PriorityHigh), rateltd.WithTimeout(5*time.Second))
	fmt.Println(n, err)
	// Output: 42 <nil>
}

// Check answers whether a request would start now without consuming anything; Status shows
// the window, the line and the counters.
func ExampleClient_Status() {
	rl, err := rateltd.New(rateltd.Config{Default: rateltd.Limit{Max: 5, Window: time.Minute}})
	if err != nil {
		panic(err)
	}
	defer rl.Close()
	ctx := context.Background()

	_, _ = rl.Request(ctx, "openai", func(context.Context) (any, error) { return nil, nil })
	d, _ := rl.Check(ctx, "openai")
	fmt.Println("allowed:", d.Allowed, "remaining:", d.Remaining)
	st, _ := rl.Status(ctx, "openai")
	fmt.Printf("used %d of %d, %d waiting, %d admitted at once\n", st.Used, st.Limit.Max, st.Queued, st.Counters.Admitted)
	// Output:
	// allowed: true remaining: 4
	// used 1 of 5, 0 waiting, 1 admitted at once
}

// A paused key grants nothing; requests keep queueing and run after Resume.
func ExampleClient_Pause() {
	rl, err := rateltd.New(rateltd.Config{Default: rateltd.Limit{Max: 5, Window: time.Second}})
	if err != nil {
		panic(err)
	}
	defer rl.Close()
	ctx := context.Background()

	_ = rl.Pause(ctx, "openai")
	res := rl.RequestAsync(ctx, "openai", func(context.Context) (any, error) { return "ran after resume", nil })
	for {
		if st, _ := rl.Status(ctx, "openai"); st.Queued == 1 {
			fmt.Println("paused:", st.Paused, "waiting:", st.Queued)
			break
		}
		time.Sleep(time.Millisecond)
	}
	_ = rl.Resume(ctx, "openai")
	r := <-res
	fmt.Println(r.Value, r.Err)
	// Output:
	// paused: true waiting: 1
	// ran after resume <nil>
}

// A request whose turn cannot come before its deadline fails at once instead of waiting.
func ExampleWithTimeout() {
	rl, err := rateltd.New(rateltd.Config{Default: rateltd.Limit{Max: 1, Window: time.Hour}})
	if err != nil {
		panic(err)
	}
	defer rl.Close()
	ctx := context.Background()
	noop := func(context.Context) (any, error) { return nil, nil }

	_, err = rl.Request(ctx, "k", noop)
	fmt.Println(err)
	_, err = rl.Request(ctx, "k", noop, rateltd.WithTimeout(time.Second))
	fmt.Println(errors.Is(err, rateltd.ErrWouldExceedDeadline))
	// Output:
	// <nil>
	// true
}

// A durable job: registered by name on the nodes that run it, enqueued from any node, its result
// read by id from any node. With Redis, the job outlives the process that enqueued it.
func ExampleClient_Enqueue() {
	rl, err := rateltd.New(rateltd.Config{})
	if err != nil {
		panic(err)
	}
	defer rl.Close()

	if err := rl.Handle("greet", func(ctx context.Context, payload []byte) ([]byte, error) {
		return []byte("hello, " + string(payload)), nil
	}); err != nil {
		panic(err)
	}
	ctx := context.Background()
	id, err := rl.Enqueue(ctx, "mail", "greet", []byte("ada"), rateltd.WithMaxRetries(3))
	if err != nil {
		panic(err)
	}
	res, err := rl.Wait(ctx, id)
	fmt.Printf("%s %v\n", res, err)
	// Output: hello, ada <nil>
}

// Call is Enqueue and Wait with typed payload and result, over msgpack.
func ExampleCall() {
	rl, err := rateltd.New(rateltd.Config{})
	if err != nil {
		panic(err)
	}
	defer rl.Close()

	type sum struct{ A, B int }
	if err := rateltd.HandleFunc(rl, "add", func(ctx context.Context, in sum) (int, error) {
		return in.A + in.B, nil
	}); err != nil {
		panic(err)
	}
	n, err := rateltd.Call[sum, int](context.Background(), rl, "math", "add", sum{2, 3})
	fmt.Println(n, err)
	// Output: 5 <nil>
}

// Shutdown stops taking work at once and gives the fns running until its ctx ends; then it
// cancels their contexts (cause ErrClosed). A fn that returns when cancelled leaves nothing
// running, and Shutdown returns nil.
func ExampleClient_Shutdown() {
	rl, err := rateltd.New(rateltd.Config{})
	if err != nil {
		panic(err)
	}
	started := make(chan struct{})
	res := rl.RequestAsync(context.Background(), "api", func(ctx context.Context) (any, error) {
		close(started)
		<-ctx.Done() // a long call that stops when asked
		return nil, context.Cause(ctx)
	})
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	fmt.Println("shutdown:", rl.Shutdown(ctx))
	fmt.Println("fn:", (<-res).Err)
	_, err = rl.Request(context.Background(), "api", func(context.Context) (any, error) { return nil, nil })
	fmt.Println("new request:", err)
	// Output:
	// shutdown: <nil>
	// fn: rateltd: client closed
	// new request: rateltd: client closed
}
