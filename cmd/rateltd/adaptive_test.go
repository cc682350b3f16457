package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
)

// TestLimitStringAdaptive: an adaptive limit says so where limits are written.
func TestLimitStringAdaptive(t *testing.T) {
	if s := limitString(rateltd.Limit{Max: 100, Window: time.Second, Adaptive: true}); !strings.HasSuffix(s, ", adaptive") {
		t.Fatalf("%q", s)
	}
	if s := limitString(rateltd.Limit{Max: 100, Window: time.Second}); strings.Contains(s, "adaptive") {
		t.Fatalf("%q", s)
	}
}
