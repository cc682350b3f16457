package queue

import (
	"sort"

	"github.com/rateltd/rateltd/config"
)

// memFair is fair.lua's state of one line served in fair shares: the round of the latest ticket
// granted, where each tenant's next ticket starts (units of 1/tagUnit of a round) and how many
// it has waiting.
type memFair struct {
	v    int64
	next map[string]int64
	n    map[string]int
}

// tagUnit is fair.lua's TAG_UNIT.
const tagUnit = 2520

// tagSpan is fair.lua's tag_span: the units of rounds a ticket of cost c at weight w takes.
func tagSpan(c, w int64) int64 { return max(1, tagUnit*c/max(1, w)) }

// fairPlace is fair.lua's fair_place: where ticket t would join line q (at its head when head).
type fairPlace struct {
	fair  bool
	tag   int64 // the ticket's round
	pos   int
	start int64 // where in units its round starts it
}

func (k *memKey) fairPlace(q int, tenant string, head bool) fairPlace {
	f, n := k.fair[q], len(k.lines[q])
	on := f != nil && n > 0
	if !on && tenant == "" {
		if head {
			return fairPlace{}
		}
		return fairPlace{pos: n}
	}
	var v int64
	if on {
		v = f.v
	}
	if head {
		first := int64(0)
		if on {
			first = k.lines[q][0].tagOf()
		}
		return fairPlace{fair: true, tag: max(0, min(v, first))}
	}
	start := v * tagUnit
	if on {
		start = max(start, f.next[tenant])
		tag := start / tagUnit
		return fairPlace{fair: true, tag: tag, pos: k.fairPosition(q, tag), start: start}
	}
	return fairPlace{fair: true, tag: start / tagUnit, pos: min(n, 1), start: start}
}

// tagOf is fair.lua's entry_tag: e's tag, -1 when it has none.
func (e memTicket) tagOf() int64 {
	if e.t == nil || !e.t.tagged {
		return -1
	}
	return e.t.tag
}

// fairPosition is fair.lua's fair_position: the number of entries of line q of a tag up to tag.
func (k *memKey) fairPosition(q int, tag int64) int {
	line := k.lines[q]
	return sort.Search(len(line), func(i int) bool { return line[i].tagOf() > tag })
}

// fairBegin is fair.lua's fair_begin: line q's entries become the tenant ""'s, tagged in order.
func (k *memKey) fairBegin(q int) {
	f := &memFair{next: map[string]int64{}, n: map[string]int{}}
	k.fair[q] = f
	var units int64
	for i, e := range k.lines[q] {
		c := int64(1)
		if e.t != nil {
			c = e.t.CostOf()
			t := *e.t
			t.tag, t.tagged = units/tagUnit, true
			k.lines[q][i].t = &t
		}
		units += tagSpan(c, 1)
	}
	if n := len(k.lines[q]); n > 0 {
		f.next[""], f.n[""] = units, n
	}
}

// linePush is fair.lua's line_push: it puts e, of tenant (of weight w), in line q where pl
// says, alive until deadline (µs).
func (k *memKey) linePush(q int, e memTicket, tenant string, w int64, head bool, pl fairPlace, deadline int64) {
	if !pl.fair {
		k.push(q, e, head, deadline)
		return
	}
	if k.fair[q] == nil || len(k.lines[q]) == 0 {
		k.fairBegin(q)
	}
	f := k.fair[q]
	if e.t != nil { // a corrupt entry stays untagged, as the line's rule reads it
		t := *e.t
		t.tag, t.tagged, t.Tenant = pl.tag, true, tenant
		e.t = &t
	}
	if head {
		k.push(q, e, true, deadline)
	} else {
		c := int64(1)
		if e.t != nil {
			c = e.t.CostOf()
		}
		f.next[tenant] = pl.start + tagSpan(c, w)
		i := k.fairPosition(q, pl.tag)
		k.lines[q] = append(k.lines[q], memTicket{})
		copy(k.lines[q][i+1:], k.lines[q][i:])
		k.lines[q][i] = e
		k.linesExp[q] = max(k.linesExp[q], deadline+ttlGraceMicro)
	}
	f.n[tenant]++
}

// lineLeft is fair.lua's line_left: entry e left line q, granted or not.
func (k *memKey) lineLeft(q int, e memTicket, granted bool) {
	f := k.fair[q]
	if e.t == nil && len(k.lines[q]) == 0 { // a corrupt entry, which a fair line may hold too
		k.fair[q] = nil
	}
	if e.t == nil || !e.t.tagged || f == nil {
		return
	}
	tn := e.t.Tenant
	if f.n[tn]--; f.n[tn] <= 0 {
		delete(f.n, tn)
		delete(f.next, tn)
	}
	if granted && e.t.tag > f.v {
		f.v = e.t.tag
	}
	if len(k.lines[q]) == 0 {
		k.fair[q] = nil
	}
}

// tenantWaiting is fair.lua's tenant_waiting: how many tickets tenant has waiting.
func (k *memKey) tenantWaiting(tenant string) int {
	n := 0
	for _, f := range k.fair {
		if f != nil {
			n += f.n[tenant]
		}
	}
	return n
}

// tenants returns how many tickets each tenant has waiting in the key's lines ("" for the
// tickets of no tenant in a line served in fair shares).
func (k *memKey) tenants() map[string]int {
	var out map[string]int
	for q := range config.NumPriorities {
		if f := k.fair[q]; f != nil {
			for t, n := range f.n {
				if out == nil {
					out = map[string]int{}
				}
				out[t] += n
			}
		}
	}
	return out
}
