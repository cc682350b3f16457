package redistest

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main runs a test binary's tests, stops the shared server, and fails the run if goroutines
// are left behind. Call it from TestMain:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	if code == 0 {
		// go-redis redials a dead server from a goroutine that sleeps a second between tries
		// and notices only then that its pool was closed.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial")); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
