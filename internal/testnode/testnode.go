// Package testnode starts rateltd Clients for the tests of the packages built on the root
// package, on either backend: "memory" (in-process) or "redis" (the shared test server of
// internal/redistest, under a prefix of the test's own); or, for the tests that ask for it,
// "cluster" (the shared test cluster).
package testnode

import (
	"testing"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/redistest"
)

// Backends names both backends, for table-driven tests.
var Backends = []string{"memory", "redis"}

// Client starts a Client on backend with cfg (its Redis is set here, and its Prefix unless
// cfg has one: Clients given one prefix are nodes of one cluster) and closes it at the end of
// the test.
func Client(tb testing.TB, backend string, cfg rateltd.Config) *rateltd.Client {
	tb.Helper()
	switch backend {
	case "redis":
		srv := redistest.Server(tb)
		cfg.Redis = srv.Client(tb)
		if cfg.Prefix == "" {
			cfg.Prefix = srv.Prefix(tb)
		}
	case "cluster":
		cl := redistest.SharedCluster(tb)
		cfg.Redis = cl.Client(tb)
		if cfg.Prefix == "" {
			cfg.Prefix = cl.Prefix(tb)
		}
	}
	c, err := rateltd.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
