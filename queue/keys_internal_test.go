package queue

import (
	"slices"
	"testing"

	"github.com/rateltd/rateltd/config"
)

// TestListOrderNamesEveryStructure: the suffix of every per-key structure is in listOrder,
// once, so that ListKeys lists a key found by any of them, and lists it once.
func TestListOrderNamesEveryStructure(t *testing.T) {
	ks := keyspace{prefix: "p:x"}
	names := ks.windows("a:b")
	for _, alg := range []config.Algorithm{config.SlidingWindow, config.FixedWindow, config.TokenBucket} {
		names = append(names, ks.withJobs("a:b", config.Limit{Algorithm: alg})...)
	}
	for _, n := range names {
		if key, suffix, ok := ks.split(n); !ok || key != "a:b" || !slices.Contains(listOrder, suffix) {
			t.Errorf("%s: key %q, suffix %q (%v); not in listOrder %v", n, key, suffix, ok, listOrder)
		}
	}
	for i, s := range listOrder {
		if slices.Index(listOrder, s) != i {
			t.Errorf("%q twice in listOrder", s)
		}
	}
}
