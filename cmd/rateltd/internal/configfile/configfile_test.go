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
	}
	for _, tc := range cases {
		_, err := Parse("f.yaml", []byte(tc.yaml))
		if !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}
