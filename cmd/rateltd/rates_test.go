package main

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
)

// TestLimitSetRates: limit set takes --units and repeated --also; the library holds the rates
// set, limit get shows them, and status shows what each rate counts (requests or units) and the
// settled-units counters, as a table and as JSON.
func TestLimitSetRates(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	code, out, errOut := c.run("limit", "set", "llm", "--max", "100", "--window", "1h", "--units",
		"--also", "5/1m", "--also", "1000/24h/units")
	if code != 0 || !strings.Contains(out, "llm: 100 units/1h sliding + 5/1m + 1000 units/24h") {
		t.Fatalf("limit set: %d %q %q", code, out, errOut)
	}
	want := rateltd.Limit{Max: 100, Window: time.Hour, Units: true,
		Also: []rateltd.Rate{{Max: 5, Window: time.Minute}, {Max: 1000, Window: 24 * time.Hour, Units: true}}}
	c.eventually("the library sees the rates set", func() bool {
		l, _ := c.lib.LimitOf("llm")
		return l.Units && reflect.DeepEqual(l.Also, want.Also)
	})
	if code, out, _ := c.run("limit", "get", "llm", "--json"); code != 0 || !strings.Contains(out, `"units":true,"also":[{"max":5,"window":"1m0s","units":false}`) {
		t.Fatalf("limit get --json: %d %q", code, out)
	}
	if _, err := c.lib.Request(ctx, "llm", func(ctx context.Context) (any, error) { return nil, rateltd.Settle(ctx, 20) },
		rateltd.WithCost(30)); err != nil {
		t.Fatal(err)
	}
	code, out, _ = c.run("status", "llm")
	for _, line := range []string{
		"KEY  RATE     COUNTS    USED  REMAINING  SETTLED  UNITS RETURNED  UNITS OVER",
		"llm  100/1h   units     20    80         1        10              0",
		"llm  5/1m     requests  1     4",
		"llm  1000/24h units     20    980",
	} {
		if code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(line), " ")) {
			t.Fatalf("status: %d, no line %q in\n%s", code, line, out)
		}
	}
	var sts []httpapi.StatusJSON
	if code, out, _ := c.run("status", "llm", "--json"); code != 0 || json.Unmarshal([]byte(out), &sts) != nil ||
		len(sts) != 1 || len(sts[0].Rates) != 3 || sts[0].Rates[1].Used != 1 || sts[0].Counters["units_returned"] != 10 {
		t.Fatalf("status --json: %d %q", code, out)
	}
	// A key of one rate counting requests gets no table of rates.
	c.lib.Request(ctx, "plain", func(context.Context) (any, error) { return nil, nil })
	if _, out, _ := c.run("status", "plain"); strings.Contains(out, "COUNTS") {
		t.Fatalf("status of a plain key shows a table of rates:\n%s", out)
	}
	if code, out, _ := c.run("limit", "set", "tb", "--max", "10", "--window", "1s", "--algorithm", "token",
		"--also", "100/1m/burst=20/units"); code != 0 || !strings.Contains(out, "10/1s token burst 10 + 100 units/1m burst 20") {
		t.Fatalf("limit set token with --also burst: %d %q", code, out)
	}
}

// TestLimitSetRatesBadInput: a bad --also exits 2 naming what is wrong.
func TestLimitSetRatesBadInput(t *testing.T) {
	c := newCLI(t)
	set := []string{"limit", "set", "k", "--max", "5", "--window", "1m"}
	for _, tc := range []struct {
		also []string
		want string
	}{
		{[]string{"5"}, "MAX/WINDOW"},
		{[]string{"x/1m"}, `max "x"`},
		{[]string{"5/soon"}, `window "soon"`},
		{[]string{"5/1m/tokens"}, `"tokens": want units or burst=N`},
		{[]string{"5/1m/units/units"}, "each once"},
		{[]string{"5/1m/burst=0"}, `burst "0"`},
		{[]string{"5/1m/burst=2"}, "limit.Also[0].Burst"},
		{[]string{"0/1m"}, "limit.Also[0].Max"},
		{[]string{"1/1s", "1/1s", "1/1s", "1/1s", "1/1s"}, "at most 4"},
	} {
		args := append([]string(nil), set...)
		for _, a := range tc.also {
			args = append(args, "--also", a)
		}
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"--redis", c.url, "--prefix", c.prefix}, args...), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("--also %q: exit %d, %q; want 2 and %q", tc.also, code, errOut.String(), tc.want)
		}
	}
	var out, errOut bytes.Buffer
	if run(context.Background(), []string{"limit", "--help"}, &out, &errOut); !strings.Contains(out.String(), "--also 30000/1m/units") {
		t.Fatalf("limit --help does not show --also: %q", out.String())
	}
}
