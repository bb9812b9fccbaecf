// Package dockertest starts a real Docker Engine — Debian's dockerd, from
// the docker.io package — for the tests of a package that builds through
// an Engine's BuildKit (worker/dockerengine, worker). One dockerd serves a
// whole test binary: the first Start starts it, and Stop, which the
// package's TestMain calls, stops it and removes what it kept. Where
// dockerd or root is missing, Start skips the test — and fails it under
// CI, which must run them.
//
// The daemon is the machine's own but for its files: its data, its state,
// its socket, its containerd (which it starts) and its containerd
// namespace are under a directory of its own, it reads an empty config
// file instead of /etc/docker/daemon.json, and it makes no bridge and no
// iptables rules, so that it leaves the machine's network alone (builds
// that ask for no network need neither). Its storage is overlay2.
package dockertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Daemon is the test binary's dockerd.
type Daemon struct {
	// Host is its address, unix:// and its socket's path, as
	// dockerengine.Connect and DOCKER_HOST take it.
	Host string
	// Version is what dockerd --version says.
	Version string

	dir    string
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

var (
	mu      sync.Mutex
	started *Daemon
	failed  error
)

// errMissing marks what the machine lacks, which skips a test (or fails it
// under CI).
var errMissing = errors.New("missing")

// Start returns the test binary's dockerd, starting it on the first call.
// A test that fails shows the daemon's output.
func Start(t testing.TB) *Daemon {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if started == nil && failed == nil {
		started, failed = start()
	}
	if errors.Is(failed, errMissing) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v\nCI must run the Docker Engine tests: 'make test' installs it (apt-get install docker.io) and runs them as root", failed)
		}
		t.Skipf("%v\n(to run this test: as root, 'apt-get install docker.io')", failed)
	}
	if failed != nil {
		t.Fatal(failed)
	}
	d := started
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dockerd's output (the whole test binary's, last 16 KiB):\n%s", d.log)
		}
	})
	return d
}

// Stop stops the test binary's dockerd, if one was started, and removes its
// directory. A package's TestMain calls it after m.Run.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if started != nil {
		if err := started.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "dockertest:", err)
		}
		started = nil
	}
}

func start() (*Daemon, error) {
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, fmt.Errorf("%w: dockerd not found on the PATH (Debian's docker.io package)", errMissing)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: dockerd needs root, and this test runs as uid %d", errMissing, os.Geteuid())
	}
	version, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("dockerd --version: %w", err)
	}
	// Not t.TempDir(): its path can be too long for a unix socket.
	dir, err := os.MkdirTemp("", "dk")
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sock := filepath.Join(dir, "docker.sock")
	ns := "lantern-test-" + filepath.Base(dir)
	cmd := exec.Command(bin,
		"--config-file", config,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--host", "unix://"+sock,
		"--storage-driver", "overlay2",
		"--containerd-namespace", ns,
		"--containerd-plugins-namespace", ns+"-plugins",
		"--bridge", "none",
		"--iptables=false",
		"--ip6tables=false",
		"--ip-forward=false",
		"--ip-masq=false",
		"--log-level", "warn",
	)
	log := &syncBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, which Stop can kill whole; and a SIGTERM if
	// the test binary dies without calling Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	d := &Daemon{Host: "unix://" + sock, Version: strings.TrimSpace(string(version)), dir: dir, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(d.exited)
	}()
	if err := d.waitReady(sock); err != nil {
		d.stop()
		return nil, fmt.Errorf("start dockerd: %w\ndockerd's output:\n%s", err, log)
	}
	return d, nil
}

// waitReady polls the Engine's /_ping until it answers.
func (d *Daemon) waitReady(sock string) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := hc.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/_ping: %s", resp.Status)
		}
		select {
		case <-d.exited:
			return fmt.Errorf("dockerd exited before it answered: %v", d.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd did not answer on %s within 2 minutes: %v", sock, err)
		}
	}
}

// stop ends dockerd (SIGTERM; SIGKILL to its process group after 30
// seconds), unmounts what it left mounted and removes its directory.
func (d *Daemon) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
	}
	// containerd, which dockerd started, is in dockerd's process group.
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	if err := unmountUnder(d.dir); err != nil {
		return fmt.Errorf("stop dockerd: %w", err)
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("stop dockerd: %w", err)
	}
	return nil
}

// unmountUnder unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// syncBuffer keeps the last max bytes written to it, for the output of a
// process that runs as long as the test binary.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
