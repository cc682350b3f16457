package queue

import (
	"context"
	"errors"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
)

// TestCRC16MatchesRedis: the slot the circuit keeps a key under is the slot Redis Cluster
// gives every per-key structure of it.
func TestCRC16MatchesRedis(t *testing.T) {
	cl := redistest.SharedCluster(t)
	rdb := cl.Client(t)
	ks := keyspace{prefix: "x"}
	for _, key := range []string{"a", "foo", "openai", "stripe:acct_42", "ключ", "123456789"} {
		for _, name := range ks.withJobs(key, config.Limit{}) {
			want, err := rdb.ClusterKeySlot(context.Background(), name).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got := int64(hashSlot(key)); got != want {
				t.Errorf("slot of %q (%s): %d, Redis says %d", key, name, got, want)
			}
		}
	}
}

// TestCircuitPerSlot: on a cluster, an outage opens the circuit of the failed key's slot only
// (every key of that slot); off a cluster, of every key. Once its window has passed, one
// admission tries Redis while the others still fail at once. An answer closes it; a short
// silence or a pool with no free connection changes nothing.
func TestCircuitPerSlot(t *testing.T) {
	refused := syscall.ECONNREFUSED
	c := newCircuit(true)
	other, same := "", ""
	for i := 0; other == "" || same == ""; i++ {
		k := "k" + strconv.Itoa(i)
		switch {
		case hashSlot(k) == hashSlot("a"):
			same = k
		case other == "":
			other = k
		}
	}
	c.record("a", refused, 0)
	if !c.open("a") || !c.open(same) || c.open(other) {
		t.Fatalf("after an outage of a: open a %v, %s (same slot) %v, %s (another) %v; want true, true, false",
			c.open("a"), same, c.open(same), other, c.open(other))
	}
	c.record("a", ErrNoAnswer, SilentOutage/2)
	c.record("a", redis.ErrPoolTimeout, 0)
	if !c.open("a") {
		t.Fatal("a short silence or a busy pool closed the circuit")
	}
	// The window passes: one admission of the slot takes the trial, the others still fail at
	// once; the trial meets Redis still out and the window starts again.
	c.of("a").Store(time.Now().Add(-time.Millisecond).UnixNano())
	if c.open(same) {
		t.Fatal("no trial once the window had passed")
	}
	if !c.open("a") || !c.open(same) {
		t.Fatal("a second admission went to Redis while the trial was under way")
	}
	c.record(same, refused, SilentOutage)
	if !c.open("a") {
		t.Fatal("a failed trial closed the circuit")
	}
	c.record(same, nil, 0)
	if c.open("a") {
		t.Fatal("an answer in the slot left it open")
	}
	c.record("a", ErrNoAnswer, SilentOutage)
	if !c.open("a") {
		t.Fatal("no answer for SilentOutage left the circuit closed")
	}

	single := newCircuit(false)
	single.record("a", refused, 0)
	if !single.open(other) {
		t.Fatal("off a cluster, an outage did not open the circuit of every key")
	}
}

// TestAdmitCircuit: once an admission met Redis down, admissions fail at once with
// ErrUnavailable, sending nothing, for circuitWindow; then one tries Redis again, and with
// Redis back the key is served.
func TestAdmitCircuit(t *testing.T) {
	t.Parallel()
	srv := redistest.Fresh(t)
	rdb := srv.Client(t)
	hook := &redistest.CommandCounter{}
	rdb.AddHook(hook)
	r := NewRedis(rdb, srv.Prefix(t), 1)
	ctx := context.Background()
	if err := r.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	p := Params{Limit: config.Limit{Max: 100, Window: time.Minute}.WithDefaults(), StatsTTL: time.Minute}
	admit := func() (int64, error) {
		id := uuid.New()
		tk := &Ticket{ID: id[:], Key: "k", Deadline: time.Now().Add(time.Minute).UnixMicro(), Owner: id[:]}
		raw, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		before := hook.Count()
		_, err = r.Admit(ctx, p, tk, raw)
		return hook.Count() - before, err
	}
	if _, err := admit(); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if _, err := admit(); !Outage(err) {
		t.Fatalf("admit with Redis down: %v; want an outage", err)
	}
	if sent, err := admit(); !errors.Is(err, config.ErrUnavailable) || sent != 0 {
		t.Fatalf("admit after an outage: %v, %d commands; want ErrUnavailable, nothing sent", err, sent)
	}
	srv.Restart(t)
	deadline := time.Now().Add(circuitWindow + 10*time.Second)
	for {
		sent, err := admit()
		if err == nil {
			break
		}
		if sent == 0 && !errors.Is(err, config.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("admit once Redis is back: %v (%d commands)", err, sent)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
