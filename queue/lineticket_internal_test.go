package queue

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
)

// FuzzLineTicket: any bytes read as a ticket or as corrupt, never a panic, and Go reads them as
// grant.lua does: what lineTicket refuses, Redis's grant step dead-letters, and nothing else.
func FuzzLineTicket(f *testing.F) {
	raw, _ := sampleTicket().Encode()
	job := sampleTicket()
	job.Handler = "h"
	jobRaw, _ := job.Encode()
	for _, b := range [][]byte{raw, jobRaw, {}, []byte("\xc1 not a ticket"), raw[:len(raw)/2], {0x96, 0xc4, 0x10},
		append(raw[:len(raw):len(raw)], 0xc1), append(raw[:len(raw):len(raw)], 0x01), {0x91, 0x91, 0x91, 0xc0},
		append(bytes.Repeat([]byte{0x91}, 3000), 0x01), append(raw[:len(raw):len(raw)], bytes.Repeat([]byte{0x01}, 1500)...)} {
		f.Add(b)
	}
	srv := redistest.Server(f)
	r := NewRedis(srv.Client(f), srv.Prefix(f), 4)
	ctx := context.Background()
	if err := r.LoadScripts(ctx); err != nil {
		f.Fatal(err)
	}
	p := Params{Limit: config.Limit{Max: 10, Window: time.Minute}.WithDefaults(), StatsTTL: time.Minute}
	n := 0
	f.Fuzz(func(t *testing.T, b []byte) {
		tk := lineTicket(b)
		if tk != nil && (len(tk.ID) != idLen || len(tk.Owner) != idLen) {
			t.Fatalf("ticket of id %x, owner %x", tk.ID, tk.Owner)
		}
		n++
		key := fmt.Sprintf("k%d", n)
		if err := r.PauseKey(ctx, key, PausedForever); err != nil {
			t.Fatal(err)
		}
		now, err := r.Time(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id := uuid.New()
		carrier := &Ticket{ID: id[:], Key: key, Priority: config.PriorityNormal, Enqueued: now, Deadline: now + 60_000_000, Owner: id[:]}
		if rep, err := r.Admit(ctx, p, carrier, b); err != nil || rep.Outcome != Queued {
			t.Fatalf("admit: %+v, %v", rep, err)
		}
		if err := r.ResumeKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, errs := r.Grant(ctx, []string{key}, []Params{p}, GrantArgs{Node: id[:], Batch: 10, ClaimTimeout: time.Second}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		st, err := r.State(ctx, key, p)
		if err != nil {
			t.Fatal(err)
		}
		if corrupt := st.DeadLetters == 1; corrupt != (tk == nil) {
			t.Fatalf("%x: grant.lua dead-lettered it: %v; lineTicket read %+v", b, corrupt, tk)
		}
	})
}
