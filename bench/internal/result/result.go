// Package result is the record TestCompare writes with -compare.json and cmd/plots reads: one
// Sample per measured run of one side of one scenario, all of them in one JSON array.
package result

import (
	"encoding/json"
	"fmt"
	"os"
)

// Parts of TestCompare, as Sample.Part names them.
const (
	PartSweep     = "sweep"     // the fast path on one key, by goroutines
	PartProcesses = "processes" // the fast path on one key from three processes
	PartScale     = "scale"     // a drain of lines on many keys: grants/s and memory per waiting request
	PartSlot      = "slot"      // slot → start with many keys at their limit
)

// Sample is one measured window of one side of one scenario. The fields after P99 say where a
// sample of a part stands (its goroutines, processes, keys); the side-by-side tables leave them
// out.
type Sample struct {
	Scenario  string  `json:"scenario"`
	Contender string  `json:"contender"`
	Run       int     `json:"run"`
	Ops       int64   `json:"ops"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	RedisCPU  float64 `json:"redis_cpu_us_per_op"`      // the server process's CPU (used_cpu_*)
	RedisCmd  float64 `json:"redis_commands_us_per_op"` // commandstats time of the commands sent
	Commands  float64 `json:"commands_per_op"`          // commands sent, counted by the hook
	GoCPU     float64 `json:"go_cpu_us_per_op"`         // CPU of the processes that made the requests
	Allocs    float64 `json:"allocs_per_op"`            // their allocations, all of them
	// Ran is how many durable jobs' handlers ran in the window, per operation: the work a
	// scenario that enqueues with workers up did besides its enqueues.
	Ran float64 `json:"handler_runs_per_op,omitempty"`
	P50 float64 `json:"p50_ms,omitempty"`
	P99 float64 `json:"p99_ms,omitempty"`

	Part       string `json:"part,omitempty"`       // one of the Part constants; "" for the side-by-side tables
	Goroutines int    `json:"goroutines,omitempty"` // goroutines making requests, in each process
	Processes  int    `json:"processes,omitempty"`  // processes making requests; 0 means this one
	Keys       int    `json:"keys,omitempty"`       // keys the requests are spread over, or lines drained
	Waiting    int    `json:"waiting,omitempty"`    // requests waiting when the drain began (PartScale)
	// BytesPerWaiting is the growth of the server's used_memory while the requests were
	// queued, divided by Waiting (PartScale).
	BytesPerWaiting float64 `json:"bytes_per_waiting,omitempty"`
}

// ReadFile reads the samples TestCompare wrote to path.
func ReadFile(path string) ([]Sample, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ss []Sample
	if err := json.Unmarshal(raw, &ss); err != nil {
		return nil, fmt.Errorf("result: %s: %w", path, err)
	}
	return ss, nil
}
