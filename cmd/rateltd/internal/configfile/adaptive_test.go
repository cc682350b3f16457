package configfile

import (
	"testing"
	"time"
)

// TestParseAdaptive: a limit takes adaptive, a boolean.
func TestParseAdaptive(t *testing.T) {
	f, err := Parse("rateltd.yaml", []byte("limits:\n  partner: {max: 100, window: 1s, adaptive: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Config.Limits["partner"]; !got.Adaptive || got.Max != 100 || got.Window != time.Second {
		t.Fatalf("parsed %+v", got)
	}
	if _, err := Parse("rateltd.yaml", []byte("limits:\n  partner: {max: 100, window: 1s, adaptive: often}\n")); err == nil {
		t.Fatal("adaptive: often parsed")
	}
}
