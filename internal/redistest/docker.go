package redistest

import (
	"context"
	"fmt"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
	"github.com/redis/go-redis/v9"
)

// The shared server in a container, for a machine with Docker and without redis-server: only
// the shared server (Server). Fresh servers, clusters and sentinels are killed, restarted and
// re-formed by tests through the processes this harness runs, so they need the binaries and
// skip without them.
//
// The daemon is the one of DOCKER_HOST (default: the local socket). The container publishes
// Redis's port on 127.0.0.1 only, so the daemon must run on this machine. It is removed by
// Stop (redistest.Main calls it); a test binary killed before that leaves it running, labelled
// rateltd.redistest=1 (docker rm -f $(docker ps -q --filter label=rateltd.redistest=1)).

// dockerImage is the image the shared server runs under Docker.
const dockerImage, dockerTag = "redis", "7"

// dockerProbeTimeout bounds the ping that decides whether a Docker daemon answers.
const dockerProbeTimeout = 5 * time.Second

// dockerPool returns a pool of the Docker daemon of DOCKER_HOST (or the local socket) when it
// answers a ping within dockerProbeTimeout.
func dockerPool() (*dockertest.Pool, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, fmt.Errorf("redistest: docker: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
	defer cancel()
	if err := pool.Client.PingWithContext(ctx); err != nil {
		closeIdle(pool)
		return nil, fmt.Errorf("redistest: docker: ping: %w", err)
	}
	return pool, nil
}

// closeIdle closes the pool's idle connections to the daemon, which would outlive the tests.
func closeIdle(pool *dockertest.Pool) {
	if pool.Client.HTTPClient != nil {
		pool.Client.HTTPClient.CloseIdleConnections()
	}
}

// startDocker runs redis:7 without persistence, its port published on a free port of
// 127.0.0.1, and waits until it answers PING (pulling the image first may take a while).
func startDocker(pool *dockertest.Pool) (*Instance, error) {
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository:   dockerImage,
		Tag:          dockerTag,
		Cmd:          []string{"redis-server", "--save", "", "--appendonly", "no"},
		ExposedPorts: []string{"6379/tcp"},
		PortBindings: map[docker.Port][]docker.PortBinding{"6379/tcp": {{HostIP: "127.0.0.1", HostPort: ""}}},
		Labels:       map[string]string{"rateltd.redistest": "1"},
	}, func(hc *docker.HostConfig) {
		hc.PublishAllPorts = false // only the binding above: loopback
		hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
	})
	if err != nil {
		closeIdle(pool)
		return nil, fmt.Errorf("redistest: docker run %s:%s: %w", dockerImage, dockerTag, err)
	}
	purge := func() {
		pool.Purge(res)
		closeIdle(pool)
	}
	inst := &Instance{addr: res.GetHostPort("6379/tcp"), purge: purge}
	rdb := redis.NewClient(&redis.Options{Addr: inst.addr, MaxRetries: -1})
	defer rdb.Close()
	pool.MaxWait = 30 * time.Second
	if err := pool.Retry(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return rdb.Ping(ctx).Err()
	}); err != nil {
		purge()
		return nil, fmt.Errorf("redistest: %s:%s on %s did not answer PING: %w", dockerImage, dockerTag, inst.addr, err)
	}
	return inst, nil
}
