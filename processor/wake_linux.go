package processor

import (
	"syscall"
	"time"
)

// sleepFine sleeps until t in nanosleep(2), which wakes within the kernel's timer slack (50 µs
// by default) rather than the runtime's whole milliseconds. A signal (the runtime's preemption
// among them) ends a sleep early: it sleeps again for what is left.
func sleepFine(t time.Time) {
	for d := time.Until(t); d > 0; d = time.Until(t) {
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil)
	}
}
