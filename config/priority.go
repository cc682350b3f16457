package config

import "fmt"

// Priority orders waiting requests of one key: a higher priority is always served first, and
// requests of one priority are served first come, first served. The order is the order of
// the values: PriorityCritical > PriorityHigh > PriorityNormal > PriorityLow.
//
// The zero value is PriorityNormal, so a Priority left unset (a struct field, an option)
// means Normal. The values are not the numbers stored in Redis: Line maps a priority to its
// line, which is also its number in a stored ticket or job.
type Priority int

const (
	PriorityLow      Priority = -1
	PriorityNormal   Priority = 0
	PriorityHigh     Priority = 1
	PriorityCritical Priority = 2
)

// NumPriorities is how many priorities there are; each has its own line per key, numbered
// 0 (low) to NumPriorities-1 (critical) by Line.
const NumPriorities = 4

// Line is p's line within a key, 0 (PriorityLow) to 3 (PriorityCritical): the n of the
// key's list q:<n>, the priority field of an encoded ticket or job, and the priority the Lua
// scripts take. These numbers are stored in Redis and keep their meaning across versions;
// PriorityOfLine is the inverse. p must be Valid.
func (p Priority) Line() int { return int(p - PriorityLow) }

// PriorityOfLine is the priority whose Line is n; it is Valid only when n is 0 to
// NumPriorities-1.
func PriorityOfLine(n int) Priority { return Priority(n) + PriorityLow }

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
