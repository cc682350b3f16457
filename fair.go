package rateltd

import (
	"cmp"
	"slices"
)

// TenantWaiting is how many requests and durable jobs one tenant has waiting in a key's line.
type TenantWaiting struct {
	Tenant  string
	Waiting int
}

// TopTenants bounds Status.Tenants.
const TopTenants = 10

// topTenants returns the TopTenants tenants of m with the most waiting (ties by name) and how
// many tenants m holds.
func topTenants(m map[string]int) ([]TenantWaiting, int) {
	if len(m) == 0 {
		return nil, 0
	}
	all := make([]TenantWaiting, 0, len(m))
	for t, n := range m {
		all = append(all, TenantWaiting{Tenant: t, Waiting: n})
	}
	slices.SortFunc(all, func(a, b TenantWaiting) int {
		return cmp.Or(cmp.Compare(b.Waiting, a.Waiting), cmp.Compare(a.Tenant, b.Tenant))
	})
	return all[:min(len(all), TopTenants)], len(all)
}
