package queue

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/uuid"

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

func TestDecodeTicketRejectsBadFields(t *testing.T) {
	for name, mutate := range map[string]func(*Ticket){
		"short id":     func(t *Ticket) { t.ID = t.ID[:4] },
		"short owner":  func(t *Ticket) { t.Owner = nil },
		"priority":     func(t *Ticket) { t.Priority = 7 },
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
		if _, err := DecodeTicket(raw); !errors.Is(err, ErrCorruptTicket) {
			t.Errorf("%s: err = %v, want ErrCorruptTicket", name, err)
		}
	}
}

// FuzzDecodeTicket: any bytes from Redis decode to a valid ticket or to ErrCorruptTicket,
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
			if !errors.Is(err, ErrCorruptTicket) {
				t.Fatalf("err = %v, not ErrCorruptTicket", err)
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
