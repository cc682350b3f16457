//go:build !linux

package processor

import "time"

// sleepFine sleeps until t. Elsewhere than on Linux the runtime's own sleep is not rounded to
// whole milliseconds (kqueue and Windows wait with finer timeouts).
func sleepFine(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}
