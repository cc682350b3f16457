package processor

import "time"

// wakeTimer wakes the loop at the time it was last set to, as close after it as the operating
// system sleeps, never before. A time.Timer alone is late on Linux: when no goroutine runs, the
// Go runtime sleeps in epoll_wait, whose timeout is whole milliseconds (a wait under 1 ms is
// rounded up to 1 ms, a longer one truncated and its remainder then waited as 1 ms), so a timer
// fires up to ~1 ms after its time: 1.05 ms late at 50 µs, 0.9 ms at 7.3 ms, measured on a
// 2-core machine. A key's slot waited that long for its grant step (docs/performance.md,
// "Waking on time"). Here a timer waits the whole milliseconds, which the runtime keeps, and a
// sleep of the operating system's (sleepFine) the rest, under 1 ms.
//
// One goroutine of its own waits, so that the loop's select still takes events meanwhile. set
// and C belong to the loop goroutine; stop ends the goroutine and waits for it.
type wakeTimer struct {
	// C receives once the time set has come (buffered 1). A receive may be stale, from a time
	// set before the last: the loop then finds nothing due and sets its time again.
	C    chan struct{}
	next chan time.Time // buffered 1: the latest time set, for the goroutine
	done chan struct{}  // closed by stop
	gone chan struct{}  // closed when the goroutine has returned
}

func newWakeTimer() *wakeTimer {
	w := &wakeTimer{C: make(chan struct{}, 1), next: make(chan time.Time, 1),
		done: make(chan struct{}), gone: make(chan struct{})}
	go w.run()
	return w
}

// set makes C receive at t (at once when t has passed), in place of the time set before. The
// wait is measured from now on the monotonic clock, as a time.Timer's: a key's time comes from
// server time and has no monotonic reading, and a step of the wall clock while the goroutine
// waits must not stretch its wait.
func (w *wakeTimer) set(t time.Time) {
	t = time.Now().Add(time.Until(t))
	select {
	case <-w.C: // a wake-up for an earlier time, not yet taken: t replaces it
	default:
	}
	select {
	case <-w.next: // a time the goroutine has not taken yet
	default:
	}
	w.next <- t
}

// stop ends the goroutine, after at most the sleep under 1 ms it may be in.
func (w *wakeTimer) stop() {
	close(w.done)
	<-w.gone
}

func (w *wakeTimer) run() {
	defer close(w.gone)
	coarse := time.NewTimer(time.Hour)
	coarse.Stop()
	defer coarse.Stop()
	var at time.Time
	pending := false // at is set and C has not received for it
	for {
		if pending {
			if d := time.Until(at); d >= time.Millisecond {
				coarse.Reset(d.Truncate(time.Millisecond))
			} else {
				// Under 1 ms left: slept here, not interrupted (a time set meanwhile waits
				// for it).
				sleepFine(at)
				pending = false
				select {
				case w.C <- struct{}{}:
				default: // one is waiting already
				}
				continue
			}
		}
		select {
		case <-w.done:
			return
		case at = <-w.next:
			coarse.Stop()
			pending = true
		case <-coarse.C:
			// The whole milliseconds are past: the rest, under 1 ms, next.
		}
	}
}
