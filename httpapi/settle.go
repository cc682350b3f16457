package httpapi

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/rateltd/rateltd"
)

// Costs over HTTP. A caller of /v1/acquire or /v1/jobs says what its call will cost with
// ?cost=N (tokens of an LLM call, say); rates that count units (Limit.Units, Rate.Units) count
// it, the others count the request as 1. A grant of /v1/acquire on a key whose limit counts
// units comes with a settle token: once the call has run, the caller says what it really cost,
//
//	POST /v1/settle/{key}/{token}?cost=N
//	     200 {"key", "settled": true, "cost"}; 404 when the token is unknown, expired (Options.
//	     SettleTTL), of another key, or settled already; 400 for a bad cost (0 to 2^53).
//
// as rateltd.Settle does inside fn: less than the grant's cost goes back to the window, as of
// the grant's time; more is charged now. A grant never settled keeps its charge. The tokens
// live in the memory of the process that granted them: behind a load balancer, a settle goes
// to the instance that answered the acquire (it answers 404 elsewhere).

// maxCost is the largest cost a request may have (rateltd.WithCost's bound).
const maxCost = 1 << 53

// costParam reads ?cost=, a whole number from least to 2^53; -1 when absent.
func costParam(q url.Values, least int) (int, error) {
	s := q.Get("cost")
	if s == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < int64(least) || n > maxCost {
		return 0, fmt.Errorf("cost %q: want a whole number from %d to 2^53", s, least)
	}
	return int(n), nil
}

// settles holds the grants of /v1/acquire that may still be settled, by token, oldest first.
// Safe for concurrent use.
type settles struct {
	ttl time.Duration
	max int

	mu sync.Mutex // guards byToken and order
	// byToken finds an entry of order by its token; order holds *settleEntry, oldest first
	// (every entry lives ttl, so the oldest expires first).
	byToken map[string]*list.Element
	order   list.List
}

// settleEntry is one grant to settle: the ctx of the request's fn (rateltd.Settle reads its
// grant from it), kept without its cancellation.
type settleEntry struct {
	token, key string
	ctx        context.Context
	expires    time.Time
}

func newSettles(ttl time.Duration, max int) *settles {
	return &settles{ttl: ttl, max: max, byToken: map[string]*list.Element{}}
}

// add keeps the grant whose fn was given ctx, of key, and returns its token. Expired entries
// go; when max are kept, the oldest goes too (its grant keeps its charge).
func (s *settles) add(key string, ctx context.Context) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	e := &settleEntry{token: hex.EncodeToString(b[:]), key: key, ctx: context.WithoutCancel(ctx), expires: time.Now().Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(time.Now())
	for s.order.Len() >= s.max {
		s.remove(s.order.Front())
	}
	s.byToken[e.token] = s.order.PushBack(e)
	return e.token
}

// take removes and returns the grant of token for key, nil when there is none (unknown,
// expired, of another key, or taken already).
func (s *settles) take(key, token string) *settleEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(time.Now())
	el, ok := s.byToken[token]
	if !ok || el.Value.(*settleEntry).key != key {
		return nil
	}
	s.remove(el)
	return el.Value.(*settleEntry)
}

// expire drops the entries expired at now. Called with mu held.
func (s *settles) expire(now time.Time) {
	for el := s.order.Front(); el != nil && !now.Before(el.Value.(*settleEntry).expires); el = s.order.Front() {
		s.remove(el)
	}
}

// remove drops el. Called with mu held.
func (s *settles) remove(el *list.Element) {
	delete(s.byToken, el.Value.(*settleEntry).token)
	s.order.Remove(el)
}

// Settled is the answer of POST /v1/settle.
type Settled struct {
	Key     string `json:"key"`
	Settled bool   `json:"settled"`
	Cost    int    `json:"cost"`
}

func (a *API) settle(w http.ResponseWriter, r *http.Request, key string) {
	n, err := costParam(r.URL.Query(), 0)
	if n < 0 {
		err = errors.New("cost: missing (?cost=N, what the call really cost)")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	e := a.settles.take(key, r.PathValue("token"))
	if e == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("key %q: no grant to settle for this token: unknown, expired, or settled already", key))
		return
	}
	switch err := rateltd.Settle(e.ctx, n); {
	case errors.Is(err, rateltd.ErrNotSettleable):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		fail(w, err)
	default:
		writeJSON(w, http.StatusOK, Settled{Key: key, Settled: true, Cost: n})
	}
}

// countsUnits reports whether l has a rate that counts cost units: only then does a grant
// have anything to settle.
func countsUnits(l rateltd.Limit) bool {
	if l.Units {
		return true
	}
	for _, r := range l.Also {
		if r.Units {
			return true
		}
	}
	return false
}
