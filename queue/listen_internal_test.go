package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
)

// TestListenKeepsBurst: wake-ups for many keys sent while the node is busy all reach it, each
// key once, however many there are; none is dropped for want of room.
func TestListenKeepsBurst(t *testing.T) {
	srv := redistest.Server(t)
	rdb := srv.Client(t)
	r := NewRedis(rdb, srv.Prefix(t), config.DefaultIndexShards)
	node := []byte("0123456789abcdef")
	events := liveListener(t, r, r, node)
	ctx := context.Background()
	// PUBLISH answers once the message is on the subscriber's connection: the whole burst is
	// sent before anything here reads it.
	const burst = 2000
	pipe := rdb.Pipeline()
	for i := range burst {
		pipe.Publish(ctx, r.ks.node(node), encodeEvent(Event{Kind: EventClaim, Key: fmt.Sprint(i)}))
		pipe.Publish(ctx, r.ks.node(node), encodeEvent(Event{Kind: EventClaim, Key: fmt.Sprint(i)})) // coalesced
	}
	pipe.Publish(ctx, r.ks.node(node), encodeEvent(Event{Kind: EventClaim, Key: "last"}))
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for timeout := time.After(10 * time.Second); seen["last"] == 0; {
		select {
		case ev := <-events:
			seen[ev.Key]++
		case <-timeout:
			t.Fatalf("the burst's last event not received within 10s; %d events received", len(seen))
		}
	}
	for i := range burst {
		if n := seen[fmt.Sprint(i)]; n == 0 {
			t.Fatalf("event %d of %d lost (%d received)", i, burst, len(seen))
		}
	}
}
