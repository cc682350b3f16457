package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
)

// TestAPITenants: the limit's tenant_weights and max_queue_per_tenant go through PUT and GET of
// the limit; ?tenant= on acquire and jobs puts the request or job in its tenant's share, as the
// status's tenants and tenants_waiting show and max_queue_per_tenant bounds (429 for a third of
// tenant a, not for b's); an invalid tenant or weight is a 400.
func TestAPITenants(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, c := server(t, backend, rateltd.Config{Default: rateltd.Limit{Max: 100, Window: time.Minute}}, httpapi.Options{})
		ctx := context.Background()
		put := `{"algorithm":"sliding","max":100,"window":"1m","tenant_weights":{"gold":3,"a":2},"max_queue_per_tenant":2}`
		if a := call(t, ts, "PUT", "/v1/keys/tk/limit", "", put); a.code != 200 {
			t.Fatalf("put limit: %d %s", a.code, a.raw)
		}
		var lj httpapi.LimitJSON
		a := call(t, ts, "GET", "/v1/keys/tk/limit", "", "")
		if err := json.Unmarshal([]byte(a.raw), &lj); err != nil || fmt.Sprint(lj.TenantWeights) != "map[a:2 gold:3]" || lj.MaxQueuePerTenant != 2 {
			t.Fatalf("get limit: %d %s; want tenant_weights {a:2, gold:3} and max_queue_per_tenant 2", a.code, a.raw)
		}
		if l, err := c.LimitOf("tk"); err != nil || l.TenantWeights["gold"] != 3 || l.MaxQueuePerTenant != 2 {
			t.Fatalf("the library's limit: %+v %v", l, err)
		}
		for _, bad := range []string{`{"gold":0}`, `{"gold":1001}`, `{"a=b":2}`} {
			body := `{"algorithm":"sliding","max":100,"window":"1m","tenant_weights":` + bad + `}`
			if a := call(t, ts, "PUT", "/v1/keys/tk/limit", "", body); a.code != 400 || !strings.Contains(a.raw, "tenant") {
				t.Errorf("tenant_weights %s: %d %s; want 400 naming the tenant", bad, a.code, a.raw)
			}
		}

		if err := c.Pause(ctx, "tk"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		codes := make(chan int, 3)
		for _, tenant := range []string{"a", "a", "b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := ts.Client().Post(ts.URL+"/v1/acquire/tk?wait=50s&tenant="+tenant, "", nil)
				if err != nil {
					codes <- 0
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}()
		}
		defer wg.Wait()
		defer c.Resume(ctx, "tk") //nolint:errcheck // the waiting acquires end either way at their wait
		if a := call(t, ts, "POST", "/v1/jobs/tk?handler=h&allow_unknown=1&tenant=c", "", "x"); a.code != 201 {
			t.Fatalf("enqueue with a tenant: %d %s", a.code, a.raw)
		}
		var st httpapi.StatusJSON
		deadline := time.Now().Add(20 * time.Second)
		for {
			a := call(t, ts, "GET", "/v1/keys/tk", "", "")
			if err := json.Unmarshal([]byte(a.raw), &st); err != nil {
				t.Fatalf("status: %d %s", a.code, a.raw)
			}
			if st.Queued == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("status after 20s: %s; want 4 queued", a.raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if want := []httpapi.TenantJSON{{"a", 2}, {"b", 1}, {"c", 1}}; fmt.Sprint(st.Tenants) != fmt.Sprint(want) || st.TenantsWaiting != 3 {
			t.Fatalf("tenants %v (%d waiting), want %v (3)", st.Tenants, st.TenantsWaiting, want)
		}
		a = call(t, ts, "GET", "/v1/keys/tk", "", "")
		if !strings.Contains(a.raw, `"tenants":[{"tenant":"a","waiting":2},`) || !strings.Contains(a.raw, `"tenants_waiting":3`) {
			t.Fatalf("status JSON: %s", a.raw)
		}
		if a := call(t, ts, "POST", "/v1/acquire/tk?wait=1s&tenant=a", "", ""); a.code != 429 {
			t.Fatalf("a third of tenant a with max_queue_per_tenant 2: %d %s; want 429", a.code, a.raw)
		}
		if a := call(t, ts, "POST", "/v1/jobs/tk?handler=h&allow_unknown=1&tenant=a", "", "x"); a.code != 429 {
			t.Fatalf("a job as a third of tenant a: %d %s; want 429", a.code, a.raw)
		}
		for _, path := range []string{"/v1/acquire/tk?tenant=a%3Db", "/v1/jobs/tk?handler=h&allow_unknown=1&tenant=" + strings.Repeat("x", 65)} {
			if a := call(t, ts, "POST", path, "", "x"); a.code != 400 || !strings.Contains(a.raw, "tenant") {
				t.Errorf("%s: %d %s; want 400 naming the tenant", path, a.code, a.raw)
			}
		}
		if err := c.Resume(ctx, "tk"); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for range 3 {
			if code := <-codes; code != http.StatusOK {
				t.Errorf("a waiting acquire ended with %d; want 200 once resumed", code)
			}
		}
	})
}
