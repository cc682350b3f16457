package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// replicationArgs make a server quick to replicate to: a full sync starts at once instead of
// after diskless replication's 5s delay.
var replicationArgs = []string{"--repl-diskless-sync-delay", "0"}

// poll calls cond every 20ms until it holds, for at most timeout; the error names what was
// awaited and cond's last word on why it did not hold.
func poll(timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: %s: not within %v: %s", what, timeout, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quick is a context for one harness command to one server: short, so a dead or stopped server
// costs a poll round, not the test.
func quick() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Second)
}

// info returns the fields of one INFO section of the server at addr.
func info(addr, section string) (map[string]string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := quick()
	defer cancel()
	s, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("redistest: INFO %s of %s: %w", section, addr, err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}

// role returns the first element of ROLE's reply from the server at addr: "master", "slave" or
// "sentinel".
func role(addr string) (string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := quick()
	defer cancel()
	v, err := rdb.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", fmt.Errorf("redistest: ROLE of %s: %w", addr, err)
	}
	if len(v) == 0 {
		return "", fmt.Errorf("redistest: ROLE of %s: empty reply", addr)
	}
	r, ok := v[0].(string)
	if !ok {
		return "", fmt.Errorf("redistest: ROLE of %s: %T, not a string", addr, v[0])
	}
	return r, nil
}

// linkUp reports whether the replica at addr has its link to its master up; why says otherwise.
func linkUp(addr string) (bool, string) {
	f, err := info(addr, "replication")
	if err != nil {
		return false, err.Error()
	}
	if f["role"] != "slave" || f["master_link_status"] != "up" {
		return false, fmt.Sprintf("%s: role %q, master_link_status %q", addr, f["role"], f["master_link_status"])
	}
	return true, ""
}

// waitReplicated waits until every replica of the master at addr (at least one) has
// acknowledged everything the master had written when the wait began.
func waitReplicated(addr string, timeout time.Duration) error {
	f, err := info(addr, "replication")
	if err != nil {
		return err
	}
	target, err := strconv.ParseInt(f["master_repl_offset"], 10, 64)
	if err != nil {
		return fmt.Errorf("redistest: master_repl_offset of %s: %w", addr, err)
	}
	return poll(timeout, "replicas of "+addr+" acknowledge offset "+strconv.FormatInt(target, 10), func() (bool, string) {
		f, err := info(addr, "replication")
		if err != nil {
			return false, err.Error()
		}
		n, _ := strconv.Atoi(f["connected_slaves"])
		if n == 0 {
			return false, "no replica connected"
		}
		for i := range n {
			// slave0:ip=127.0.0.1,port=7001,state=online,offset=123,lag=0
			line := f["slave"+strconv.Itoa(i)]
			var off int64 = -1
			for _, kv := range strings.Split(line, ",") {
				if v, ok := strings.CutPrefix(kv, "offset="); ok {
					off, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			if !strings.Contains(line, "state=online") || off < target {
				return false, "replica " + line
			}
		}
		return true, ""
	})
}
