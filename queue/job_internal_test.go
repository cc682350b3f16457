package queue

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rateltd/rateltd/config"
)

// TestJobRecordFields: a record has 14 fields, 15 with a cost other than 1, and 16 or 17 with
// a trace context, the cost then written as 1 rather than left out (a hole would make Lua's
// msgpack write a map); a record of a later version, with fields past the 17th, reads.
func TestJobRecordFields(t *testing.T) {
	for _, tc := range []struct {
		job  Job
		want int
	}{
		{Job{Key: "k"}, 14},
		{Job{Key: "k", Cost: 1}, 14},
		{Job{Key: "k", Cost: 3}, 15},
		{Job{Key: "k", TraceParent: "tp"}, 16},
		{Job{Key: "k", Cost: 3, TraceParent: "tp", TraceState: "ts"}, 17},
	} {
		b, err := tc.job.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var fields []any
		if err := msgpack.Unmarshal(b, &fields); err != nil || len(fields) != tc.want {
			t.Fatalf("%+v: %d fields, %v; want %d", tc.job, len(fields), err, tc.want)
		}
		if tc.want > jobFields {
			if c, ok := fields[jobFields].(int8); !ok || int64(c) != max(1, tc.job.Cost) {
				t.Fatalf("%+v: cost field %#v", tc.job, fields[jobFields])
			}
		}
		if tc.want < jobFields+3 {
			continue
		}
		longer, err := msgpack.Marshal(append(fields, "a later field", 7))
		if err != nil {
			t.Fatal(err)
		}
		j, err := decodeJob(longer)
		if err != nil || j.Key != "k" || j.TraceParent != tc.job.TraceParent || j.TraceState != tc.job.TraceState {
			t.Fatalf("%+v with two more fields: read %+v, %v", tc.job, j, err)
		}
	}
}

// FuzzDecodeJob: any bytes from Redis decode to a job record or to errCorruptJob, never a
// panic; what decodes encodes back to the same record, its trace context included.
func FuzzDecodeJob(f *testing.F) {
	for _, j := range []Job{{Key: "k", Handler: "h"}, {Key: "k", Cost: 3}, {Key: "k", TraceParent: "tp", TraceState: "ts"}} {
		raw, _ := j.Encode()
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("\xc1 not a job"))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeJob(b)
		if err != nil {
			if !errors.Is(err, errCorruptJob) {
				t.Fatalf("err = %v, not errCorruptJob", err)
			}
			return
		}
		again, err := j.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeJob(again)
		if err != nil || back.Key != j.Key || max(1, back.Cost) != max(1, j.Cost) || back.TraceParent != j.TraceParent ||
			back.TraceState != j.TraceState || !bytes.Equal(back.Payload, j.Payload) {
			t.Fatalf("re-encoded record differs: %+v vs %+v (%v)", back, j, err)
		}
	})
}

// TestJobRecordRoundTrip: every field of a record reads back as it was written, with and
// without the optional fields.
func TestJobRecordRoundTrip(t *testing.T) {
	full := Job{Key: "k", Handler: "h", Payload: []byte("payload"), Priority: config.PriorityHigh, MaxRetries: 3,
		Failures: 1, Runs: 2, Lost: 1, Wait: 60_000_000, State: jobRunning, Holder: bytes.Repeat([]byte{1}, 16),
		Owner: bytes.Repeat([]byte{2}, 16), ResultTTL: 86_400_000, Enqueued: 1_700_000_000_000_000, Cost: 5,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "k=v", Tenant: "t", Weight: 3}
	plain := full
	plain.Cost, plain.TraceParent, plain.TraceState, plain.Tenant, plain.Weight = 0, "", "", "", 0
	plain.Holder = []byte{}
	for _, j := range []Job{full, plain} {
		raw, err := j.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeJob(raw)
		if err != nil || !reflect.DeepEqual(*back, j) {
			t.Fatalf("read back %+v, %v; want %+v", back, err, j)
		}
	}
}

func BenchmarkDecodeJob(b *testing.B) {
	raw, err := (&Job{Key: "jobs", Handler: "echo", Payload: make([]byte, 64), Wait: 600_000_000,
		Owner: bytes.Repeat([]byte{2}, 16), ResultTTL: 86_400_000, Enqueued: 1_700_000_000_000_000}).Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeJob(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestJobRecordAsMsgpackWrites: Encode writes a record byte for byte as the msgpack library
// writes its fields with compact integers (what jobs.lua and every earlier version read), for
// records with and without the optional fields, strings of every length class and integers
// of every width, negative ones too; msgpack.Marshal of a Job writes the same bytes.
func TestJobRecordAsMsgpackWrites(t *testing.T) {
	reference := func(j *Job) []byte {
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		n := j.storedFields()
		errs := []error{enc.EncodeArrayLen(n), enc.EncodeString(j.Key), enc.EncodeString(j.Handler), enc.EncodeString(string(j.Payload)),
			enc.EncodeInt(int64(j.Priority.Line())), enc.EncodeInt(int64(j.MaxRetries)), enc.EncodeInt(int64(j.Failures)),
			enc.EncodeInt(int64(j.Runs)), enc.EncodeInt(int64(j.Lost)), enc.EncodeInt(j.Wait), enc.EncodeInt(int64(j.State)),
			enc.EncodeString(string(j.Holder)), enc.EncodeString(string(j.Owner)), enc.EncodeInt(j.ResultTTL),
			enc.EncodeInt(j.Enqueued)}
		if n > jobFields {
			errs = append(errs, enc.EncodeInt(max(1, j.Cost)))
		}
		if n > jobFields+1 {
			errs = append(errs, enc.EncodeString(j.TraceParent))
		}
		if n > jobFields+2 {
			errs = append(errs, enc.EncodeString(j.TraceState))
		}
		if n > jobFields+3 {
			errs = append(errs, enc.EncodeString(j.Tenant), enc.EncodeInt(max(1, j.Weight)))
		}
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	var jobs []Job
	for _, size := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		for _, v := range []int64{0, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, -1, -32, -33, -128, -129, -32768, -32769, -1 << 31, -1<<31 - 1} {
			jobs = append(jobs, Job{Key: string(bytes.Repeat([]byte{'k'}, size%300)), Handler: "h", Payload: bytes.Repeat([]byte{0xff}, size),
				Priority: config.PriorityLow, MaxRetries: int(v), Failures: int(v), Runs: int(v), Lost: int(v), Wait: v,
				Holder: bytes.Repeat([]byte{1}, 16), Owner: bytes.Repeat([]byte{2}, 16), ResultTTL: v, Enqueued: v})
		}
	}
	full := jobs[len(jobs)-1]
	full.Cost, full.TraceParent, full.TraceState, full.Tenant, full.Weight = 7, "00-4bf92f35-01", "k=v", "tenant", 70000
	jobs = append(jobs, full, Job{Key: "k", Cost: 3}, Job{Key: "k", TraceParent: "tp"}, Job{Key: "k", TraceState: "ts"},
		Job{Key: "k", Tenant: "t"})
	for _, j := range jobs {
		want := reference(&j)
		got, err := j.Encode()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("record of %d fields, payload %d bytes, ints %d: % x, %v; msgpack writes % x",
				j.storedFields(), len(j.Payload), j.Wait, got[:min(len(got), 48)], err, want[:min(len(want), 48)])
		}
		if m, err := msgpack.Marshal(&j); err != nil || !bytes.Equal(m, want) {
			t.Fatalf("msgpack.Marshal of a record: % x, %v; want Encode's bytes", m[:min(len(m), 48)], err)
		}
	}
}

func BenchmarkEncodeJob(b *testing.B) {
	j := Job{Key: "jobs", Handler: "echo", Payload: make([]byte, 100), Priority: config.PriorityNormal, Wait: 600_000_000,
		Owner: bytes.Repeat([]byte{2}, 16), ResultTTL: 86_400_000, Enqueued: 1_700_000_000_000_000}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
