//go:build !linux

package processor

import "time"

// sleepFine sleeps until t. Elsewhere than on Linux the runtime's own sleep is not rounded up
// to whole milliseconds the same way (kqueue waits in nanoseconds; Windows with a
// high-resolution timer where the system has one).
func sleepFine(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}
