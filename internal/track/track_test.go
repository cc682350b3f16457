package track

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestCountWaitsForEveryLeave: many goroutines enter and leave while Wait waits; after Close,
// Enter fails, and Wait returns true only once every counted one has left.
func TestCountWaitsForEveryLeave(t *testing.T) {
	var c Count
	release := make(chan struct{})
	var started sync.WaitGroup
	for range 50 {
		if !c.Enter() {
			t.Fatal("Enter failed before Close")
		}
		started.Add(1)
		go func() {
			started.Done()
			<-release
			c.Leave()
		}()
	}
	started.Wait()
	c.Close()
	if c.Enter() {
		t.Fatal("Enter succeeded after Close")
	}
	c.Add() // counted whatever
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if c.Wait(short) {
		t.Fatal("Wait returned true with 51 counted")
	}
	if got := c.Running(); got != 51 {
		t.Fatalf("Running = %d, want 51", got)
	}
	done := make(chan bool)
	go func() { done <- c.Wait(context.Background()) }()
	close(release)
	c.Leave()
	if !<-done {
		t.Fatal("Wait returned false with a context that never ends")
	}
	if got := c.Running(); got != 0 {
		t.Fatalf("Running = %d after every Leave", got)
	}
}
