// Package track counts what a Client has running — calls, goroutines — so that its shutdown
// can refuse new ones, wait for the running ones with a bound, and say how many did not end.
package track

import (
	"context"
	"sync"
	"sync/atomic"
)

// Count counts running things. Unlike a sync.WaitGroup, it may be added to while Wait
// waits, and Wait is bounded by a context. Its zero value counts nothing and is open. Safe
// for concurrent use.
//
// Every field is written and read with atomic operations by any goroutine: Enter/Add and
// Leave by the things counted, Close and Wait by the shutdown.
type Count struct {
	n       atomic.Int64
	closed  atomic.Bool
	waiting atomic.Bool
	once    sync.Once
	sig     chan struct{} // buffered 1; made once by signal
}

// Enter counts one more unless Close was called; it reports whether it counted. A caller
// that got true must call Leave once.
func (c *Count) Enter() bool {
	c.n.Add(1)
	if c.closed.Load() {
		c.Leave()
		return false
	}
	return true
}

// Add counts one more, closed or not: for a goroutine started by something counted already,
// which must be waited for whatever happens.
func (c *Count) Add() { c.n.Add(1) }

// Leave counts one less.
func (c *Count) Leave() {
	// Wait stores waiting before it loads n, and Leave adds to n before it loads waiting:
	// whichever comes second sees the other's write, so a Wait never misses the last Leave.
	if c.n.Add(-1) == 0 && c.waiting.Load() {
		select {
		case c.signal() <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// Close makes every later Enter fail.
func (c *Count) Close() { c.closed.Store(true) }

// Running is how many are counted now.
func (c *Count) Running() int { return int(c.n.Load()) }

// Wait waits until nothing is counted or ctx ends; it reports whether nothing is counted.
func (c *Count) Wait(ctx context.Context) bool {
	c.waiting.Store(true)
	for c.n.Load() > 0 {
		select {
		case <-c.signal():
		case <-ctx.Done():
			return c.n.Load() == 0
		}
	}
	return true
}

func (c *Count) signal() chan struct{} {
	c.once.Do(func() { c.sig = make(chan struct{}, 1) })
	return c.sig
}
