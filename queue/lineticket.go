package queue

import (
	"bytes"
	"errors"
	"io"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/rateltd/rateltd/config"
)

// maxLineEntry bounds the bytes of a line entry (line.lua's MAX_ENTRY): Redis's Lua msgpack
// decoder reads any entry this long without overflowing its stack, and a valid ticket is
// under 800 bytes.
const maxLineEntry = 2048

// lineTicket is line.lua's decode: the ticket a line entry holds, as the steps on a line read
// it, or nil when the entry is corrupt (and, in a grant step, dead-lettered). Both backends
// keep to one rule, written there and here: an entry is a ticket when it is at most
// maxLineEntry bytes, Redis's Lua msgpack decoder reads all of it (it knows no bin and no ext)
// and its first value is an array whose ID and Owner are strings of 16 bytes, whose Deadline
// is a number, whose Handler, when present, is a non-empty string, and whose Cost, when
// present, is a whole number from 1 to 2^53. The other fields are no business of the line's: a field of
// the wrong type is left zero here. The node that gets the grant reads the ticket with
// DecodeTicket, which checks every field, and gives back a grant it cannot read.
// TestCorruptTicketAlike holds both backends to the rule.
func lineTicket(raw []byte) *Ticket {
	if len(raw) > maxLineEntry {
		return nil
	}
	r := bytes.NewReader(raw)
	dec := msgpack.NewDecoder(r)
	if c, err := dec.PeekCode(); err != nil || !isArray(c) {
		return nil
	}
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil
	}
	var f [ticketFields + 4]any // by position: ID, Key, Priority, Enqueued, Deadline, Owner, Handler, Cost, Tenant, Weight
	for i := range n {
		v, err := luaValue(dec)
		if err != nil {
			return nil
		}
		if i < len(f) {
			f[i] = v
		}
	}
	tag, tagged, ok := lineTag(raw, r, dec)
	if !ok {
		return nil
	}
	id, _ := f[0].(string)
	owner, _ := f[5].(string)
	deadline, ok := luaNumber(f[4])
	handler, isString := f[6].(string)
	if len(id) != idLen || len(owner) != idLen || !ok || (f[6] != nil && (!isString || handler == "")) {
		return nil
	}
	cost, ok := luaCost(f[7])
	if !ok {
		return nil
	}
	tenant, isString := f[8].(string)
	weight, wok := luaWhole(f[9], 1, MaxWeight)
	if f[8] != nil && (!isString || tenant == "" || len(tenant) > MaxTenantLen) || f[9] != nil && !wok {
		return nil
	}
	t := &Ticket{ID: []byte(id), Owner: []byte(owner), Deadline: deadline, Handler: handler, Cost: cost, Tenant: tenant, Weight: weight}
	if tagged {
		t.tag, t.tagged = tag, true
	}
	t.Key, _ = f[1].(string)
	if prio, ok := luaNumber(f[2]); ok {
		t.Priority = config.PriorityOfLine(int(prio))
	}
	t.Enqueued, _ = luaNumber(f[3])
	return t
}

// luaCost is line.lua's rule for T_COST: absent (0, read as 1), or a whole number from 1 to
// maxCost.
func luaCost(v any) (int64, bool) {
	if v == nil {
		return 0, true
	}
	return luaWhole(v, 1, maxCost)
}

// luaWhole is line.lua's whole: v is a whole number from lo to hi.
func luaWhole(v any, lo, hi int64) (int64, bool) {
	switch f := v.(type) {
	case nil:
		return 0, false
	case float32:
		return int64(f), f == float32(int64(f)) && f >= float32(lo) && f <= float32(hi)
	case float64:
		return int64(f), f == float64(int64(f)) && f >= float64(lo) && f <= float64(hi)
	case uint64:
		return int64(f), f >= uint64(lo) && f <= uint64(hi)
	}
	n, ok := luaNumber(v)
	return n, ok && n >= lo && n <= hi
}

// lineTag reads what follows the ticket's array in raw (r and dec positioned after it): nothing,
// or in a line served in fair shares exactly two values, the tenant's number and the round,
// whole numbers from 0 to 2^53 in their shortest forms (line.lua's decode); it returns the
// round. ok is false when the entry is corrupt.
func lineTag(raw []byte, r *bytes.Reader, dec *msgpack.Decoder) (tag int64, tagged, ok bool) {
	at := len(raw) - r.Len()
	if _, err := dec.PeekCode(); errors.Is(err, io.EOF) {
		return 0, false, true
	}
	var v [2]any
	for i := range v {
		var err error
		if v[i], err = luaValue(dec); err != nil {
			return 0, false, false // one value only, or one Lua cannot read
		}
	}
	if _, err := dec.PeekCode(); !errors.Is(err, io.EOF) {
		return 0, false, false // a third value
	}
	tenant, ok1 := luaWhole(v[0], 0, maxCost)
	tag, ok2 := luaWhole(v[1], 0, maxCost)
	return tag, true, ok1 && ok2 && bytes.Equal(raw[at:], appendInt(appendInt(nil, tenant), tag))
}

func isArray(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}

func isMap(c byte) bool { return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32 }

// luaTable stands for an array or a map, which Lua reads as a table: no field a line reads may
// be one.
type luaTable struct{}

var errNotLua = errors.New("queue: msgpack that Redis's Lua cannot read")

// luaValue reads one msgpack value as Redis's Lua decoder does: bin and ext are an error there.
func luaValue(dec *msgpack.Decoder) (any, error) {
	c, err := dec.PeekCode()
	switch {
	case err != nil:
		return nil, err
	case msgpcode.IsBin(c) || msgpcode.IsExt(c):
		return nil, errNotLua
	case isArray(c) || isMap(c):
		var n int
		if isArray(c) {
			n, err = dec.DecodeArrayLen()
		} else {
			n, err = dec.DecodeMapLen()
			n *= 2
		}
		for ; err == nil && n > 0; n-- {
			_, err = luaValue(dec)
		}
		return luaTable{}, err
	}
	return dec.DecodeInterface()
}

// luaNumber is v as an integer when Lua would read it as a number.
func luaNumber(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), true
	case float32:
		return int64(n), true
	case float64:
		return int64(n), true
	}
	return 0, false
}
