package browsertest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the directory of module github.com/rateltd/rateltd: this module's replace.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/rateltd/rateltd").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/rateltd/rateltd: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// binary builds the rateltd command from the repository's root into the test's directory.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rateltd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rateltd")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rateltd: %v\n%s", err, out)
	}
	return bin
}

// serveOutput keeps the command's output and sends the address it serves on, once, to addr.
type serveOutput struct {
	addr chan string // buffered (1); sent to by Write once

	mu   sync.Mutex   // guards buf and sent: Write runs on exec's copying goroutine, String on the test's
	buf  bytes.Buffer // everything written
	sent bool         // the address was sent
}

// Write keeps p and looks for the line "rateltd: serving http://ADDR/ ...".
func (o *serveOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if !o.sent {
		for _, line := range strings.Split(o.buf.String(), "\n") {
			rest, ok := strings.CutPrefix(line, "rateltd: serving http://")
			if addr, _, found := strings.Cut(rest, "/"); ok && found {
				o.addr <- addr
				o.sent = true
				break
			}
		}
	}
	return len(p), nil
}

func (o *serveOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// startCommand runs the rateltd command with args (e.g. "serve --addr 127.0.0.1:0") and env
// added to (or, with an empty value, removed from) the test's environment, and returns the
// address it serves on. At the test's end it gets SIGTERM, as from a service manager, and
// must exit 0 within 10s.
func startCommand(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !hasKey(env, k) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	out := &serveOutput{addr: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the test binary dies
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("rateltd %s: %v; output:\n%s", strings.Join(args, " "), err, out)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("rateltd %s did not stop within 10s of SIGTERM; output:\n%s", strings.Join(args, " "), out)
		}
	})
	select {
	case addr := <-out.addr:
		return addr
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("rateltd %s exited: %v; output:\n%s", strings.Join(args, " "), err, out)
	case <-time.After(30 * time.Second):
		t.Fatalf("rateltd %s did not say where it serves within 30s; output:\n%s", strings.Join(args, " "), out)
	}
	return ""
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
