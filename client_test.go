package rateltd

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
)

// TestZeroClient: every exported method of a Client that New did not make (the zero Client,
// and a nil *Client) returns ErrClosed instead of panicking; Close does nothing. Methods are
// found by reflection, so one added later is covered too.
func TestZeroClient(t *testing.T) {
	ctxType := reflect.TypeFor[context.Context]()
	errType := reflect.TypeFor[error]()
	for name, c := range map[string]*Client{"zero": {}, "nil": nil} {
		rc := reflect.ValueOf(c)
		for i := range rc.NumMethod() {
			m, mt := rc.Method(i), rc.Type().Method(i)
			t.Run(name+"/"+mt.Name, func(t *testing.T) {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panicked: %v", r)
					}
				}()
				args := make([]reflect.Value, m.Type().NumIn())
				for j := range args {
					switch in := m.Type().In(j); {
					case in == ctxType:
						args[j] = reflect.ValueOf(context.Background())
					case in.Kind() == reflect.String:
						args[j] = reflect.ValueOf("k").Convert(in)
					case in.Kind() == reflect.Int:
						args[j] = reflect.ValueOf(1).Convert(in)
					default:
						args[j] = reflect.Zero(in)
					}
				}
				call := m.Call
				if m.Type().IsVariadic() {
					call = m.CallSlice // the options: a nil []Option
				}
				out := call(args)
				var err error
				switch last := out[len(out)-1]; {
				case last.Type() == errType:
					err, _ = last.Interface().(error)
				case last.Type() == reflect.TypeFor[<-chan Result]():
					err = (<-last.Interface().(<-chan Result)).Err
				default:
					t.Fatalf("returns %v; teach this test what to expect of it", last.Type())
				}
				want := ErrClosed
				if mt.Name == "Close" {
					want = nil
				}
				if !errors.Is(err, want) || (want == nil && err != nil) {
					t.Fatalf("error %v, want %v", err, want)
				}
			})
		}
	}
	var c Client
	ctx := context.Background()
	if _, err := Do(ctx, &c, "k", func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do: %v, want ErrClosed", err)
	}
	if err := HandleFunc(&c, "h", func(context.Context, int) (int, error) { return 1, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("HandleFunc: %v, want ErrClosed", err)
	}
	if _, err := Call[int, int](ctx, &c, "k", "h", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Call: %v, want ErrClosed", err)
	}
}

// TestNewRefusesRing: New refuses a *redis.Ring, naming Config.Redis and why, even one whose
// shard answers: its pub/sub, script loading and SCAN reach one shard only.
func TestNewRefusesRing(t *testing.T) {
	srv := redistest.Server(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv.Addr()}})
	defer ring.Close()
	if err := ring.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Redis: ring, Prefix: srv.Prefix(t)})
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Config.Redis") || !strings.Contains(err.Error(), "Ring") {
		t.Fatalf("New with a *redis.Ring: %v; want ErrInvalidConfig naming Config.Redis and the Ring", err)
	}
}
