package configfile

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
)

// TestParseTenants: a limit's tenant_weights (a mapping of tenant to weight) and
// max_queue_per_tenant; a bad tenant, weight or bound is refused naming the field and its line.
func TestParseTenants(t *testing.T) {
	f, err := Parse("rateltd.yaml", []byte(`
limits:
  shared: {max: 100, window: 1s, tenant_weights: {gold: 3, silver: 2}, max_queue_per_tenant: 100}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rateltd.Limit{"shared": {Max: 100, Window: time.Second,
		TenantWeights: map[string]int{"gold": 3, "silver": 2}, MaxQueuePerTenant: 100}}
	if !reflect.DeepEqual(f.Config.Limits, want) {
		t.Fatalf("parsed %+v\nwant %+v", f.Config.Limits, want)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"tenant_weights: {gold: 0}", `rateltd.yaml:3: limits.shared.tenant_weights: rateltd: invalid config: tenant "gold": weight 0`},
		{"tenant_weights: {gold: 1001}", "weight 1001"},
		{"tenant_weights: {gold: many}", "limits.shared.tenant_weights.gold"},
		{"tenant_weights: [gold]", "want a mapping of tenant to weight"},
		{`tenant_weights: {"a=b": 2}`, `tenant "a=b"`},
		{"max_queue_per_tenant: -1", "MaxQueuePerTenant"},
		{"max_queue_per_tenant: lots", "limits.shared.max_queue_per_tenant"},
	} {
		_, err := Parse("rateltd.yaml", []byte("limits:\n  shared:\n    {max: 100, window: 1s, "+tc.yaml+"}\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error with %q", tc.yaml, err, tc.want)
		}
	}
}
