package queue

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/rateltd/rateltd/config"
)

func sampleTicket() *Ticket {
	id, owner := uuid.New(), uuid.New()
	return &Ticket{ID: id[:], Key: "openai", Priority: config.PriorityHigh, Enqueued: 1_763_870_000_000_000,
		Deadline: 1_763_870_030_000_000, Owner: owner[:]}
}

func TestTicketRoundTrip(t *testing.T) {
	tk := sampleTicket()
	raw, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTicket(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.ID, tk.ID) || !bytes.Equal(got.Owner, tk.Owner) || got.Key != tk.Key ||
		got.Priority != tk.Priority || got.Enqueued != tk.Enqueued || got.Deadline != tk.Deadline {
		t.Fatalf("round trip: %+v, want %+v", got, tk)
	}
	// Ids travel as msgpack str (0xb0 = fixstr of 16): Redis's Lua decoder has no bin type.
	if raw[0] != 0x96 || raw[1] != 0xb0 {
		t.Fatalf("encoding starts % x, want 96 b0", raw[:2])
	}
	if len(raw) > 64 {
		t.Fatalf("ticket is %d bytes; keep it under 64 for a short key", len(raw))
	}
}

// TestStoredPriorityKeepsMeaning: tickets and job records stored in Redis before Priority's
// zero value became Normal (when the Go values were 0 low to 3 critical, as the stored ones
// still are) decode to the same priority, and encode back to the same bytes, which the Lua
// scripts read.
func TestStoredPriorityKeepsMeaning(t *testing.T) {
	const (
		// id "0123456789abcdef", key "openai", priority %02x, enqueued, deadline, owner "fedcba9876543210"
		ticketHex = "96b030313233343536373839616263646566a66f70656e6169%02xcf0006443afcc7ac00cf0006443afe916f80b066656463626139383736353433323130"
		// key "smtp", handler "send", payload "hi", priority %02x, 3 retries, wait 1000, owner, result TTL 60, enqueued 5
		jobHex = "9ea4736d7470a473656e64a26869%02x03000000cd03e800a0b0666564636261393837363534333231303c05"
	)
	for stored, want := range []config.Priority{config.PriorityLow, config.PriorityNormal, config.PriorityHigh, config.PriorityCritical} {
		raw, _ := hex.DecodeString(fmt.Sprintf(ticketHex, stored))
		tk, err := DecodeTicket(raw)
		if err != nil || tk.Priority != want {
			t.Fatalf("ticket stored with priority %d: %v, %v; want %v", stored, tk, err, want)
		}
		if again, err := tk.Encode(); err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("ticket of priority %v encodes to %x, %v; want %x", want, again, err, raw)
		}
		raw, _ = hex.DecodeString(fmt.Sprintf(jobHex, stored))
		j, err := decodeJob(raw)
		if err != nil || j.Priority != want {
			t.Fatalf("job stored with priority %d: %v, %v; want %v", stored, j, err, want)
		}
		if again, err := j.Encode(); err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("job of priority %v encodes to %x, %v; want %x", want, again, err, raw)
		}
	}
}

func TestDecodeTicketRejectsBadFields(t *testing.T) {
	for name, mutate := range map[string]func(*Ticket){
		"short id":     func(t *Ticket) { t.ID = t.ID[:4] },
		"short owner":  func(t *Ticket) { t.Owner = nil },
		"priority":     func(t *Ticket) { t.Priority = 7 },
		"priority < 0": func(t *Ticket) { t.Priority = config.PriorityLow - 1 },
		"deadline":     func(t *Ticket) { t.Deadline = 0 },
		"key":          func(t *Ticket) { t.Key = "a{b}" },
		"empty key":    func(t *Ticket) { t.Key = "" },
		"enqueued < 0": func(t *Ticket) { t.Enqueued = -5 },
	} {
		tk := sampleTicket()
		mutate(tk)
		raw, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeTicket(raw); !errors.Is(err, errCorruptTicket) {
			t.Errorf("%s: err = %v, want errCorruptTicket", name, err)
		}
	}
}

// FuzzDecodeTicket: any bytes from Redis decode to a valid ticket or to errCorruptTicket,
// never a panic; what decodes encodes back to the same ticket.
func FuzzDecodeTicket(f *testing.F) {
	raw, _ := sampleTicket().Encode()
	f.Add(raw)
	f.Add([]byte{})
	f.Add([]byte("\xc1 not a ticket"))
	f.Add(raw[:len(raw)/2])
	f.Add([]byte{0x96, 0xc4, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := DecodeTicket(b)
		if err != nil {
			if !errors.Is(err, errCorruptTicket) {
				t.Fatalf("err = %v, not errCorruptTicket", err)
			}
			return
		}
		again, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeTicket(again)
		if err != nil || back.Key != tk.Key || back.Deadline != tk.Deadline || !bytes.Equal(back.ID, tk.ID) {
			t.Fatalf("re-encoded ticket differs: %+v vs %+v (%v)", back, tk, err)
		}
	})
}

// TestTicketEncodeAsMsgpack: Encode, written by hand, writes what msgpack's encoder writes for
// the same fields (str for ids and strings, integers in their smallest form), at every boundary
// of the forms.
func TestTicketEncodeAsMsgpack(t *testing.T) {
	ints := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1_763_870_000_000_000, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	strs := []string{"", "k", strings.Repeat("k", 31), strings.Repeat("k", 32), strings.Repeat("k", 255),
		strings.Repeat("k", 256), strings.Repeat("k", 65535), strings.Repeat("k", 65536)}
	for i, n := range ints {
		for j, s := range strs {
			tk := sampleTicket()
			tk.Key, tk.Enqueued, tk.Deadline, tk.Priority = s, n, ints[(i+j)%len(ints)], config.PriorityOfLine((i+j)%config.NumPriorities)
			if j%2 == 1 {
				tk.Handler = strs[(i+j)%len(strs)] + "h"
			}
			var want bytes.Buffer
			enc := msgpack.NewEncoder(&want)
			fields := 6
			if tk.Handler != "" {
				fields++
			}
			for _, err := range []error{enc.EncodeArrayLen(fields), enc.EncodeString(string(tk.ID)), enc.EncodeString(tk.Key),
				enc.EncodeInt(int64(tk.Priority.Line())), enc.EncodeInt(tk.Enqueued), enc.EncodeInt(tk.Deadline),
				enc.EncodeString(string(tk.Owner))} {
				if err != nil {
					t.Fatal(err)
				}
			}
			if tk.Handler != "" {
				if err := enc.EncodeString(tk.Handler); err != nil {
					t.Fatal(err)
				}
			}
			got, err := tk.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("ticket of key %d bytes, times %d and %d, handler %d bytes: % x, msgpack writes % x",
					len(tk.Key), tk.Enqueued, tk.Deadline, len(tk.Handler), got[:min(len(got), 64)], want.Bytes()[:min(want.Len(), 64)])
			}
			if m, err := msgpack.Marshal(tk); err != nil || !bytes.Equal(m, got) {
				t.Fatalf("msgpack.Marshal of a ticket: % x, %v; want Encode's bytes", m[:min(len(m), 64)], err)
			}
		}
	}
}
