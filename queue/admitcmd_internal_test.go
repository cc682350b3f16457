package queue

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
)

// admitCase is a key and the tickets admitted to it: what one AdmitMany entry must answer as
// the same admits sent one by one would.
type admitCase struct {
	name  string
	p     Params
	prios []config.Priority
	// near marks tickets due in a second, which cannot wait for a slot a minute away.
	near map[int]bool
	// costs are the tickets' costs, by index (nil: each 1).
	costs []int64
}

func admitCases() []admitCase {
	n, h, l, c := config.PriorityNormal, config.PriorityHigh, config.PriorityLow, config.PriorityCritical
	prios := []config.Priority{n, n, h, l, n, c, n, l, h, n}
	var cases []admitCase
	for _, alg := range []config.Algorithm{config.SlidingWindow, config.FixedWindow, config.TokenBucket} {
		lim := config.Limit{Algorithm: alg, Max: 3, Window: time.Minute, Burst: 3, MaxQueue: 4}.WithDefaults()
		drop := lim
		drop.Overflow = config.DropOldest
		never := lim
		never.MaxQueue = -1
		add := func(name string, l config.Limit, ext int64, head bool, near map[int]bool) {
			cases = append(cases, admitCase{name: fmt.Sprintf("%s-%d", name, alg), near: near, prios: prios,
				p: Params{Limit: l, ExtPause: ext, StatsTTL: time.Minute, Head: head}})
		}
		add("reject", lim, NotPaused, false, map[int]bool{6: true})
		add("twin", lim, NotPaused, false, map[int]bool{6: true}) // the same settings, key after key
		add("drop", drop, NotPaused, false, nil)
		add("paused", lim, PausedForever, false, nil)
		add("head", drop, NotPaused, true, nil)
		add("never", never, NotPaused, false, nil)
		// Two rates, one of cost units, and a concurrency cap: a big ticket at the head of the
		// line holds back a small one behind it; the cap holds back what the rates would admit.
		units := config.Limit{Algorithm: alg, Max: 3, Window: time.Minute, Burst: 3, MaxQueue: 4,
			Also: [config.MaxAlso]config.Rate{{Max: 10, Window: time.Minute, Units: true}}}.WithDefaults()
		add("units", units, NotPaused, false, map[int]bool{6: true})
		cases[len(cases)-1].costs = []int64{4, 7, 2, 5, 1, 1, 3, 2, 1, 1}
		capped := lim
		capped.Concurrency = 2
		add("cap", capped, NotPaused, false, map[int]bool{6: true})
		both := units
		both.Concurrency, both.Overflow = 2, config.DropOldest
		add("both", both, NotPaused, false, nil)
		cases[len(cases)-1].costs = []int64{2, 3, 9, 1, 4, 1, 1, 2, 5, 1}
		// A shadow limit grants every ticket but a paused key's, counting what it would have done.
		shadow := lim
		shadow.Shadow = true
		add("shadow", shadow, NotPaused, false, nil)
		add("shadow-paused", shadow, PausedForever, false, nil)
		shadowUnits := units
		shadowUnits.Shadow, shadowUnits.Concurrency = true, 2
		add("shadow-units", shadowUnits, NotPaused, false, nil)
		cases[len(cases)-1].costs = []int64{4, 7, 2, 5, 1, 1, 3, 2, 1, 1}
	}
	return cases
}

// caseTickets makes the tickets of c for key, with their encodings.
func caseTickets(t *testing.T, r *Redis, c admitCase, key string) ([]*Ticket, [][]byte) {
	t.Helper()
	now, err := r.Time(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	owner := make([]byte, idLen)
	rand.Read(owner)
	tks := make([]*Ticket, len(c.prios))
	raws := make([][]byte, len(c.prios))
	for i, prio := range c.prios {
		id := make([]byte, idLen)
		rand.Read(id)
		due := now + time.Hour.Microseconds()
		if c.near[i] {
			due = now + time.Second.Microseconds()
		}
		tks[i] = &Ticket{ID: id, Key: key, Priority: prio, Enqueued: now, Deadline: due, Owner: owner}
		if c.costs != nil {
			tks[i].Cost = c.costs[i]
		}
		if raws[i], err = tks[i].Encode(); err != nil {
			t.Fatal(err)
		}
	}
	return tks, raws
}

// clearOfMinuteEnd waits, when the server's clock is in the last ten seconds of a minute, for
// the next minute: the cases' fixed windows of a minute then keep their boundary more than a
// second from every ticket due in a second (near), which must find no slot before its deadline,
// in the one-by-one calls and in the batches alike.
func clearOfMinuteEnd(t *testing.T, r *Redis) {
	t.Helper()
	now, err := r.Time(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	minute := time.Minute.Microseconds()
	if left := minute - now%minute; left < 10*time.Second.Microseconds() {
		time.Sleep(time.Duration(left+10_000) * time.Microsecond)
	}
}

// lines returns, for each of key's lines, the indexes in raws of the tickets waiting in it.
func lines(t *testing.T, r *Redis, key string, raws [][]byte) [config.NumPriorities][]int {
	t.Helper()
	var out [config.NumPriorities][]int
	names := r.ks.perKey(key, config.Limit{})
	for q := range config.NumPriorities {
		got, err := r.rdb.LRange(context.Background(), names[1+q], 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			out[q] = append(out[q], indexOf(raws, []byte(g)))
		}
	}
	return out
}

func indexOf(raws [][]byte, raw []byte) int {
	for i, r := range raws {
		if string(r) == string(raw) {
			return i
		}
	}
	return -1
}

// countedRedis opens a backend on a Redis of open's, its scripts loaded, with a counter of the
// script calls it sends.
func countedRedis(t *testing.T, open func(t *testing.T) (redis.UniversalClient, string)) (*Redis, *redistest.CommandCounter) {
	t.Helper()
	rdb, prefix := open(t)
	hook := &redistest.CommandCounter{Names: []string{"evalsha", "eval", "fcall"}}
	rdb.AddHook(hook)
	r := NewRedis(rdb, prefix, 4)
	if err := r.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, hook
}

// onEachTopology runs test on each topology (named name), in parallel, with a Redis backend
// whose script calls hook counts.
func onEachTopology(t *testing.T, test func(t *testing.T, name string, r *Redis, hook *redistest.CommandCounter)) {
	for name, open := range topologies {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, hook := countedRedis(t, open)
			test(t, name, r, hook)
		})
	}
}

// TestAdmitManyAsSequentialAdmits: the tickets of several keys, interleaved, admitted in one
// AdmitMany call (on a cluster, one per key), get the answers the same tickets get when admitted
// one by one in the same order, and leave the same lines: grants in arrival order while the
// limit allows, then queued by priority and arrival, refused when full, evictions, a paused key,
// a key that never queues, a ticket that cannot wait long enough, retries at the head.
// The batch goes as admitAll sends it, and as admitSolo does (a flight alone in the air): on a
// single Redis its keys go lean first, and the tickets they do not grant go again in full.
func TestAdmitManyAsSequentialAdmits(t *testing.T) {
	for _, way := range []string{"all", "solo"} {
		t.Run(way, func(t *testing.T) { admitManyAsSequential(t, way == "solo") })
	}
}

func admitManyAsSequential(t *testing.T, solo bool) {
	onEachTopology(t, func(t *testing.T, name string, r *Redis, hook *redistest.CommandCounter) {
		ctx := context.Background()
		clearOfMinuteEnd(t, r)
		cases := admitCases()
		one := make([][]AdmitReply, len(cases))
		raws1 := make([][][]byte, len(cases))
		for i, c := range cases {
			tks, raws := caseTickets(t, r, c, "one-"+c.name)
			raws1[i] = raws
			for j, tk := range tks {
				rep, err := r.admitOne(ctx, callArgs{p: c.p, t: tk, raw: raws[j]})
				if err != nil {
					t.Fatalf("%s: ticket %d: %v", c.name, j, err)
				}
				one[i] = append(one[i], rep)
			}
		}
		// The same, every key's tickets in one batch, taking turns.
		var batch []*admitCall
		rawsN := make([][][]byte, len(cases))
		tksN := make([][]*Ticket, len(cases))
		for i, c := range cases {
			tksN[i], rawsN[i] = caseTickets(t, r, c, "many-"+c.name)
		}
		for j := range cases[0].prios {
			for i, c := range cases {
				batch = append(batch, &admitCall{a: callArgs{p: c.p, t: tksN[i][j], raw: rawsN[i][j]}})
			}
		}
		before := hook.Count()
		if solo {
			r.admitSolo(ctx, batch)
		} else {
			r.admitAll(ctx, batch)
		}
		calls := hook.Count() - before
		want := int64(1)
		if solo {
			want = 2 // the lean call, then one for every ticket a lean key did not grant
		}
		if name == "redis" && calls != want {
			t.Errorf("%d admits of %d keys took %d script calls, want %d", len(batch), len(cases), calls, want)
		}
		if want := int64(len(cases)); name == "cluster" && calls != want {
			t.Errorf("%d admits of %d keys took %d script calls, want %d (one per key)", len(batch), len(cases), calls, want)
		}
		for i, c := range cases {
			for j := range c.prios {
				call := batch[j*len(cases)+i]
				if call.err != nil {
					t.Fatalf("%s: ticket %d: %v", c.name, j, call.err)
				}
				compareAdmit(t, fmt.Sprintf("%s: ticket %d", c.name, j), one[i][j], raws1[i], call.rep, rawsN[i])
			}
			if c.p.Limit.Algorithm == config.SlidingWindow {
				// The sliding log holds the ids of exactly the tickets told they were granted.
				var ids []string
				for j, tk := range tksN[i] {
					if batch[j*len(cases)+i].rep.Outcome == Granted {
						ids = append(ids, string(tk.ID))
					}
				}
				w, err := r.rdb.ZRange(ctx, r.ks.perKey("many-"+c.name, config.Limit{})[kWindow], 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(ids)
				slices.Sort(w)
				if !slices.Equal(ids, w) {
					t.Errorf("%s: the window holds %q, want the granted tickets' ids %q", c.name, w, ids)
				}
			}
			if c.p.Limit.Shadow {
				compareShadow(t, r, c)
			}
			seq, many := lines(t, r, "one-"+c.name, raws1[i]), lines(t, r, "many-"+c.name, rawsN[i])
			if fmt.Sprint(seq) != fmt.Sprint(many) {
				t.Errorf("%s: lines (ticket indexes by priority) %v, one by one %v", c.name, many, seq)
			}
		}
	})
}

// compareShadow checks that the shadow counters of c's keys admitted one by one and in one
// batch agree: the same counts, and the would-be waits within a second per ticket.
func compareShadow(t *testing.T, r *Redis, c admitCase) {
	t.Helper()
	read := func(key string) map[string]int64 {
		st, err := r.State(context.Background(), key, c.p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Counters
	}
	one, many := read("one-"+c.name), read("many-"+c.name)
	for _, name := range []string{CountShadowAllowed, CountShadowQueued, CountShadowRefused} {
		if one[name] != many[name] {
			t.Errorf("%s: %s %d, one by one %d", c.name, name, many[name], one[name])
		}
	}
	if d := many[CountShadowWait] - one[CountShadowWait]; max(d, -d) > int64(len(c.prios))*time.Second.Microseconds() {
		t.Errorf("%s: would-be waits %dµs, one by one %dµs", c.name, many[CountShadowWait], one[CountShadowWait])
	}
	if c.p.ExtPause == NotPaused && one[CountShadowAllowed]+one[CountShadowQueued]+one[CountShadowRefused] != int64(len(c.prios)) {
		t.Errorf("%s: shadow counters %v, want one count per ticket", c.name, one)
	}
}

// compareAdmit checks that got, an answer of AdmitMany, says what want, the same admit's
// answer when sent on its own, said (evicted tickets by their index in their own key's raws;
// times to within 5 seconds, more than separates the admits sent one by one even on a loaded
// machine (1.2s seen on the cluster), far less than the minute-long windows of the cases).
func compareAdmit(t *testing.T, what string, want AdmitReply, wantRaws [][]byte, got AdmitReply, gotRaws [][]byte) {
	t.Helper()
	near := func(a, b int64) bool { return max(a-b, b-a) <= 5*time.Second.Microseconds() }
	if got.Outcome != want.Outcome || got.Remaining != want.Remaining || got.LineBefore != want.LineBefore ||
		indexOf(gotRaws, got.Evicted) != indexOf(wantRaws, want.Evicted) || (got.Evicted == nil) != (want.Evicted == nil) ||
		string(got.LineSuffix) != string(want.LineSuffix) ||
		(got.Earliest == PausedForever) != (want.Earliest == PausedForever) || !near(got.ResetAfter, want.ResetAfter) ||
		got.Shadow != want.Shadow || (got.ShadowWait > 0) != (want.ShadowWait > 0) {
		t.Errorf("%s: %+v, one by one %+v", what, got, want)
	}
}

// TestAdmitManyKeyFailsAlone: a key whose part of an AdmitMany call fails (its window has the
// wrong type) fails its own tickets with the script's error; the other keys' are answered.
func TestAdmitManyKeyFailsAlone(t *testing.T) {
	r := loadedRedis(t)
	ctx := context.Background()
	c := admitCases()[0]
	if err := r.rdb.Set(ctx, r.ks.perKey("bad", c.p.Limit)[kWindow], "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	goodT, goodR := caseTickets(t, r, c, "good")
	badT, badR := caseTickets(t, r, c, "bad")
	batch := []*admitCall{{a: callArgs{p: c.p, t: goodT[0], raw: goodR[0]}}, {a: callArgs{p: c.p, t: badT[0], raw: badR[0]}},
		{a: callArgs{p: c.p, t: badT[1], raw: badR[1]}}, {a: callArgs{p: c.p, t: goodT[1], raw: goodR[1]}}}
	r.admitAll(ctx, batch)
	for _, i := range []int{0, 3} {
		if batch[i].err != nil || batch[i].rep.Outcome != Granted {
			t.Errorf("good key's admit %d: %+v, %v; want granted", i, batch[i].rep, batch[i].err)
		}
	}
	for _, i := range []int{1, 2} {
		if batch[i].err == nil || !strings.Contains(batch[i].err.Error(), "WRONGTYPE") {
			t.Errorf("bad key's admit %d: %+v, %v; want its WRONGTYPE", i, batch[i].rep, batch[i].err)
		}
	}
}

// TestParseAdmitManyMalformed: a malformed entry is an error, never a panic.
func TestParseAdmitManyMalformed(t *testing.T) {
	for _, v := range []any{
		nil, "x", []any{}, []any{int64(1), int64(2)},
		[]any{int64(1), int64(3), int64(5), int64(0), int64(0)},                                                       // more granted than tickets
		[]any{int64(1), int64(2), int64(1), int64(0), int64(0)},                                                       // more granted than free
		[]any{int64(1), int64(1), int64(5), int64(0), int64(0)},                                                       // a ticket's answer missing
		[]any{int64(1), int64(1), int64(5), int64(0), int64(0), int64(9), int64(0), int64(0), int64(0), "", int64(0)}, // unknown outcome
		[]any{int64(1), int64(1), int64(5), int64(0), int64(0), int64(2), int64(0), "x", int64(0), "", int64(0)},
		[]any{int64(1), int64(1), int64(5), int64(0), int64(0), int64(2), int64(0), int64(0), int64(0), int64(7), int64(0)},
		[]any{int64(1), int64(1), int64(5), int64(0), int64(0), int64(2), int64(0), int64(0), int64(0), "", "x"},
	} {
		if reps, err := parseAdmitMany(v, 2, false, false, false); err == nil {
			t.Errorf("parseAdmitMany(%v) = %+v, want an error", v, reps)
		}
	}
}

// TestAdmitManyCrossSlotFallsBack: a plain client of a server in cluster mode (one node of a
// cluster, here, with keys of its own slots) gets CROSSSLOT for an AdmitMany over several keys,
// before anything ran; the admits are sent again one call per key, and so are later ones.
func TestAdmitManyCrossSlotFallsBack(t *testing.T) {
	cl := redistest.SharedCluster(t)
	prefix := cl.Prefix(t)
	var keys []string
	for i := 0; len(keys) < 3; i++ {
		if k := fmt.Sprintf("x%d", i); cl.MasterOf(t, k) == 0 {
			keys = append(keys, k)
		}
	}
	rdb := cl.Node(0).Client(t)
	hook := &redistest.CommandCounter{Names: []string{"evalsha", "eval", "fcall"}}
	rdb.AddHook(hook)
	r := NewRedis(rdb, prefix, 4)
	ctx := context.Background()
	if err := r.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	c := admitCases()[0]
	c.p.Limit.Max = 1000
	for round := range 2 {
		var batch []*admitCall
		for _, k := range keys {
			tks, raws := caseTickets(t, r, c, k)
			batch = append(batch, &admitCall{a: callArgs{p: c.p, t: tks[0], raw: raws[0]}}, &admitCall{a: callArgs{p: c.p, t: tks[1], raw: raws[1]}})
		}
		before := hook.Count()
		r.admitAll(ctx, batch)
		for i, call := range batch {
			if call.err != nil || call.rep.Outcome != Granted {
				t.Fatalf("round %d, admit %d: %+v, %v; want granted", round, i, call.rep, call.err)
			}
		}
		want := int64(len(keys)) // one call per key, after the refused one in the first round
		if round == 0 {
			want++
		}
		if got := hook.Count() - before; got != want {
			t.Errorf("round %d: %d script calls, want %d", round, got, want)
		}
	}
}

// TestAdmitManyTicketSentAgain: a ticket the sliding log holds already, admitted again in an
// AdmitMany call (the Redis client sends an admit again when a connection error cut its reply),
// is granted without a second entry in the log, and the slots told to the tickets queued behind
// it in the same call count the log's entries as they are: the first a window after it, the
// second two windows after (were the entry counted twice, the second would be read from an entry
// that is not there, and fail).
func TestAdmitManyTicketSentAgain(t *testing.T) {
	onEachTopology(t, func(t *testing.T, _ string, r *Redis, _ *redistest.CommandCounter) {
		ctx := context.Background()
		n := config.PriorityNormal
		c := admitCase{prios: []config.Priority{n, n, n},
			p: Params{Limit: config.Limit{Max: 2, Window: time.Minute, MaxQueue: 4}.WithDefaults(), ExtPause: NotPaused, StatsTTL: time.Minute}}
		tks, raws := caseTickets(t, r, c, "again")
		if rep, err := r.admitOne(ctx, callArgs{p: c.p, t: tks[0], raw: raws[0]}); err != nil || rep.Outcome != Granted {
			t.Fatalf("first admit: %+v, %v; want granted", rep, err)
		}
		batch := make([]*admitCall, len(tks))
		for i := range tks {
			batch[i] = &admitCall{a: callArgs{p: c.p, t: tks[i], raw: raws[i]}}
		}
		r.admitAll(ctx, batch)
		for i, want := range []Outcome{Granted, Queued, Queued} {
			if call := batch[i]; call.err != nil || call.rep.Outcome != want {
				t.Fatalf("ticket %d: %+v, %v; want outcome %v", i, call.rep, call.err, want)
			}
		}
		w, err := r.rdb.ZRangeWithScores(ctx, r.ks.perKey("again", config.Limit{})[kWindow], 0, -1).Result()
		if err != nil || len(w) != 1 || w[0].Member != string(tks[0].ID) {
			t.Fatalf("the window holds %v (%v), want the first ticket once", w, err)
		}
		at, window := int64(w[0].Score), time.Minute.Microseconds()
		for i, want := range []int64{at + window, at + 2*window} {
			if got := batch[1+i].rep.Earliest; got != want {
				t.Errorf("queued ticket %d: earliest slot %d, want %d", i+1, got, want)
			}
		}
	})
}

// keysHook records the KEYS count of each script call a client sends (its record, added as
// redistest.EachCommand).
type keysHook struct {
	mu   sync.Mutex
	keys []int64
}

func (h *keysHook) record(cmd redis.Cmder) {
	if a := cmd.Args(); len(a) > 2 && slices.Contains([]string{"evalsha", "fcall"}, cmd.Name()) {
		if n, ok := a[2].(int); ok {
			h.mu.Lock()
			h.keys = append(h.keys, int64(n))
			h.mu.Unlock()
		}
	}
}

// took returns the KEYS counts recorded since the last call.
func (h *keysHook) took() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := h.keys
	h.keys = nil
	return k
}

// loadedRedis returns a Redis backend on a server of its own, its scripts loaded.
func loadedRedis(t *testing.T) *Redis {
	t.Helper()
	srv := redistest.Server(t)
	r := NewRedis(srv.Client(t), srv.Prefix(t), 4)
	if err := r.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// keysCounted returns loadedRedis's backend with a hook that records the KEYS count of each
// script call.
func keysCounted(t *testing.T) (*Redis, *keysHook) {
	r := loadedRedis(t)
	hook := &keysHook{}
	r.rdb.AddHook(redistest.EachCommand(hook.record))
	return r, hook
}

// TestLeanAdmitsWhileNotBusy: a key goes lean (seven KEYS) to a batch's admit until its admit
// meets its limit: then the tickets the lean call did not grant go again in full (eleven), in
// order, and the key stays busy — its next batches go in full, one call — until a batch of its
// is all granted with something left; a batch whose grants take the window's last leaves it
// busy too. A batch with a ticket that may not wait goes in full.
func TestLeanAdmitsWhileNotBusy(t *testing.T) {
	r, hook := keysCounted(t)
	ctx := context.Background()
	n := config.PriorityNormal
	c := admitCase{prios: []config.Priority{n, n, n}, p: Params{Limit: config.Limit{Max: 3, Window: time.Minute, MaxQueue: 10}.WithDefaults(),
		ExtPause: NotPaused, StatsTTL: time.Minute}}
	busy := r.ks.cached(cacheKey("lean", c.p.Limit, false)).busy
	nowait := -1 // a ticket of round's whose deadline is at once, that may not wait (-1: none)
	round := func(what string, want []Outcome, keys ...int64) [][]byte {
		t.Helper()
		tks, raws := caseTickets(t, r, c, "lean")
		if nowait >= 0 {
			tks[nowait].Deadline = tks[nowait].Enqueued + 1
			var err error
			if raws[nowait], err = tks[nowait].Encode(); err != nil {
				t.Fatal(err)
			}
		}
		batch := make([]*admitCall, len(want))
		for i := range batch {
			batch[i] = &admitCall{a: callArgs{p: c.p, t: tks[i], raw: raws[i]}}
		}
		r.admitSolo(ctx, batch)
		for i, w := range want {
			if call := batch[i]; call.err != nil || call.rep.Outcome != w {
				t.Fatalf("%s: ticket %d: %+v, %v; want outcome %v", what, i, call.rep, call.err, w)
			}
		}
		if got := hook.took(); !slices.Equal(got, keys) {
			t.Fatalf("%s: script calls of %v KEYS, want %v", what, got, keys)
		}
		return raws
	}
	round("under the limit", []Outcome{Granted, Granted}, 7)
	if busy.Load() {
		t.Fatal("busy after a batch all granted")
	}
	round("at the limit", []Outcome{Granted, Queued, Queued}, 7, 11)
	if !busy.Load() {
		t.Fatal("not busy after a batch that queued")
	}
	round("busy", []Outcome{Queued, Queued}, 11)
	// The line and the window gone, a batch of the busy key goes in full, all granted, and the
	// key's next goes lean again.
	if err := r.rdb.Del(ctx, r.ks.perKey("lean", c.p.Limit)...).Err(); err != nil {
		t.Fatal(err)
	}
	round("busy, all granted", []Outcome{Granted, Granted}, 11)
	raws := round("lean again", []Outcome{Granted, Queued, Queued}, 7, 11)
	// The tickets the lean call did not grant went to the line in the order they came.
	if got := lines(t, r, "lean", raws)[n.Line()]; !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("the line holds tickets %v, want [1 2]", got)
	}
	// A batch with a ticket that may not wait goes in full: refused in that one call.
	if err := r.rdb.Del(ctx, r.ks.perKey("lean", c.p.Limit)...).Err(); err != nil {
		t.Fatal(err)
	}
	round("busy, all granted", []Outcome{Granted, Granted}, 11)
	nowait = 1
	round("one may not wait", []Outcome{Granted, WouldExceed}, 11)
	nowait = -1
	// A batch whose grants take the window's last leaves the key busy.
	if err := r.rdb.Del(ctx, r.ks.perKey("lean", c.p.Limit)...).Err(); err != nil {
		t.Fatal(err)
	}
	round("busy, all granted", []Outcome{Granted}, 11)
	round("the window's last", []Outcome{Granted, Granted}, 7)
	if !busy.Load() {
		t.Fatal("not busy after a batch that took the window's last")
	}
	round("spent", []Outcome{Queued, Queued}, 11)
}

// TestLoneAdmitGoesLean: a lone admit (Redis.Admit with nobody else calling) of a key that is
// not busy goes lean (seven KEYS) and answers as the full admit does; one the lean call does not
// grant — the window taken by another process, a pause, a cost more than is left — goes again
// in full (eleven), the lean call having written nothing, and the key stays busy, its admits in
// full, until one is granted with something left; so does a key whose grant took the window's
// last. A ticket that may not wait in line (its deadline at once, or a limit that never queues)
// and a shadow limit's go in full: a refusal at once is one command.
func TestLoneAdmitGoesLean(t *testing.T) {
	r, hook := keysCounted(t)
	rdb, ctx := r.rdb, context.Background()
	other := NewRedis(rdb, r.ks.prefix, 4) // another process: names and busy flags of its own
	n := config.PriorityNormal
	limit := config.Limit{Max: 3, Window: time.Minute, MaxQueue: 10}.WithDefaults()
	params := func(l config.Limit) Params { return Params{Limit: l, ExtPause: NotPaused, StatsTTL: time.Minute} }
	// admit admits one ticket of key, of cost (0: 1) and wait (0: an hour), alone, by b, and
	// checks its outcome and the KEYS counts of the script calls it made.
	admitBy := func(b *Redis, what, key string, p Params, cost int64, wait time.Duration, want Outcome, keys ...int64) (AdmitReply, []byte) {
		t.Helper()
		c := admitCase{prios: []config.Priority{n}, p: p}
		if cost > 0 {
			c.costs = []int64{cost}
		}
		tks, raws := caseTickets(t, r, c, key)
		if wait > 0 {
			tks[0].Deadline = tks[0].Enqueued + wait.Microseconds()
			var err error
			if raws[0], err = tks[0].Encode(); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := b.Admit(ctx, p, tks[0], raws[0])
		if err != nil || rep.Outcome != want {
			t.Fatalf("%s: %+v, %v; want outcome %v", what, rep, err, want)
		}
		if got := hook.took(); b == r && !slices.Equal(got, keys) {
			t.Fatalf("%s: script calls of %v KEYS, want %v", what, got, keys)
		}
		return rep, raws[0]
	}
	admit := func(what, key string, p Params, cost int64, want Outcome, keys ...int64) (AdmitReply, []byte) {
		t.Helper()
		return admitBy(r, what, key, p, cost, 0, want, keys...)
	}
	p := params(limit)
	busy := r.ks.cached(cacheKey("lone", limit, false)).busy
	window := r.ks.perKey("lone", limit)[kWindow]

	// A lean grant answers what the full admit answers: compared with an admit of a busy key
	// (sent in full) at the same point of its window.
	for i := range 2 {
		lean, _ := admit("under the limit", "lone", p, 0, Granted, 7)
		r.ks.cached(cacheKey("full", limit, false)).busy.Store(true) // a grant clears it
		full, _ := admit("in full", "full", p, 0, Granted, 11)
		if lean.Remaining != 2-i || lean.Remaining != full.Remaining || lean.ResetAfter != full.ResetAfter ||
			lean.Which != full.Which || lean.Now == 0 {
			t.Fatalf("grant %d: lean %+v, in full %+v", i, lean, full)
		}
	}
	if busy.Load() {
		t.Fatal("busy after a grant that left something")
	}
	admit("the last the limit allows", "lone", p, 0, Granted, 7)
	if !busy.Load() {
		t.Fatal("not busy after a grant that took the window's last")
	}
	_, first := admit("at the limit", "lone", p, 0, Queued, 11)
	_, second := admit("busy", "lone", p, 0, Queued, 11)
	if got := lines(t, r, "lone", [][]byte{first, second})[n.Line()]; !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("the line holds tickets %v, want [0 1]", got)
	}
	// The line and the window gone, the busy key's admit goes in full, and its next lean again.
	if err := rdb.Del(ctx, r.ks.perKey("lone", limit)...).Err(); err != nil {
		t.Fatal(err)
	}
	admit("busy, granted", "lone", p, 0, Granted, 11)
	admit("lean again", "lone", p, 0, Granted, 7)
	// Another process takes the window's last: the lean call does not grant, writes nothing, and
	// the full one queues.
	admitBy(other, "another process", "lone", p, 0, 0, Granted)
	admit("taken by another", "lone", p, 0, Queued, 7, 11)
	if got := rdb.ZCard(ctx, window).Val(); got != 3 {
		t.Fatalf("the window holds %d grants after the lean call that did not grant, want 3", got)
	}
	if !busy.Load() {
		t.Fatal("not busy after an admit that queued")
	}

	// A ticket that may not wait goes in full: granted, or refused in one command.
	for range 3 {
		admitBy(other, "another process", "nowait", p, 0, 0, Granted)
	}
	admitBy(r, "may not wait, at the limit", "nowait", p, 0, time.Microsecond, WouldExceed, 11)
	admitBy(r, "may not wait, free", "nowait free", p, 0, time.Microsecond, Granted, 11)
	never := params(config.Limit{Max: 3, Window: time.Minute, MaxQueue: -1}.WithDefaults())
	admit("a limit that never queues", "never", never, 0, Granted, 11)

	// A pause: the lean call does not grant, the full one queues.
	if err := rdb.Set(ctx, r.ks.perKey("paused", limit)[kPaused], PausedForever, 0).Err(); err != nil {
		t.Fatal(err)
	}
	admit("paused", "paused", p, 0, Queued, 7, 11)
	if got := rdb.Exists(ctx, r.ks.perKey("paused", limit)[kWindow]).Val(); got != 0 {
		t.Fatal("a paused key's window was written")
	}

	// Costs on a rate of units: a lean grant takes its cost; a cost more than is left goes in
	// full and is queued.
	units := params(config.Limit{Max: 10, Window: time.Minute, Units: true, MaxQueue: 10}.WithDefaults())
	if rep, _ := admit("cost 4", "units", units, 4, Granted, 7); rep.Remaining != 6 {
		t.Fatalf("cost 4: %d remaining, want 6", rep.Remaining)
	}
	admit("cost 7 of 6 left", "units", units, 7, Queued, 7, 11)

	// A shadow limit's admit goes in full, its stats counted.
	shadow := params(config.Limit{Max: 3, Window: time.Minute, Shadow: true}.WithDefaults())
	admit("shadow", "shadow", shadow, 0, Granted, 11)
}
