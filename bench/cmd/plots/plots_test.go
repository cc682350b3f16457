package main

import (
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rateltd/rateltd/bench/internal/result"
)

// TestDraw renders every figure from a small file of samples in TestCompare's format, and
// checks that each is a PNG of the figures' size.
func TestDraw(t *testing.T) {
	ss, err := result.ReadFile(filepath.Join("testdata", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	written, err := drawAll(ss, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"throughput.png", "latency.png", "scale-grants.png", "scale-memory.png"}
	for i := range want {
		want[i] = filepath.Join(dir, want[i])
	}
	if !slices.Equal(written, want) {
		t.Fatalf("wrote %q, want %q", written, want)
	}
	for _, f := range written {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if cfg.Width != 768 || cfg.Height != 480 {
			t.Errorf("%s: %d×%d, want 768×480", f, cfg.Width, cfg.Height)
		}
	}
}

// TestDrawSkipsMissingParts: a file with the sweep alone gives the sweep's figures alone, and
// one with none of the parts is an error.
func TestDrawSkipsMissingParts(t *testing.T) {
	ss, err := result.ReadFile(filepath.Join("testdata", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	sweep := slices.DeleteFunc(slices.Clone(ss), func(s result.Sample) bool { return s.Part != result.PartSweep })
	dir := t.TempDir()
	written, err := drawAll(sweep, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "throughput.png"), filepath.Join(dir, "latency.png")}; !slices.Equal(written, want) {
		t.Errorf("wrote %q, want %q", written, want)
	}
	in := filepath.Join(dir, "none.json")
	if err := os.WriteFile(in, []byte(`[{"scenario":"fast path, one key / 1 goroutine","contender":"ulule","per_second":1}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, dir); err == nil {
		t.Error("run: no error for a file without the plots' parts")
	}
}
