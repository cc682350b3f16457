// Package redistest gives tests a real redis-server: never a mock.
//
// Server returns the test binary's shared server. It comes from, in this order: REDIS_URL when
// set (a server already running); redis-server on PATH, started on first use on a free loopback
// port with no persistence, in a temporary directory; a Docker daemon that answers, running the
// image redis:7 (see docker.go). With none of them, tests skip with a message — or fail when
// RATELTD_REQUIRE_REDIS=1, as in CI.
//
// Fresh starts a private server, for tests that kill or restart Redis; it, the clusters and the
// sentinels need redis-server (and redis-cli) on PATH, since tests stop and start their
// processes: without them those tests skip (or fail under RATELTD_REQUIRE_REDIS=1), whatever
// REDIS_URL and Docker offer. REDIS_CLUSTER names an existing cluster instead of the shared one.
//
// Isolate tests by key prefix (Instance.Prefix), never by flushing. Stop the shared server from
// TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		redistest.Stop()
//		os.Exit(code)
//	}
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/redis/go-redis/v9"
)

// Instance is one Redis server a test may use.
type Instance struct {
	addr  string
	dir   string
	conf  string   // a config file given as the first argument (sentinels); "" for none
	extra []string // more redis-server arguments (cluster mode, replication, --sentinel)

	mu     sync.Mutex
	cmd    *exec.Cmd     // the running server; nil when stopped, given by REDIS_URL or in a container
	exited chan struct{} // closed when cmd has exited
	purge  func()        // removes the container of a server run by Docker; nil otherwise
}

// The shared server: written once by openShared (under sharedOnce), read after it.
var (
	sharedOnce   sync.Once
	shared       *Instance
	sharedChoice choice // where shared comes from
	sharedErr    error  // why there is none
)

// Server returns the test binary's shared server, starting it on first use.
func Server(tb testing.TB) *Instance {
	tb.Helper()
	sharedOnce.Do(openShared)
	switch {
	case sharedChoice.src == sourceNone:
		refuse(tb, sharedErr, sharedChoice.fail)
	case sharedErr != nil: // the source was there, but starting or reaching it failed
		unavailable(tb, sharedErr)
	}
	return shared
}

// openShared sets shared (or sharedErr) from the source choose picks.
func openShared() {
	var pool *dockertest.Pool
	probe := func() (err error) {
		pool, err = dockerPool()
		return err
	}
	sharedChoice = choose(os.Getenv("REDIS_URL"), haveBinary() == nil, probe, required())
	switch sharedChoice.src {
	case sourceURL:
		opt, err := redis.ParseURL(os.Getenv("REDIS_URL"))
		if err != nil {
			sharedErr = fmt.Errorf("redistest: REDIS_URL: %w", err)
			return
		}
		shared = &Instance{addr: opt.Addr}
	case sourceBinary:
		dir, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = start(dir, 0)
	case sourceDocker:
		shared, sharedErr = startDocker(pool)
	default:
		sharedErr = sharedChoice.err
	}
}

// Fresh starts a private server for this test, stopped at its cleanup.
func Fresh(tb testing.TB) *Instance {
	tb.Helper()
	return fresh(tb)
}

// FreshPersistent is Fresh with an append-only file synced on every write: what was written
// before a Kill is there after Restart.
func FreshPersistent(tb testing.TB) *Instance {
	tb.Helper()
	return fresh(tb, "--appendonly", "yes", "--appendfsync", "always")
}

// fresh starts a private server with extra arguments, stopped at the test's cleanup.
func fresh(tb testing.TB, extra ...string) *Instance {
	tb.Helper()
	if err := haveBinary(); err != nil {
		unavailable(tb, err)
	}
	inst, err := start(tb.TempDir(), 0, extra...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(inst.stop)
	return inst
}

// Stop stops the shared server and cluster, if this binary started them.
func Stop() {
	if shared != nil {
		shared.stop()
	}
	if sharedCluster != nil {
		for _, n := range sharedCluster.nodes {
			n.stop()
		}
	}
}

// haveBinary says why redis-server cannot be started here, if it cannot.
func haveBinary() error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return fmt.Errorf("redistest: this test starts redis-server itself (REDIS_URL and Docker serve only " +
			"the shared server), and it is not on PATH: apt-get install redis-server")
	}
	return nil
}

// unavailable skips the test for want of err, or fails it under RATELTD_REQUIRE_REDIS=1.
func unavailable(tb testing.TB, err error) {
	tb.Helper()
	refuse(tb, err, required())
}

// refuse fails the test for want of err when fail, else skips it.
func refuse(tb testing.TB, err error, fail bool) {
	tb.Helper()
	if fail {
		tb.Fatalf("%v (RATELTD_REQUIRE_REDIS=1)", err)
	}
	tb.Skip(err)
}

// start runs redis-server in dir on port (0: a free one), waiting until it answers PING.
func start(dir string, port int, extra ...string) (*Instance, error) {
	return startConf(dir, "", port, extra...)
}

// startConf is start with a config file (conf, unless "") as redis-server's first argument.
func startConf(dir, conf string, port int, extra ...string) (*Instance, error) {
	var lastErr error
	for range 3 {
		p := port
		if p == 0 {
			var err error
			if p, err = freePort(); err != nil {
				return nil, err
			}
		}
		inst := &Instance{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), dir: dir, conf: conf, extra: extra}
		if lastErr = inst.run(); lastErr == nil {
			return inst, nil
		}
		if port != 0 {
			break
		}
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (i *Instance) run() error {
	_, port, _ := net.SplitHostPort(i.addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", i.dir, "--daemonize", "no", "--loglevel", "warning"}, i.extra...)
	if i.conf != "" {
		args = append([]string{i.conf}, args...)
	}
	cmd := exec.Command("redis-server", args...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the test binary dies
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	rdb := redis.NewClient(&redis.Options{Addr: i.addr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			i.mu.Lock()
			i.cmd, i.exited = cmd, exited
			i.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redistest: redis-server on %s exited: %s", i.addr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redistest: redis-server on %s did not answer PING within 5s: %v; output: %s", i.addr, err, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Addr is the server's host:port.
func (i *Instance) Addr() string { return i.addr }

// URL is the server's redis:// URL.
func (i *Instance) URL() string { return "redis://" + i.addr + "/0" }

// Client returns a new go-redis client of the server, closed at the test's cleanup.
func (i *Instance) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: i.addr})
	tb.Cleanup(func() { c.Close() })
	return c
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Prefix returns a key prefix of the test's own: its name (shortened) and 8 random hex digits,
// without ':', '{' or '}'.
func (i *Instance) Prefix(tb testing.TB) string {
	name := unsafe.ReplaceAllString(tb.Name(), "_")
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	b := make([]byte, 4)
	rand.Read(b)
	return "rt-" + name + "-" + hex.EncodeToString(b)
}

// Kill ends the server at once (SIGKILL), as a crash would.
func (i *Instance) Kill() {
	if cmd, exited := i.take(); cmd != nil {
		cmd.Process.Kill()
		<-exited
	}
}

// running reports whether this harness runs the server now (not killed, not given by REDIS_URL).
func (i *Instance) running() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.cmd != nil
}

func (i *Instance) take() (*exec.Cmd, chan struct{}) {
	i.mu.Lock()
	defer i.mu.Unlock()
	cmd, exited := i.cmd, i.exited
	i.cmd = nil
	return cmd, exited
}

// Restart starts the server again on the same port and directory.
func (i *Instance) Restart(tb testing.TB) {
	tb.Helper()
	i.Kill()
	if err := i.run(); err != nil {
		tb.Fatal(err)
	}
}

func (i *Instance) stop() {
	i.mu.Lock()
	purge := i.purge
	i.purge = nil
	i.mu.Unlock()
	if purge != nil {
		purge()
		return
	}
	cmd, exited := i.take()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}
