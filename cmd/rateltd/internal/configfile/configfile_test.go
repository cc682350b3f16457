package configfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
)

// TestParseConcurrency: a limit's concurrency, alone (no max, no window) or beside a rate.
func TestParseConcurrency(t *testing.T) {
	f, err := Parse("rateltd.yaml", []byte(`
default: {concurrency: 8}
limits:
  render: {concurrency: 4, max_queue: 50}
  openai: {max: 500, window: 1m, concurrency: 20}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rateltd.Limit{
		"render": {Concurrency: 4, MaxQueue: 50},
		"openai": {Max: 500, Window: time.Minute, Concurrency: 20},
	}
	if !reflect.DeepEqual(f.Config.Limits, want) || !reflect.DeepEqual(f.Config.Default, rateltd.Limit{Concurrency: 8}) {
		t.Fatalf("parsed %+v, default %+v\nwant %+v", f.Config.Limits, f.Config.Default, want)
	}
}

// TestParseRates: a limit's units and also (a list of rates, each max, window, burst, units).
func TestParseRates(t *testing.T) {
	f, err := Parse("rateltd.yaml", []byte(`
limits:
  openai:
    max: 500
    window: 1m
    also:
      - {max: 30000, window: 1m, units: true}
      - {max: 10, window: 1s}
  embed: {max: 1000000, window: 1m, units: true}
  tb: {algorithm: token, max: 10, window: 1s, also: [{max: 100, window: 1m, burst: 20, units: true}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rateltd.Limit{
		"openai": {Max: 500, Window: time.Minute, Also: []rateltd.Rate{{Max: 30000, Window: time.Minute, Units: true}, {Max: 10, Window: time.Second}}},
		"embed":  {Max: 1000000, Window: time.Minute, Units: true},
		"tb":     {Algorithm: config.TokenBucket, Max: 10, Window: time.Second, Also: []rateltd.Rate{{Max: 100, Window: time.Minute, Burst: 20, Units: true}}},
	}
	if !reflect.DeepEqual(f.Config.Limits, want) {
		t.Fatalf("parsed %+v\nwant %+v", f.Config.Limits, want)
	}
}

func TestParse(t *testing.T) {
	f, err := Parse("rateltd.yaml", []byte(`
redis: redis://127.0.0.1:6379/0
prefix: svc
admin_token: s3cret
client_token: cl1ent
default: {max: 10, window: 1s}
limits:
  openai: {max: 500, window: 1m, max_queue: 5000, queue_timeout: 2m}
  stripe: {algorithm: token, max: 100, window: 1s, burst: 20, overflow: drop_oldest}
poll_interval: 500ms
`))
	if err != nil {
		t.Fatal(err)
	}
	want := rateltd.Limit{Algorithm: config.TokenBucket, Max: 100, Window: time.Second, Burst: 20, Overflow: config.DropOldest}
	if f.RedisURL != "redis://127.0.0.1:6379/0" || f.Config.Prefix != "svc" || f.AdminToken != "s3cret" || f.ClientToken != "cl1ent" ||
		f.Config.Default.Max != 10 || !reflect.DeepEqual(f.Config.Limits["stripe"], want) || f.Config.Limits["openai"].QueueTimeout != 2*time.Minute ||
		f.Config.PollInterval != 500*time.Millisecond {
		t.Fatalf("parsed %+v", f)
	}
	if f, err := Parse("empty.yaml", nil); err != nil || f.Config.Limits != nil {
		t.Fatalf("empty file: %+v, %v", f, err)
	}
}

// TestParseErrors: every error names the file, the line and the field.
func TestParseErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"colour: red", "f.yaml:1: colour: unknown setting"},
		{"limits:\n  openai: {max: 5, window: 1 minute}", "f.yaml:2: limits.openai.window"},
		{"limits:\n  a: {max: 5, window: 1m}\n  b: {max: many, window: 1m}", "f.yaml:3: limits.b.max"},
		{"limits:\n  a: {max: 0, window: 1m}", "f.yaml:2: rateltd: invalid config: limits.a.Max"},
		{"default: {max: 5, window: 1m, algorithm: leaky}", "f.yaml:1: default.algorithm"},
		{"limits:\n  \"a{b}\": {max: 5, window: 1m}", "f.yaml:2: limits.a{b}"},
		{"default: {max: 5, window: 1m, overflow: maybe}", "default.overflow"},
		{"poll_interval: 1s\nclaim_timeout: 1s", "ClaimTimeout"},
		{"redis: x\ncluster: [a:1]", "redis and cluster"},
		{"limits: [1, 2]", "f.yaml:1: limits: want a mapping"},
		{"- a\n- b", "f.yaml:1: want a mapping of settings"},
		{"default: {max: 5", "f.yaml"},
		{"default: {max: 5, window: 1m, units: maybe}", "f.yaml:1: default.units: \"maybe\": want true or false"},
		{"default: {max: 5, window: 1m, also: {max: 5}}", "f.yaml:1: default.also: want a list"},
		{"limits:\n  a:\n    max: 5\n    window: 1m\n    also:\n      - {max: 5, window: 1s}\n      - {max: 5, window: 1 hour}", "f.yaml:7: limits.a.also[1].window"},
		{"limits:\n  a:\n    max: 5\n    window: 1m\n    also:\n      - {max: 5, window: 1s}\n      - {max: 0, window: 1h}", "f.yaml:7: rateltd: invalid config: limits.a.also[1].Max"},
		{"limits:\n  a:\n    max: 5\n    window: 1m\n    also:\n      - {max: 5, window: 1s, burst: 2}", "f.yaml:6: rateltd: invalid config: limits.a.also[0].Burst"},
		{"limits:\n  a:\n    max: 5\n    window: 1m\n    also:\n      - {max: 5, window: 1s, colour: red}", "f.yaml:6: limits.a.also[0].colour: unknown setting"},
		{"limits:\n  a:\n    max: 5\n    window: 1m\n    also:\n      - 5", "f.yaml:6: limits.a.also[0]: want a mapping"},
		{"limits:\n  a:\n    concurrency: lots", "f.yaml:3: limits.a.concurrency: \"lots\" is not a whole number"},
		{"limits:\n  a: {concurrency: -2}", "f.yaml:2: rateltd: invalid config: limits.a.Concurrency"},
		{"limits:\n  a: {concurrency: 2, max: 5}", "f.yaml:2: rateltd: invalid config: limits.a.Window"},
		{"default: {max: 5, window: 1m, also: [{max: 1, window: 1s}, {max: 1, window: 1s}, {max: 1, window: 1s}, {max: 1, window: 1s}, {max: 1, window: 1s}]}", "f.yaml:1: default.also: at most 4 rates"},
	}
	for _, tc := range cases {
		_, err := Parse("f.yaml", []byte(tc.yaml))
		if !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}
