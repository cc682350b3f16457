package configfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/rateltd/rateltd/config"
)

// FuzzParse: any file either parses into settings that validate, or is refused with
// config.ErrInvalidConfig and an error that names the file. Its seeds run with go test.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "# nothing\n", "redis: redis://127.0.0.1:6379/0\nprefix: svc\nadmin_token: a\nclient_token: c\n",
		"default: {max: 10, window: 1s}\nlimits:\n  openai: {max: 500, window: 1m, max_queue: 5000, queue_timeout: 2m}\n",
		"limits:\n  stripe: {algorithm: token, max: 100, window: 1s, burst: 20, overflow: drop_oldest}\n",
		"cluster: [a:1, b:2]\n", "cluster: a:1,b:2\n", "batch_size: 100\nindex_shards: 4\npoll_interval: 1s\nclaim_timeout: 5s\nstats_ttl: 1h\n",
		"colour: red", "limits: [1, 2]", "- a\n- b", "default: {max: 5", "redis: x\ncluster: [a:1]",
		"poll_interval: 1s\nclaim_timeout: 1s", "limits:\n  \"a{b}\": {max: 5, window: 1m}", "poll_interval: -1s",
		"batch_size: 99999999999999999999", "default: {max: -1, window: 1m}", "default: {max: 1, window: 2562048h}",
		"a: &x [*x]", "limits: &l {a: *l}", "default: !!binary aGVsbG8=", "prefix: [a]", "prefix: {a: b}",
		"limits:\n  a: {max: 5, window: 1m}\n  a: {max: 6, window: 1m}", "? [a, b]\n: c", "null", "~", "[]", "{}",
		"limits:\n  \"\": {max: 5, window: 1m}", "limits: {a: null}", "default: {window: 1m}", "stats_ttl: 0s",
		"%YAML 1.2\n---\nprefix: a\n...\n", "---\nprefix: a\n---\nprefix: b\n", "\t", "prefix: \"\\x00\"",
		"limits:\n  a: {max: 5, window: 1m, units: true, also: [{max: 50, window: 1h, units: true}, {max: 1, window: 1s}]}\n",
		"default: {algorithm: token, max: 5, window: 1m, also: [{max: 9, window: 1s, burst: 3}]}", "default: {max: 5, window: 1m, also: []}",
		"default: {max: 5, window: 1m, also: [{}]}", "default: {max: 5, window: 1m, also: [null]}", "default: {max: 5, window: 1m, units: 1}",
		"default: {concurrency: 4}", "limits:\n  a: {max: 5, window: 1m, concurrency: 2}", "default: {concurrency: -1}",
		"default: {concurrency: 4, units: true}", "default: {concurrency: 4, algorithm: token}", "default: {concurrency: [1]}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("f.yaml", data)
		if err != nil {
			if !errors.Is(err, config.ErrInvalidConfig) || !strings.Contains(err.Error(), "f.yaml") {
				t.Fatalf("%q: the error %q is not config.ErrInvalidConfig naming the file", data, err)
			}
			return
		}
		if err := file.Config.WithDefaults().Validate(); err != nil {
			t.Fatalf("%q parsed into settings that do not validate: %v", data, err)
		}
		for k, l := range file.Config.Limits {
			if err := config.ValidateKey(k); err != nil {
				t.Fatalf("%q parsed into an invalid key: %v", data, err)
			}
			if err := l.Validate(); err != nil {
				t.Fatalf("%q parsed into an invalid limit: %v", data, err)
			}
		}
		if file.RedisURL != "" && len(file.Cluster) > 0 {
			t.Fatalf("%q: both redis and cluster", data)
		}
	})
}
