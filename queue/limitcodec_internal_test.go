package queue

import (
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
)

// TestLimitCodecRoundTrip: every field of a runtime limit survives encodeLimit and
// decodeLimit, Shadow among them, and the forms of earlier versions (seven numbers; nine, with
// units and concurrency) read as limits that are not shadow.
func TestLimitCodecRoundTrip(t *testing.T) {
	limits := []config.Limit{
		{Max: 5, Window: time.Second, MaxQueue: 10, QueueTimeout: time.Second},
		{Max: 5, Window: time.Second, MaxQueue: 10, QueueTimeout: time.Second, Adaptive: true},
		{Max: 5, Window: time.Second, MaxQueue: 10, QueueTimeout: time.Second, Shadow: true},
		{Algorithm: config.TokenBucket, Max: 5, Window: time.Second, Burst: 2, MaxQueue: -1, QueueTimeout: time.Second, Shadow: true},
		{Max: 5, Window: time.Second, Units: true, Concurrency: 3, MaxQueue: 10, QueueTimeout: time.Second, Shadow: true,
			Also: [config.MaxAlso]config.Rate{{Max: 100, Window: time.Minute, Units: true}}},
		{Concurrency: 2, MaxQueue: 10, QueueTimeout: time.Second, Shadow: true},
	}
	for _, l := range limits {
		got, err := decodeLimit(encodeLimit(l))
		if err != nil || got != l {
			t.Errorf("decodeLimit(encodeLimit(%+v)) = %+v, %v (encoded %q)", l, got, err, encodeLimit(l))
		}
	}
	for _, old := range []string{"0,5,1000000,0,10,1000,0", "0,5,1000000,0,10,1000,0,0,3"} {
		got, err := decodeLimit(old)
		if err != nil || got.Shadow {
			t.Errorf("decodeLimit(%q) = %+v, %v; want a limit that is not shadow", old, got, err)
		}
	}
}
