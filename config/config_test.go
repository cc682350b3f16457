package config

import (
	"errors"
	"strings"
	"testing"
)

func TestGroup(t *testing.T) {
	for key, want := range map[string]string{"stripe:acct:42": "stripe", "openai": "openai", ":x": ""} {
		if got := Group(key); got != want {
			t.Errorf("Group(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestValidateKey(t *testing.T) {
	good := []string{"a", "stripe:acct_42", "ключ", "*", strings.Repeat("x", MaxKeyLen)}
	bad := []string{"", "a{b", "}", "new\nline", "\x7f", string([]byte{0xc3}), strings.Repeat("x", MaxKeyLen+1)}
	for _, k := range good {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q): %v", k, err)
		}
	}
	for _, k := range bad {
		if err := ValidateKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"sliding", "fixed", "token"} {
		a, err := ParseAlgorithm(s)
		if err != nil || a.String() != s {
			t.Errorf("ParseAlgorithm(%q) = %v, %v", s, a, err)
		}
	}
	if _, err := ParseAlgorithm("leaky"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ParseAlgorithm(leaky): %v", err)
	}
	for p := PriorityLow; p <= PriorityCritical; p++ {
		if got, err := ParsePriority(p.String()); err != nil || got != p {
			t.Errorf("ParsePriority(%q) = %v, %v", p, got, err)
		}
	}
}

// TestPriorityZeroLineOrder: the zero Priority is Normal; the values are ordered as the
// priorities are served; Line numbers them 0 (low) to 3 (critical), as Redis stores them, and
// PriorityOfLine is its inverse; nothing else is Valid.
func TestPriorityZeroLineOrder(t *testing.T) {
	var zero Priority
	if zero != PriorityNormal || !zero.Valid() {
		t.Fatalf("zero Priority is %v, want normal", zero)
	}
	if !(PriorityCritical > PriorityHigh && PriorityHigh > PriorityNormal && PriorityNormal > PriorityLow) {
		t.Fatal("priorities are not ordered critical > high > normal > low")
	}
	for line, want := range []Priority{PriorityLow, PriorityNormal, PriorityHigh, PriorityCritical} {
		if want.Line() != line || PriorityOfLine(line) != want || !want.Valid() {
			t.Errorf("%v: Line %d, PriorityOfLine(%d) = %v; want line %d", want, want.Line(), line, PriorityOfLine(line), line)
		}
	}
	for _, line := range []int{-1, NumPriorities} {
		if p := PriorityOfLine(line); p.Valid() {
			t.Errorf("PriorityOfLine(%d) = %v is Valid", line, p)
		}
	}
}
