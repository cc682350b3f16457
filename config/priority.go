package config

import "fmt"

// Priority orders waiting requests of one key: a higher priority is always served first, and
// requests of one priority are served first come, first served.
type Priority int

const (
	PriorityLow Priority = iota
	PriorityNormal
	PriorityHigh
	PriorityCritical
)

// NumPriorities is how many priorities there are; each has its own line per key.
const NumPriorities = 4

func (p Priority) String() string {
	switch p {
	case PriorityLow:
		return "low"
	case PriorityNormal:
		return "normal"
	case PriorityHigh:
		return "high"
	case PriorityCritical:
		return "critical"
	}
	return fmt.Sprintf("Priority(%d)", int(p))
}

// Valid reports whether p is one of the four priorities.
func (p Priority) Valid() bool { return p >= PriorityLow && p <= PriorityCritical }

// ParsePriority turns "low", "normal", "high" or "critical" into a Priority.
func ParsePriority(s string) (Priority, error) {
	for p := PriorityLow; p <= PriorityCritical; p++ {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: priority %q: want low, normal, high or critical", ErrInvalidConfig, s)
}
