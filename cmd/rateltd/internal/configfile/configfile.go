// Package configfile reads the rateltd command's configuration file (YAML): the settings of a
// rateltd.Config and those of the command's service (the Redis to use, the tokens). It lives
// with the command, so that a program importing rateltd pulls in no YAML library.
package configfile

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
)

// File is what a configuration file (YAML) holds: the settings of a Config, and those of the
// rateltd command's service. Example:
//
//	redis: redis://127.0.0.1:6379/0   # or cluster: [host:port, ...]
//	prefix: rateltd
//	admin_token: change-me
//	client_token: change-me-too
//	default: {max: 100, window: 1m}
//	limits:
//	  openai: {max: 500, window: 1m, max_queue: 5000, queue_timeout: 2m,
//	           also: [{max: 30000, window: 1m, units: true}]}   # and 30,000 tokens a minute
//	  stripe: {algorithm: token, max: 100, window: 1s, burst: 20, overflow: drop_oldest}
//	  embed: {max: 1000000, window: 1m, units: true}            # max counts cost units
//	  render: {concurrency: 4}                                  # at most 4 running at once, no rate
//	  search: {max: 50, window: 1s, shadow: true}               # watched, not enforced yet
//	  partner: {max: 100, window: 1s, adaptive: true}           # follows the upstream (Observe, 429s)
//	  shared: {max: 100, window: 1s, tenant_weights: {gold: 3}, max_queue_per_tenant: 100}
//	                                                            # tenants' shares (WithTenant)
//	batch_size: 100
//	poll_interval: 1s
//	claim_timeout: 5s
//	stats_ttl: 1h
type File struct {
	// Config holds the limits and settings; its Redis is nil (see RedisURL and Cluster).
	Config rateltd.Config
	// RedisURL is the Redis to use ("redis: ..."); Cluster, the addresses of a Redis Cluster.
	RedisURL string
	Cluster  []string
	// AdminToken protects the service's admin routes ("admin_token: ...").
	AdminToken string
	// ClientToken protects the service's acquire, jobs and stream routes ("client_token: ...").
	ClientToken string
}

// Load reads and checks the configuration file at path. Errors name the file, the line
// and the field.
func Load(path string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("%w: %w", config.ErrInvalidConfig, err)
	}
	return Parse(path, data)
}

// Parse parses the YAML configuration data; name labels errors.
func Parse(name string, data []byte) (File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return File{}, fmt.Errorf("%w: %s: %v", config.ErrInvalidConfig, name, err)
	}
	p := fileParser{name: name}
	var f File
	if len(root.Content) == 0 {
		return f, nil // an empty file: every default
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return f, p.errf(top, "", "want a mapping of settings")
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		var err error
		switch k.Value {
		case "redis":
			f.RedisURL, err = p.str(v, "redis")
		case "cluster":
			f.Cluster, err = p.strs(v, "cluster")
		case "prefix":
			f.Config.Prefix, err = p.str(v, "prefix")
		case "admin_token":
			f.AdminToken, err = p.str(v, "admin_token")
		case "client_token":
			f.ClientToken, err = p.str(v, "client_token")
		case "default":
			f.Config.Default, err = p.limit(v, "default")
		case "limits":
			f.Config.Limits, err = p.limits(v)
		case "batch_size":
			f.Config.BatchSize, err = p.int(v, "batch_size")
		case "index_shards":
			f.Config.IndexShards, err = p.int(v, "index_shards")
		case "poll_interval":
			f.Config.PollInterval, err = p.duration(v, "poll_interval")
		case "claim_timeout":
			f.Config.ClaimTimeout, err = p.duration(v, "claim_timeout")
		case "stats_ttl":
			f.Config.StatsTTL, err = p.duration(v, "stats_ttl")
		default:
			err = p.errf(k, k.Value, "unknown setting")
		}
		if err != nil {
			return File{}, err
		}
	}
	if f.RedisURL != "" && len(f.Cluster) > 0 {
		return File{}, fmt.Errorf("%w: %s: redis and cluster: give one", config.ErrInvalidConfig, name)
	}
	// What no single field shows (ClaimTimeout against PollInterval, say).
	if err := f.Config.WithDefaults().Validate(); err != nil {
		return File{}, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

type fileParser struct{ name string }

func (p fileParser) errf(n *yaml.Node, field, format string, args ...any) error {
	where := p.name + ":" + strconv.Itoa(n.Line)
	if field != "" {
		where += ": " + field
	}
	return fmt.Errorf("%w: %s: %s", config.ErrInvalidConfig, where, fmt.Sprintf(format, args...))
}

func (p fileParser) str(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", p.errf(n, field, "want a string")
	}
	return n.Value, nil
}

func (p fileParser) strs(n *yaml.Node, field string) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		return strings.Split(n.Value, ","), nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, field, "want a list")
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, err := p.str(c, field)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (p fileParser) int(n *yaml.Node, field string) (int, error) {
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return 0, p.errf(n, field, "%q is not a whole number", n.Value)
	}
	return v, nil
}

func (p fileParser) bool(n *yaml.Node, field string) (bool, error) {
	v, err := strconv.ParseBool(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return false, p.errf(n, field, "%q: want true or false", n.Value)
	}
	return v, nil
}

func (p fileParser) duration(n *yaml.Node, field string) (time.Duration, error) {
	d, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return 0, p.errf(n, field, "%q is not a duration such as 1m or 500ms", n.Value)
	}
	return d, nil
}

func (p fileParser) limits(n *yaml.Node) (map[string]rateltd.Limit, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, "limits", "want a mapping of key or group to limit")
	}
	out := map[string]rateltd.Limit{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := "limits." + k.Value
		if err := config.ValidateKey(k.Value); err != nil {
			return nil, p.errf(k, field, "%v", err)
		}
		l, err := p.limit(v, field)
		if err != nil {
			return nil, err
		}
		out[k.Value] = l
	}
	return out, nil
}

func (p fileParser) limit(n *yaml.Node, field string) (rateltd.Limit, error) {
	var l rateltd.Limit
	var also []*yaml.Node // the node of each rate of l.Also
	if n.Kind != yaml.MappingNode {
		return l, p.errf(n, field, "want a mapping such as {max: 100, window: 1m}")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := field + "." + k.Value
		var err error
		switch k.Value {
		case "algorithm":
			if l.Algorithm, err = config.ParseAlgorithm(v.Value); err != nil {
				err = p.errf(v, f, "%q: want sliding, fixed or token", v.Value)
			}
		case "max":
			l.Max, err = p.int(v, f)
		case "window":
			l.Window, err = p.duration(v, f)
		case "burst":
			l.Burst, err = p.int(v, f)
		case "units":
			l.Units, err = p.bool(v, f)
		case "also":
			l.Also, also, err = p.rates(v, f)
		case "concurrency":
			l.Concurrency, err = p.int(v, f)
		case "shadow":
			l.Shadow, err = p.bool(v, f)
		case "adaptive":
			l.Adaptive, err = p.bool(v, f)
		case "max_queue":
			l.MaxQueue, err = p.int(v, f)
		case "max_queue_per_tenant":
			l.MaxQueuePerTenant, err = p.int(v, f)
		case "tenant_weights":
			l.TenantWeights, err = p.weights(v, f)
		case "queue_timeout":
			l.QueueTimeout, err = p.duration(v, f)
		case "overflow":
			switch v.Value {
			case "reject":
				l.Overflow = config.Reject
			case "drop_oldest":
				l.Overflow = config.DropOldest
			default:
				err = p.errf(v, f, "%q: want reject or drop_oldest", v.Value)
			}
		default:
			err = p.errf(k, f, "unknown setting")
		}
		if err != nil {
			return l, err
		}
	}
	// Each further rate is checked at its own line (under the limit's algorithm), then the
	// limit as a whole.
	for i, r := range l.Also {
		only := rateltd.Limit{Algorithm: l.Algorithm, Max: r.Max, Window: r.Window, Burst: r.Burst}
		if err := only.ValidateAs(fmt.Sprintf("%s.also[%d]", field, i)); err != nil {
			return l, fmt.Errorf("%s:%d: %w", p.name, also[i].Line, err)
		}
	}
	if err := l.ValidateAs(field); err != nil {
		return l, fmt.Errorf("%s:%d: %w", p.name, n.Line, err)
	}
	return l, nil
}

// weights parses a limit's tenant_weights: a mapping of tenant to weight, each checked at its
// own line.
func (p fileParser) weights(n *yaml.Node, field string) (map[string]int, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, field, "want a mapping of tenant to weight such as {gold: 3}")
	}
	out := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		w, err := p.int(v, field+"."+k.Value)
		if err != nil {
			return nil, err
		}
		if _, err := config.WeightsString(map[string]int{k.Value: w}); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", p.name, k.Line, field, err)
		}
		out[k.Value] = w
	}
	return out, nil
}

// rates parses a limit's also: a list of at most config.MaxAlso rates, each a mapping of max,
// window, burst and units. It returns the node of each rate too.
func (p fileParser) rates(n *yaml.Node, field string) ([]rateltd.Rate, []*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, nil, p.errf(n, field, "want a list of rates such as [{max: 30000, window: 1m, units: true}]")
	}
	if len(n.Content) > config.MaxAlso {
		return nil, nil, p.errf(n, field, "at most %d rates, got %d", config.MaxAlso, len(n.Content))
	}
	out := make([]rateltd.Rate, len(n.Content))
	for i, rn := range n.Content {
		rf := fmt.Sprintf("%s[%d]", field, i)
		if rn.Kind != yaml.MappingNode {
			return nil, nil, p.errf(rn, rf, "want a mapping such as {max: 30000, window: 1m, units: true}")
		}
		for j := 0; j+1 < len(rn.Content); j += 2 {
			k, v := rn.Content[j], rn.Content[j+1]
			f := rf + "." + k.Value
			var err error
			switch k.Value {
			case "max":
				out[i].Max, err = p.int(v, f)
			case "window":
				out[i].Window, err = p.duration(v, f)
			case "burst":
				out[i].Burst, err = p.int(v, f)
			case "units":
				out[i].Units, err = p.bool(v, f)
			default:
				err = p.errf(k, f, "unknown setting")
			}
			if err != nil {
				return nil, nil, err
			}
		}
	}
	return out, n.Content, nil
}
