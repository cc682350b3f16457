package configfile

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
)

// TestParseShadow: a limit's shadow, a boolean; anything else is refused naming the field.
func TestParseShadow(t *testing.T) {
	f, err := Parse("rateltd.yaml", []byte(`
limits:
  search: {max: 50, window: 1s, shadow: true}
  openai: {max: 500, window: 1m, shadow: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rateltd.Limit{
		"search": {Max: 50, Window: time.Second, Shadow: true},
		"openai": {Max: 500, Window: time.Minute},
	}
	if !reflect.DeepEqual(f.Config.Limits, want) {
		t.Fatalf("parsed %+v\nwant %+v", f.Config.Limits, want)
	}
	_, err = Parse("rateltd.yaml", []byte("limits:\n  search: {max: 50, window: 1s, shadow: sometimes}\n"))
	if err == nil || !strings.Contains(err.Error(), "limits.search.shadow") {
		t.Fatalf("shadow: sometimes: %v, want an error naming limits.search.shadow", err)
	}
}
