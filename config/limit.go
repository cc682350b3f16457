package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Algorithm selects how a key's window is kept.
type Algorithm int

const (
	// SlidingWindow is an exact sliding-window log: at most Max grants in any interval of length
	// Window. It stores one entry per grant in the window (at most Max), so it suits limits up
	// to some tens of thousands per window; above that use FixedWindow or TokenBucket.
	SlidingWindow Algorithm = iota
	// FixedWindow counts grants per aligned window of length Window (aligned to Redis time).
	// Constant memory; up to 2×Max may start around a window boundary.
	FixedWindow
	// TokenBucket is GCRA: a steady rate of Max per Window with bursts of up to Burst.
	TokenBucket
)

func (a Algorithm) String() string {
	switch a {
	case SlidingWindow:
		return "sliding"
	case FixedWindow:
		return "fixed"
	case TokenBucket:
		return "token"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// ParseAlgorithm turns "sliding", "fixed" or "token" into an Algorithm.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch s {
	case "sliding", "":
		return SlidingWindow, nil
	case "fixed":
		return FixedWindow, nil
	case "token":
		return TokenBucket, nil
	}
	return 0, fmt.Errorf("%w: Algorithm %q: want sliding, fixed or token", ErrInvalidConfig, s)
}

// Overflow says what happens when a request arrives at a full line.
type Overflow int

const (
	// Reject refuses the newcomer with ErrQueueFull.
	Reject Overflow = iota
	// DropOldest evicts the oldest waiting request of the lowest priority at or below the
	// newcomer's (that request ends with ErrEvicted at once) and queues the newcomer. When every
	// waiting request has a higher priority than the newcomer, the newcomer gets ErrQueueFull.
	DropOldest
)

func (o Overflow) String() string {
	switch o {
	case Reject:
		return "reject"
	case DropOldest:
		return "drop_oldest"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// Defaults for the queue settings of a Limit.
const (
	DefaultMaxQueue     = 1000
	DefaultQueueTimeout = 30 * time.Second
	// MaxWindow bounds Limit.Window.
	MaxWindow = 7 * 24 * time.Hour
)

// Limit is a key's limit as the engine takes it: rateltd.Limit, where each field is
// documented, converts to it field for field.
type Limit struct {
	Algorithm    Algorithm
	Max          int
	Window       time.Duration
	Burst        int
	Units        bool          // the main rate counts cost units, not requests
	Also         [MaxAlso]Rate // the first NumRates()-1 are in use, the rest zero
	Concurrency  int           // at most this many running at once; 0: no cap
	MaxQueue     int           // -1: never queue
	QueueTimeout time.Duration
	Overflow     Overflow
	Shadow       bool // the limit is watched, not enforced: every request runs at once
	Adaptive     bool // the rates in force follow the upstream: cut on its refusals, raised on success
	// MaxQueuePerTenant bounds the tickets one tenant may have waiting (0: no bound).
	MaxQueuePerTenant int
	// TenantWeights holds the tenants' weights other than 1 as "name=weight" joined by ','
	// in name order (a string, so that a Limit stays comparable); see WeightsString.
	TenantWeights string
}

// MaxTenantWeight bounds a tenant's weight; MaxTenantLen a tenant's name (bytes).
const (
	MaxTenantWeight = 1000
	MaxTenantLen    = 64
)

// ValidTenant reports whether t can name a tenant: 1 to MaxTenantLen bytes, none of them a
// control character, ',', '=', '{' or '}'.
func ValidTenant(t string) bool {
	if t == "" || len(t) > MaxTenantLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c < 0x20 || c == 0x7f || c == ',' || c == '=' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

// WeightsString is the TenantWeights of the weights w (those of 1 left out), or an error
// naming the first tenant or weight out of range.
func WeightsString(w map[string]int) (string, error) {
	names := make([]string, 0, len(w))
	for t, n := range w {
		if !ValidTenant(t) {
			return "", fmt.Errorf("%w: tenant %q: 1 to %d bytes, no control characters, ',', '=', '{' or '}'", ErrInvalidConfig, t, MaxTenantLen)
		}
		if n < 1 || n > MaxTenantWeight {
			return "", fmt.Errorf("%w: tenant %q: weight %d, want 1 to %d", ErrInvalidConfig, t, n, MaxTenantWeight)
		}
		if n != 1 {
			names = append(names, t)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for i, t := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(w[t]))
	}
	return b.String(), nil
}

// Weights returns l's tenant weights as a map (nil when none).
func (l Limit) Weights() map[string]int {
	if l.TenantWeights == "" {
		return nil
	}
	out := map[string]int{}
	for part := range strings.SplitSeq(l.TenantWeights, ",") {
		t, n, _ := strings.Cut(part, "=")
		out[t], _ = strconv.Atoi(n)
	}
	return out
}

// TenantWeight is tenant t's weight under l: 1 unless TenantWeights says otherwise.
func (l Limit) TenantWeight(t string) int {
	for s := l.TenantWeights; s != ""; {
		var part string
		part, s, _ = strings.Cut(s, ",")
		if name, n, _ := strings.Cut(part, "="); name == t {
			w, err := strconv.Atoi(n)
			if err != nil || w < 1 {
				return 1
			}
			return w
		}
	}
	return 1
}

// Rate is one rate of a key's limit besides its main one (Limit.Max per Limit.Window), kept
// by the key's algorithm; rateltd.Rate converts to it field for field.
type Rate struct {
	Max    int
	Window time.Duration
	Burst  int
	Units  bool // counts cost units, not requests
}

// MaxAlso bounds Limit.Also.
const MaxAlso = 4

// Rate returns rate i of l: 0 the main one, i > 0 Also[i-1].
func (l Limit) Rate(i int) Rate {
	if i == 0 {
		return Rate{Max: l.Max, Window: l.Window, Burst: l.Burst, Units: l.Units}
	}
	return l.Also[i-1]
}

// NumRates is how many rates l holds: the main one and those of Also in use (up to the
// first zero one); 0 for a concurrency cap alone (Max 0).
func (l Limit) NumRates() int {
	if l.Max == 0 {
		return 0
	}
	n := 1
	for _, r := range l.Also {
		if r == (Rate{}) {
			break
		}
		n++
	}
	return n
}

// Only returns the limit that holds rate i of l alone as its main rate (its algorithm and
// line settings are l's): the limit each algorithm step of rate i takes.
func (l Limit) Only(i int) Limit {
	r := l.Rate(i)
	l.Max, l.Window, l.Burst, l.Units, l.Also = r.Max, r.Window, r.Burst, r.Units, [MaxAlso]Rate{}
	return l
}

// Charge is what a request of cost c counts against rate r: c when r counts units, else 1.
func (r Rate) Charge(c int64) int64 {
	if r.Units {
		return c
	}
	return 1
}

// Capacity is the most rate r can ever admit at once under algorithm a: Burst for TokenBucket,
// else Max.
func (r Rate) Capacity(a Algorithm) int64 {
	if a == TokenBucket && r.Burst > 0 {
		return int64(r.Burst)
	}
	return int64(r.Max)
}

// MaxCost is the largest cost l could ever admit: the smallest capacity of its rates that
// count units; -1 when no rate counts units, so that any cost fits.
func (l Limit) MaxCost() int64 {
	m := int64(-1)
	for i := range l.NumRates() {
		if r := l.Rate(i); r.Units && (m < 0 || r.Capacity(l.Algorithm) < m) {
			m = r.Capacity(l.Algorithm)
		}
	}
	return m
}

// HasUnits reports whether some rate of l counts cost units.
func (l Limit) HasUnits() bool { return l.MaxCost() >= 0 }

// WithDefaults returns l with every zero field that has a default filled in.
func (l Limit) WithDefaults() Limit {
	if l.MaxQueue == 0 {
		l.MaxQueue = DefaultMaxQueue
	}
	if l.QueueTimeout == 0 {
		l.QueueTimeout = DefaultQueueTimeout
	}
	if l.Algorithm == TokenBucket && l.Burst == 0 {
		l.Burst = l.Max
	}
	for i := range l.NumRates() - 1 {
		if l.Algorithm == TokenBucket && l.Also[i].Burst == 0 {
			l.Also[i].Burst = l.Also[i].Max
		}
	}
	return l
}

// CapOnly reports whether l is a concurrency cap with no rate: Concurrency set, Max, Window,
// Burst and Also zero.
func (l Limit) CapOnly() bool {
	return l.Concurrency > 0 && l.Max == 0 && l.Window == 0 && l.Burst == 0 && l.Also == [MaxAlso]Rate{} && !l.Units
}

// Complex reports whether l is more than one rate counting requests enforced: a rate counting
// units, several rates, a concurrency cap or a shadow limit, or bounds each tenant's waiting. The scripts then take its rates
// as a string (see lua/limits.lua) and tell each grant's remaining apart.
func (l Limit) Complex() bool {
	return l.Units || l.NumRates() != 1 || l.Concurrency > 0 || l.Shadow || l.MaxQueuePerTenant > 0
}

// Validate reports the first field of l that is out of range, naming it as field.X.
func (l Limit) Validate(field string) error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%w: %s.%s: %s", ErrInvalidConfig, field, name, fmt.Sprintf(format, args...))
	}
	if l.Concurrency < 0 {
		return bad("Concurrency", "must not be negative, got %d", l.Concurrency)
	}
	if l.CapOnly() {
		return l.validateLine(bad)
	}
	if l.Algorithm < SlidingWindow || l.Algorithm > TokenBucket {
		return bad("Algorithm", "unknown algorithm %d", int(l.Algorithm))
	}
	if err := l.Rate(0).validate(l.Algorithm, field); err != nil {
		return err
	}
	if err := l.validateLine(bad); err != nil {
		return err
	}
	for i, r := range l.InUse() {
		if err := r.validate(l.Algorithm, fmt.Sprintf("%s.Also[%d]", field, i)); err != nil {
			return err
		}
	}
	return nil
}

// validateLine checks the line's settings of l.
func (l Limit) validateLine(bad func(name, format string, args ...any) error) error {
	switch {
	case l.MaxQueue < -1:
		return bad("MaxQueue", "must be -1 (never queue), 0 (default) or positive, got %d", l.MaxQueue)
	case l.QueueTimeout < 0:
		return bad("QueueTimeout", "must not be negative, got %v", l.QueueTimeout)
	case l.Overflow != Reject && l.Overflow != DropOldest:
		return bad("Overflow", "unknown overflow policy %d", int(l.Overflow))
	case l.MaxQueuePerTenant < 0:
		return bad("MaxQueuePerTenant", "must not be negative, got %d", l.MaxQueuePerTenant)
	}
	if l.TenantWeights != "" {
		if s, err := WeightsString(l.Weights()); err != nil || s != l.TenantWeights {
			return bad("TenantWeights", "%q is not name=weight,… in name order, weights 2 to %d", l.TenantWeights, MaxTenantWeight)
		}
	}
	return nil
}

func (r Rate) validate(a Algorithm, field string) error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%w: %s.%s: %s", ErrInvalidConfig, field, name, fmt.Sprintf(format, args...))
	}
	switch {
	case r.Max < 1:
		return bad("Max", "must be at least 1, got %d", r.Max)
	case r.Window < time.Millisecond:
		return bad("Window", "must be at least 1ms, got %v", r.Window)
	case r.Window > MaxWindow:
		return bad("Window", "must be at most %v, got %v", MaxWindow, r.Window)
	case r.Burst < 0:
		return bad("Burst", "must not be negative, got %d", r.Burst)
	case r.Burst != 0 && a != TokenBucket:
		return bad("Burst", "applies only to TokenBucket, got %d with %v", r.Burst, a)
	}
	return nil
}

// InUse returns the rates of Also in use.
func (l Limit) InUse() []Rate { return l.Also[:max(0, l.NumRates()-1)] }

// Scaled returns l with every rate's Max (and Burst) multiplied by f, at least 1 each: the
// limit in force of an adaptive limit whose upstream allows a fraction f of it. f >= 1 (or not
// above 0) returns l.
func (l Limit) Scaled(f float64) Limit {
	if f >= 1 || f <= 0 || l.NumRates() == 0 {
		return l
	}
	scale := func(n int) int {
		if n == 0 {
			return 0
		}
		return max(1, int(float64(n)*f))
	}
	l.Max, l.Burst = scale(l.Max), scale(l.Burst)
	for i := range l.InUse() {
		l.Also[i].Max, l.Also[i].Burst = scale(l.Also[i].Max), scale(l.Also[i].Burst)
	}
	return l
}
