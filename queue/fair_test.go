package queue_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// TestFairStepsAlike: both backends put tickets with and without tenants in the same places of
// a line (fair.lua and memfair.go): a line of three tickets of no tenant becomes fair when a
// tenant's ticket comes (it goes after the first of them), the tenants' tickets interleave by
// weight and cost, a ticket of no tenant then joins as the tenant "", one sent to the head goes
// first, a cancelled one leaves its tenant's count, and the grant step serves the line from its
// head; the line's state goes with its last ticket.
func TestFairStepsAlike(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 100, Window: time.Minute, TenantWeights: "b=2"})
		if err := be.PauseKey(ctx, "f", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		names := map[string]string{}
		raws := map[string][]byte{}
		tks := map[string]*queue.Ticket{}
		add := func(name, tenant string, cost int64, head bool) {
			tk, _ := ticket(t, be, "f", nodeA, config.PriorityNormal)
			tk.Tenant, tk.Cost = tenant, cost
			if tenant != "" {
				tk.Weight = int64(p.Limit.TenantWeight(tenant))
			}
			raw, err := tk.Encode()
			if err != nil {
				t.Fatal(err)
			}
			q := p
			q.Head = head
			rep := admit(t, be, q, tk, raw, queue.Queued)
			if _, mem := be.(*queue.Memory); tenant != "" && !mem && len(rep.LineSuffix) == 0 {
				t.Fatalf("%s queued in a fair line, and its entry's suffix not told", name)
			}
			tk.LineSuffix = rep.LineSuffix
			names[string(tk.ID)], raws[name], tks[name] = name, raw, tk
		}
		for _, n := range []string{"u1", "u2", "u3"} {
			add(n, "", 1, false)
		}
		for _, n := range []string{"a1", "a2", "a3"} {
			add(n, "a", 1, false)
		}
		add("b1", "b", 2, false)
		add("b2", "b", 2, false)
		add("u4", "", 1, false)
		add("h", "", 1, true)
		if out, err := be.Cancel(ctx, p, tks["a2"], raws["a2"]); err != nil || out != queue.Removed {
			t.Fatalf("cancel a2: %v, %v", out, err)
		}
		add("x", "a", 1, false) // cancelled without its round: the line is searched for it
		tks["x"].LineSuffix = nil
		if out, err := be.Cancel(ctx, p, tks["x"], raws["x"]); err != nil || out != queue.Removed {
			t.Fatalf("cancel x: %v, %v", out, err)
		}
		st, err := be.State(ctx, "f", p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Tenants["a"] != 2 || st.Tenants["b"] != 2 || st.Tenants[""] != 5 || len(st.Tenants) != 3 {
			t.Fatalf("tenants %v, want a 2, b 2, \"\" 5", st.Tenants)
		}
		if err := be.ResumeKey(ctx, "f"); err != nil {
			t.Fatal(err)
		}
		rep := grant(t, be, "f", p, nodeA)
		var order []string
		for _, raw := range rep.Local {
			tk, err := queue.DecodeTicket(raw)
			if err != nil {
				t.Fatalf("granted %x: %v", raw, err)
			}
			if string(raw) != string(raws[names[string(tk.ID)]]) {
				t.Fatalf("granted %x for %s, want the ticket as its owner sent it", raw, names[string(tk.ID)])
			}
			order = append(order, names[string(tk.ID)])
		}
		if got, want := strings.Join(order, " "), "h u1 a1 b1 u2 b2 u3 a3 u4"; got != want {
			t.Fatalf("granted %s, want %s", got, want)
		}
		if st, err := be.State(ctx, "f", p); err != nil || st.Tenants != nil {
			t.Fatalf("tenants %v after the line emptied (%v), want none", st.Tenants, err)
		}
	})
}
