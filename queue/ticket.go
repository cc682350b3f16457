package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rateltd/rateltd/config"
)

// idLen is the length in bytes of ticket and node ids (raw uuids).
const idLen = 16

// Ticket is one waiting request. It is stored msgpack-encoded as an array, so the Lua scripts
// read its fields by position, each named after its field here in line.lua: [1] T_ID, [2] T_KEY,
// [3] T_PRIORITY (as its Line: 0 low to 3 critical), [4] T_ENQUEUED, [5] T_DEADLINE, [6] T_OWNER,
// and for a durable job [7] T_HANDLER, and when the cost is not 1, [8] T_COST (with nil at [7]
// for a request). Times are microseconds of Redis server time. The encoded bytes are the
// ticket's identity in the line: cancel and claim find it by them.
type Ticket struct {
	// ID is a random uuid, 16 raw bytes.
	ID []byte
	// Key is the rate-limit key the ticket waits for.
	Key string
	// Priority selects the line within the key.
	Priority config.Priority
	// Enqueued is when the request arrived, in µs of server time.
	Enqueued int64
	// Deadline is when the request stops waiting, in µs of server time.
	Deadline int64
	// Owner is the node (Client) that waits for the grant, 16 raw bytes. For a durable job,
	// the node that enqueued it: nobody waits for the grant, which goes to a node that runs
	// Handler.
	Owner []byte
	// Handler names the handler of a durable job; empty for a request.
	Handler string
	// Cost is what the request counts against the rates of its key's limit that count units
	// (see config.Rate). 0 reads as 1.
	Cost int64
	// Tenant is whose share of the key's line the ticket waits in (see fair.lua); empty for
	// none. Weight is the tenant's weight, 0 read as 1. Neither is encoded with the ticket:
	// the admit names them, and the line keeps a number for the tenant.
	Tenant string
	Weight int64
	// LineSuffix is, for a cancel, what follows the ticket in its entry of a line served in
	// fair shares, as its admit answered (AdmitReply.LineSuffix); nil when not known. Never
	// encoded with the ticket.
	LineSuffix []byte
	// tag is the ticket's tag in a line served in fair shares, when tagged (see fair.lua):
	// set by lineTicket, never encoded with the ticket.
	tag    int64
	tagged bool
}

// maxCost bounds a ticket's cost: Lua's numbers hold whole numbers exactly up to 2^53.
const maxCost = 1 << 53

// CostOf is t's cost, 1 when unset.
func (t *Ticket) CostOf() int64 {
	if t.Cost <= 0 {
		return 1
	}
	return t.Cost
}

// errCorruptTicket reports bytes that are not a ticket.
var errCorruptTicket = errors.New("queue: corrupt ticket")

// ticketFields is the length of the msgpack array of a ticket.
const ticketFields = 6

// EncodeMsgpack writes t as a msgpack array, as Encode does.
func (t *Ticket) EncodeMsgpack(enc *msgpack.Encoder) error {
	b, err := t.Encode()
	if err != nil {
		return err
	}
	_, err = enc.Writer().Write(b)
	return err
}

// DecodeMsgpack reads what EncodeMsgpack wrote.
func (t *Ticket) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < ticketFields || n > ticketFields+4 {
		return fmt.Errorf("array of %d, want %d to %d", n, ticketFields, ticketFields+4)
	}
	var id, owner string
	var prio int64
	for _, err := range []error{
		decodeInto(dec.DecodeString, &id), decodeInto(dec.DecodeString, &t.Key), decodeInto(dec.DecodeInt64, &prio),
		decodeInto(dec.DecodeInt64, &t.Enqueued), decodeInto(dec.DecodeInt64, &t.Deadline), decodeInto(dec.DecodeString, &owner),
	} {
		if err != nil {
			return err
		}
	}
	t.ID, t.Owner, t.Priority = []byte(id), []byte(owner), config.PriorityOfLine(int(prio))
	if n > ticketFields {
		var h *string
		if err := dec.Decode(&h); err != nil {
			return err
		}
		if h == nil && n == ticketFields+1 || h != nil && *h == "" {
			return errors.New("empty handler")
		}
		if h != nil {
			t.Handler = *h
		}
	}
	if n > ticketFields+1 {
		if t.Cost, err = dec.DecodeInt64(); err != nil {
			return err
		}
		if t.Cost < 1 || t.Cost > maxCost {
			return fmt.Errorf("cost %d", t.Cost)
		}
	}
	if n > ticketFields+2 {
		if t.Tenant, err = dec.DecodeString(); err != nil {
			return err
		}
		if t.Tenant == "" || len(t.Tenant) > MaxTenantLen {
			return fmt.Errorf("tenant of %d bytes", len(t.Tenant))
		}
	}
	if n > ticketFields+3 {
		if t.Weight, err = dec.DecodeInt64(); err != nil {
			return err
		}
		if t.Weight < 1 || t.Weight > MaxWeight {
			return fmt.Errorf("weight %d", t.Weight)
		}
	}
	return nil
}

// MaxTenantLen and MaxWeight bound a ticket's tenant and weight (line.lua's rule).
const (
	MaxTenantLen = 64
	MaxWeight    = 1000
)

func decodeInto[T any](f func() (T, error), dst *T) error {
	v, err := f()
	*dst = v
	return err
}

// Encode returns the msgpack encoding of t: an array of its fields. Ids go as str, not bin:
// Redis's Lua msgpack decoder does not know bin. Integers take their smallest form. Written by
// hand, into one allocation, since every request encodes a ticket.
func (t *Ticket) Encode() ([]byte, error) {
	n := ticketFields
	if t.Handler != "" {
		n++
	}
	if t.CostOf() != 1 {
		n = ticketFields + 2
	}
	b := make([]byte, 0, 1+4*5+4*9+len(t.ID)+len(t.Key)+len(t.Owner)+len(t.Handler))
	b = append(b, 0x90|byte(n)) // fixarray
	b = appendStr(b, t.ID)
	b = appendStr(b, t.Key)
	b = appendInt(b, int64(t.Priority.Line()))
	b = appendInt(b, t.Enqueued)
	b = appendInt(b, t.Deadline)
	b = appendStr(b, t.Owner)
	if t.Handler != "" {
		b = appendStr(b, t.Handler)
	} else if n > ticketFields {
		b = append(b, 0xc0) // nil
	}
	if n > ticketFields+1 {
		b = appendInt(b, t.CostOf())
	}
	return b, nil
}

// appendStr appends s as a msgpack str in its smallest form.
func appendStr[S ~string | ~[]byte](b []byte, s S) []byte {
	switch l := len(s); {
	case l < 32:
		b = append(b, 0xa0|byte(l))
	case l < 1<<8:
		b = append(b, 0xd9, byte(l))
	case l < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(l))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(l))
	}
	return append(b, s...)
}

// appendInt appends n as a msgpack integer in its smallest form.
func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0 && n <= math.MaxInt8, n < 0 && n >= -32: // positive and negative fixint
		return append(b, byte(n))
	case n >= 0 && n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n >= 0 && n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n >= 0 && n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	case n >= 0:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), uint64(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

// TicketID reads only the id of a raw ticket, the first field, which the scripts read too:
// enough to give back the grant of a ticket that DecodeTicket refuses. Nil when unreadable.
func TicketID(b []byte) []byte {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	if n, err := dec.DecodeArrayLen(); err != nil || n < 1 {
		return nil
	}
	id, err := dec.DecodeString()
	if err != nil || len(id) != idLen {
		return nil
	}
	return []byte(id)
}

// DecodeTicket parses b, checking every field, so that corrupt bytes from Redis are an error,
// never a panic.
func DecodeTicket(b []byte) (*Ticket, error) {
	var t Ticket
	if err := msgpack.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptTicket, err)
	}
	switch {
	case len(t.ID) != idLen:
		return nil, fmt.Errorf("%w: id is %d bytes", errCorruptTicket, len(t.ID))
	case len(t.Owner) != idLen:
		return nil, fmt.Errorf("%w: owner is %d bytes", errCorruptTicket, len(t.Owner))
	case !t.Priority.Valid():
		return nil, fmt.Errorf("%w: priority %d", errCorruptTicket, t.Priority.Line())
	case t.Deadline <= 0 || t.Enqueued <= 0:
		return nil, fmt.Errorf("%w: times %d, %d", errCorruptTicket, t.Enqueued, t.Deadline)
	case config.ValidateKey(t.Key) != nil:
		return nil, fmt.Errorf("%w: key %q", errCorruptTicket, t.Key)
	}
	return &t, nil
}
