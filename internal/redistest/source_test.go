package redistest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestChooseEverySource: for every combination of REDIS_URL, redis-server on PATH, a Docker
// daemon that answers and RATELTD_REQUIRE_REDIS, the source is the first of REDIS_URL,
// redis-server, Docker that exists; with none, the test skips, or fails when required, with a
// message naming all three. Docker is asked only when neither of the others exists.
func TestChooseEverySource(t *testing.T) {
	refused := errors.New("connection refused")
	for _, url := range []string{"", "redis://127.0.0.1:6379/0"} {
		for _, binary := range []bool{false, true} {
			for _, dockerUp := range []bool{false, true} {
				for _, require := range []bool{false, true} {
					name := fmt.Sprintf("url=%t/binary=%t/docker=%t/require=%t", url != "", binary, dockerUp, require)
					t.Run(name, func(t *testing.T) {
						asked := 0
						docker := func() error {
							asked++
							if dockerUp {
								return nil
							}
							return refused
						}
						c := choose(url, binary, docker, require)
						want := sourceNone
						switch {
						case url != "":
							want = sourceURL
						case binary:
							want = sourceBinary
						case dockerUp:
							want = sourceDocker
						}
						if c.src != want {
							t.Fatalf("source %v, want %v", c.src, want)
						}
						if wantAsked := url == "" && !binary; (asked == 1) != wantAsked || asked > 1 {
							t.Fatalf("Docker asked %d times; want it asked once only when neither REDIS_URL nor redis-server exists", asked)
						}
						if want != sourceNone {
							if c.err != nil || c.fail {
								t.Fatalf("a source, and yet err %v, fail %t", c.err, c.fail)
							}
							return
						}
						if c.fail != require {
							t.Fatalf("fail %t with require %t: without Redis a test fails only when required, else skips", c.fail, require)
						}
						if !errors.Is(c.err, errNoRedis) || !errors.Is(c.err, refused) {
							t.Fatalf("err %v: want errNoRedis and Docker's error, both", c.err)
						}
						for _, w := range []string{"REDIS_URL", "redis-server", "Docker"} {
							if !strings.Contains(c.err.Error(), w) {
								t.Fatalf("err %q does not name %s", c.err, w)
							}
						}
					})
				}
			}
		}
	}
}

// TestDockerProbeWithoutDaemon: the real probe, against a DOCKER_HOST where no daemon listens,
// reports an error, and the choice is then none (a skip, or a failure when required).
func TestDockerProbeWithoutDaemon(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/docker.sock")
	t.Setenv("DOCKER_MACHINE_NAME", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	probe := func() error {
		pool, err := dockerPool()
		if err == nil {
			closeIdle(pool)
		}
		return err
	}
	c := choose("", false, probe, true)
	if c.src != sourceNone || !c.fail || !strings.Contains(c.err.Error(), "docker: ping") {
		t.Fatalf("choice %v, fail %t, err %v; want none, failing, naming Docker's ping", c.src, c.fail, c.err)
	}
}
