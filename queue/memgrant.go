package queue

// The in-process backend's grant step, grant.lua's twin.

import (
	"github.com/rateltd/rateltd/config"
)

// grant is grant.lua.
func (k *memKey) grant(s step, g *grantStep) GrantReply {
	claim := g.ClaimTimeout.Microseconds()
	for raw, at := range k.local {
		if at <= s.now-2*claim {
			delete(k.local, raw)
		}
	}
	refunded := 0
	for raw, at := range k.granted {
		if refunded == staleRefunds {
			break
		}
		t := lineTicket([]byte(raw))
		if at <= s.now-claim || t == nil || g.dead[string(t.Owner)] {
			delete(k.granted, raw)
			if t != nil {
				k.win(s.l).Refund(s.l, s.now, string(t.ID), at)
			}
			k.count(s, CountRefunded, 1)
			refunded++
		}
	}
	rep := GrantReply{Now: s.now}
	k.reclaim(s, g.MaxLost, &rep)
	until, paused := k.paused(s)
	rep.Paused = paused
	free := 0
	if !paused {
		free = k.win(s.l).Free(s.l, s.now, true)
	}
	var ids []string
	seen := map[string]bool{}
	drops, skips := 0, 0
	held, halt := false, false
	slots := g.slots
	for q := config.NumPriorities - 1; q >= 0 && !halt; q-- {
		i := 0
	line:
		for drops < maxDrops && i < len(k.lines[q]) {
			e := k.lines[q][i]
			switch {
			case e.t == nil:
				k.take(q, i)
				k.deadLetter(s, e.raw)
				drops++
			case e.t.Deadline <= s.now:
				k.take(q, i)
				k.count(s, CountExpired, 1)
				drops++
				if e.t.Handler != "" {
					if j := k.jobs[string(e.t.ID)]; j != nil && k.endJob(s, e.t.ID, j, ResultExpired, nil) {
						rep.Woken = append(rep.Woken, e.t.ID)
					}
				}
			case e.t.Handler != "" && !g.mine[e.t.Handler]:
				held = true
				if g.others[e.t.Handler] || skips >= maxSkips {
					halt = true
					break line
				}
				skips++
				i++
			case e.t.Handler == "" && g.dead[string(e.t.Owner)]:
				k.take(q, i)
				k.count(s, CountAbandoned, 1)
				drops++
			case free <= 0 || len(ids) >= g.Batch:
				break line
			case e.t.Handler == "" && k.grantedAlready(e.raw):
				k.take(q, i)
				k.count(s, CountDuplicate, 1)
				drops++
			case e.t.Handler != "" && slots <= 0:
				held, halt, rep.Busy = true, true, true
				break line
			case e.t.Handler != "":
				k.take(q, i)
				j := k.jobs[string(e.t.ID)]
				if j == nil {
					k.deadLetter(s, e.raw)
					drops++
					continue
				}
				j.Runs, j.State, j.Holder = j.Runs+1, jobRunning, []byte(g.node)
				k.lease[string(e.t.ID)] = s.now + g.Lease.Microseconds()
				k.keepJobs(s.now + g.Lease.Microseconds())
				cp := *j
				rep.Jobs = append(rep.Jobs, GrantedJob{ID: e.t.ID, Job: &cp})
				slots--
				free--
				ids = append(ids, string(e.t.ID))
			default:
				k.take(q, i)
				free--
				ids = append(ids, string(e.t.ID))
				if string(e.t.Owner) == g.node {
					rep.Local = append(rep.Local, e.raw)
					k.local[string(e.raw)] = s.now
				} else {
					k.granted[string(e.raw)] = s.now
					if !seen[string(e.t.Owner)] {
						seen[string(e.t.Owner)] = true
						rep.Remote = append(rep.Remote, e.t.Owner)
					}
				}
			}
		}
	}
	if len(ids) > 0 {
		k.win(s.l).Record(s.l, s.now, ids...)
		k.count(s, CountGranted, int64(len(ids)))
		if len(rep.Remote) > 0 {
			k.grantExp = s.now + 2*claim
		}
		if len(rep.Local) > 0 {
			k.localExp = s.now + 2*claim
		}
	}
	if k.lineLen() > 0 {
		switch {
		case paused:
			rep.Next = until
		case drops >= maxDrops:
			rep.Next = s.now
		case free > 0 && held:
			rep.Next = s.now + g.Hold.Microseconds()
		case free > 0:
			rep.Next = s.now
		default:
			rep.Next = k.win(s.l).Slot(s.l, s.now, 1, 0)
		}
	}
	due := int64(0)
	for _, at := range k.granted {
		if due == 0 || at+claim < due {
			due = at + claim
		}
	}
	for _, at := range k.lease {
		if due == 0 || at < due {
			due = at
		}
	}
	if due != 0 && (rep.Next <= 0 || due < rep.Next) {
		rep.Next = due
	}
	return rep
}

// grantedAlready reports whether a ticket of these bytes holds a grant already (a second copy
// of it, which grant.lua drops).
func (k *memKey) grantedAlready(raw []byte) bool {
	_, local := k.local[string(raw)]
	_, remote := k.granted[string(raw)]
	return local || remote
}

// take removes the ticket at position i of line q.
func (k *memKey) take(q, i int) {
	if i == 0 {
		k.pop(q)
		return
	}
	k.lines[q] = append(k.lines[q][:i], k.lines[q][i+1:]...)
}
