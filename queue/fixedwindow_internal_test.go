package queue

import (
	"context"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
)

// fixedParams is a fixed window of max per window.
func fixedParams(max int, window time.Duration) Params {
	return Params{Limit: config.Limit{Algorithm: config.FixedWindow, Max: max, Window: window}.WithDefaults(), StatsTTL: time.Minute}
}

// admitOnce admits a fresh ticket on key under p and returns the reply, which must be a grant.
func admitOnce(t *testing.T, r *Redis, p Params, key string) AdmitReply {
	t.Helper()
	tks, raws := caseTickets(t, r, admitCase{prios: []config.Priority{config.PriorityNormal}, near: nil}, key)
	rep, err := r.Admit(context.Background(), p, tks[0], raws[0])
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != Granted {
		t.Fatalf("admit on %s: %+v; want granted", key, rep)
	}
	return rep
}

// TestFixedWindowLivesToItsEnd: a fixed window's hash lives until the window's end whatever
// the grants in between — set when the window begins, not moved by later grants of the same
// window — and when the window's length changes at run time with its start unchanged (1 s,
// then 2 s, both begun on the same even second), until the longer window's end: the count
// made under the shorter one is still there after the shorter one's end, and still counted.
func TestFixedWindowLivesToItsEnd(t *testing.T) {
	r := loadedRedis(t)
	ctx := context.Background()
	const sec = int64(time.Second / time.Microsecond)

	p := fixedParams(100, 10*time.Second)
	w := r.ks.perKey("ten", p.Limit)[kWindow]
	for range 3 {
		rep := admitOnce(t, r, p, "ten")
		end := rep.Now - rep.Now%(10*sec) + 10*sec // µs
		now, _ := r.Time(ctx)
		ttl := r.rdb.PTTL(ctx, w).Val().Milliseconds()
		// PEXPIRE counts from its own clock reading, a little after the script's TIME, and
		// rounds up to the ms.
		if ttl <= 0 || ttl > (end-now)/1000+20 {
			t.Fatalf("window's TTL %d ms with %d ms left of the window", ttl, (end-now)/1000)
		}
	}

	one, two := fixedParams(5, time.Second), fixedParams(5, 2*time.Second)
	w = r.ks.perKey("grown", one.Limit)[kWindow]
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			t.Fatal("five attempts missed the first half of an even second")
		}
		now, err := r.Time(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// To 10 ms into the next even second.
		time.Sleep(time.Duration(2*sec-now%(2*sec)+10_000) * time.Microsecond)
		r.rdb.Del(ctx, w)
		a, b := admitOnce(t, r, one, "grown"), admitOnce(t, r, two, "grown")
		start := a.Now - a.Now%(2*sec)
		if b.Now-start >= sec/2 { // too late for the rest to run within the shorter window
			continue
		}
		// Past the shorter window's end, within the longer one's.
		now, _ = r.Time(ctx)
		time.Sleep(time.Duration(start+sec+sec/4-now) * time.Microsecond)
		if n, err := r.rdb.HGet(ctx, w, "n").Int(); err != nil || n != 2 {
			t.Fatalf("0.25 s past the 1 s window's end, within the 2 s one: count %d, %v; want 2", n, err)
		}
		c := admitOnce(t, r, two, "grown")
		if c.Now-start >= 2*sec {
			continue // the 2 s window ended meanwhile
		}
		if c.Remaining != 2 {
			t.Fatalf("third grant of the 2 s window: %d remaining; want 2 (5 less three)", c.Remaining)
		}
		return
	}
}

// TestSlidingLogLivesItsWindow: a sliding log's TTL is its window's length from its newest
// grant, whatever window the calls before had — lone admits one after another on keys of
// three lengths (a key's changed at run time among them), and one call admitting keys of two.
func TestSlidingLogLivesItsWindow(t *testing.T) {
	r := loadedRedis(t)
	ctx := context.Background()
	sliding := func(window time.Duration) Params {
		return Params{Limit: config.Limit{Max: 100, Window: window}.WithDefaults(), StatsTTL: time.Minute}
	}
	// ttlIs checks the TTL of key's log under p: its window, less what PEXPIRE's own clock
	// reading after the script's TIME took (a second is far more than it can be).
	ttlIs := func(what, key string, p Params) {
		t.Helper()
		got := r.rdb.PTTL(ctx, r.ks.perKey(key, p.Limit)[kWindow]).Val()
		if got > p.Limit.Window || got < p.Limit.Window-time.Second {
			t.Fatalf("%s: %s's log has a TTL of %v, want %v", what, key, got, p.Limit.Window)
		}
	}
	ten, minute, two := sliding(10*time.Second), sliding(time.Minute), sliding(2*time.Second)
	for _, c := range []struct {
		what, key string
		p         Params
	}{{"10 s", "a", ten}, {"a minute", "b", minute}, {"10 s again", "a", ten}, {"a changed to 2 s", "a", two}, {"a minute again", "b", minute}} {
		admitOnce(t, r, c.p, c.key)
		ttlIs(c.what, c.key, c.p)
	}
	// One call admitting keys of two lengths, several tickets each, twice in a row.
	for range 2 {
		var batch []*admitCall
		for _, k := range []struct {
			key string
			p   Params
		}{{"c", ten}, {"d", minute}, {"c", ten}, {"d", minute}} {
			tks, raws := caseTickets(t, r, admitCase{prios: []config.Priority{config.PriorityNormal}}, k.key)
			batch = append(batch, &admitCall{a: callArgs{p: k.p, t: tks[0], raw: raws[0]}})
		}
		r.admitAll(ctx, batch)
		for i, c := range batch {
			if c.err != nil || c.rep.Outcome != Granted {
				t.Fatalf("batch ticket %d: %+v, %v; want granted", i, c.rep, c.err)
			}
		}
		ttlIs("one call", "c", ten)
		ttlIs("one call", "d", minute)
	}
}
