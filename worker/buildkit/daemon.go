package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
)

// Errors StartDaemon returns when the machine cannot run buildkitd; each
// message says what to install. Callers branch on them with errors.Is (the
// tests skip on them, or fail under CI).
var (
	ErrNoBuildkitd = errors.New("buildkitd not found")
	ErrNoRunc      = errors.New("runc not found")
	ErrNotRoot     = errors.New("buildkitd needs root")
)

const (
	// startTimeout bounds how long StartDaemon waits for the daemon to answer,
	// whatever the caller's context allows. It answers in well under a
	// second on the test machines.
	startTimeout = 60 * time.Second
	// termGrace is how long Close waits after SIGTERM before it kills the
	// build steps still running; stopTimeout how long it then waits before
	// SIGKILL.
	termGrace   = 2 * time.Second
	stopTimeout = 15 * time.Second
	// maxSocketPath is the longest path a unix socket address may have on
	// Linux (sun_path is 108 bytes with its terminating NUL).
	maxSocketPath = 107
)

// Options configures StartDaemon.
type Options struct {
	// Binary is the buildkitd executable. Empty: see the package doc for
	// where it is looked for.
	Binary string
	// Dir holds the daemon's state (Dir/root), its socket
	// (Dir/buildkitd.sock) and its config file. Empty: a new temporary
	// directory, which Close removes. Keep it short: the socket's path must
	// fit in 107 bytes.
	Dir string
	// Log receives buildkitd's output. Nil: it is discarded, but for its
	// last lines, which errors from StartDaemon and Close quote.
	Log io.Writer
	// PlainHTTPRegistries are registries, HOST:PORT, that the daemon pulls
	// images from over plain HTTP: a registry on the machine itself, as in
	// tests. Images are pulled by digest, which the daemon checks, so the
	// transport's integrity is not what their trust rests on.
	PlainHTTPRegistries []string
}

// Daemon is a buildkitd started by StartDaemon, running until Close.
type Daemon struct {
	cmd    *exec.Cmd
	runc   string
	addr   string
	dir    string
	ownDir bool
	out    *tail

	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error         // cmd.Wait's result, set before exited is closed

	closeOnce sync.Once
	closeErr  error
}

// Check reports whether StartDaemon could start a buildkitd here, without
// starting one, and returns the absolute path of the buildkitd it would
// run: binary, or the one found as the package doc says. Its errors are
// StartDaemon's: ErrNoBuildkitd, ErrNotRoot, ErrNoRunc.
func Check(binary string) (string, error) {
	bin, _, err := prerequisites(binary)
	return bin, err
}

// prerequisites returns the absolute path of buildkitd and of runc.
func prerequisites(binary string) (bin, runc string, err error) {
	bin, err = findBinary(binary)
	if err != nil {
		return "", "", fmt.Errorf("start buildkitd: %w", err)
	}
	// Absolute, as the daemon starts in its own directory.
	if bin, err = filepath.Abs(bin); err != nil {
		return "", "", fmt.Errorf("start buildkitd: %w", err)
	}
	if uid := os.Geteuid(); uid != 0 {
		return "", "", fmt.Errorf("start buildkitd: %w: the OCI worker makes namespaces, mounts and cgroups, and this process runs as uid %d; run as root, or point the worker at a buildkitd that runs as root", ErrNotRoot, uid)
	}
	runc, err = exec.LookPath("runc")
	if err != nil {
		return "", "", fmt.Errorf("start buildkitd: %w on the PATH: the OCI worker runs build steps with it; on Debian: apt-get install runc", ErrNoRunc)
	}
	return bin, runc, nil
}

// StartDaemon starts buildkitd as a child process, with its state and socket
// under opts.Dir and the OCI worker (runc), and returns once a client can list
// its workers. ctx bounds the start only; the daemon runs until Close.
func StartDaemon(ctx context.Context, opts Options) (*Daemon, error) {
	bin, runc, err := prerequisites(opts.Binary)
	if err != nil {
		return nil, err
	}

	dir, ownDir := opts.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "buildkitd-"); err != nil {
			return nil, fmt.Errorf("start buildkitd: %w", err)
		}
		ownDir = true
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, fmt.Errorf("start buildkitd: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("start buildkitd: %w", err)
		}
	}
	for _, r := range opts.PlainHTTPRegistries {
		if r == "" || strings.ContainsAny(r, "\"/ \t\n[]") {
			return nil, fmt.Errorf("start buildkitd: plain-HTTP registry %q: want HOST:PORT", r)
		}
	}
	d, err := start(ctx, bin, runc, dir, opts)
	if err != nil {
		if ownDir {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	d.ownDir = ownDir
	return d, nil
}

func start(ctx context.Context, bin, runc, dir string, opts Options) (*Daemon, error) {
	sock := filepath.Join(dir, "buildkitd.sock")
	if len(sock) > maxSocketPath {
		return nil, fmt.Errorf("start buildkitd: socket path %q is %d bytes, more than a unix socket allows (%d): use a shorter Dir", sock, len(sock), maxSocketPath)
	}
	// A daemon still running in dir is left alone. One that died there (its
	// parent killed in the middle of a build, say) left its socket, which
	// would make the new one fail with "address already in use", and may have
	// left build steps running and their mounts.
	if conn, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("start buildkitd: one already runs on %s: stop it, or use another Dir", sock)
	}
	removeContainers(runc, dir)
	if err := unmountUnder(dir); err != nil {
		return nil, fmt.Errorf("start buildkitd: clean up after an earlier daemon: %w", err)
	}
	traceSock := filepath.Join(dir, "otel-grpc.sock")
	for _, f := range []string{sock, traceSock} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("start buildkitd: %w", err)
		}
	}
	// A config file of its own keeps the machine's
	// /etc/buildkit/buildkitd.toml out: what a rebuild sees is set here, by
	// flags, but for the registries to reach over plain HTTP.
	config := filepath.Join(dir, "buildkitd.toml")
	var toml strings.Builder
	toml.WriteString("# Lantern configures buildkitd with flags; see worker/buildkit.\n")
	for _, r := range opts.PlainHTTPRegistries {
		fmt.Fprintf(&toml, "\n[registry.%q]\n  http = true\n", r)
	}
	if err := os.WriteFile(config, []byte(toml.String()), 0o644); err != nil {
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}

	addr := "unix://" + sock
	out := &tail{max: 16 << 10}
	var w io.Writer = out
	if opts.Log != nil {
		w = io.MultiWriter(out, opts.Log)
	}
	cmd := exec.Command(bin,
		"--root", filepath.Join(dir, "root"),
		"--addr", addr,
		"--config", config,
		"--containerd-worker=false",
		"--oci-worker=true",
		"--oci-worker-binary", runc,
		// The default network of a build step; Lantern's steps all ask for
		// none (see the package doc). "auto" would pick CNI where the machine
		// has a CNI config, and fail without its plugins.
		"--oci-worker-net=host",
		// Not /run/buildkit, which every daemon on the machine would share.
		"--otel-socket-path", traceSock,
	)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Dir = dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}
	d := &Daemon{cmd: cmd, runc: runc, addr: addr, dir: dir, out: out, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()

	if err := d.waitReady(ctx); err != nil {
		d.stop()
		return nil, fmt.Errorf("start buildkitd: %w%s", err, d.out.quote())
	}
	// buildkitd always runs a trace collector (no flag turns it off), and
	// bind-mounts its socket into every build step as /dev/otel-grpc.sock
	// if the file exists: a way out of a sandbox that should have none.
	// Unlinked, the socket still serves buildkitd, which holds it open, but
	// no step can reach it.
	if err := os.Remove(traceSock); err != nil {
		d.stop()
		return nil, fmt.Errorf("start buildkitd: remove its trace socket: %w", err)
	}
	return d, nil
}

// waitReady polls until a client can list the daemon's workers.
func (d *Daemon) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		// Each try gets a short deadline of its own: the gRPC client waits
		// for the socket to appear instead of failing at once.
		tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := Connect(tctx, d.addr)
		tcancel()
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		select {
		case <-d.exited:
			return fmt.Errorf("buildkitd exited before it answered: %v", d.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("buildkitd did not answer on %s: %w (last try: %v)", d.addr, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// Addr returns the daemon's address, "unix://" and the socket's path, as
// Connect and client.New take it.
func (d *Daemon) Addr() string { return d.addr }

// Close stops the daemon and leaves nothing of it running: SIGTERM; after 2
// seconds, if builds still run, it kills their steps; after 15 more, SIGKILL
// to the daemon's process group. Then it removes the runc containers and
// unmounts the mounts the daemon left under its directory, and removes the
// directory if StartDaemon made it. It returns an error if the daemon had
// exited on its own before. A caller that wants its builds to finish waits
// for them before calling Close.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		select {
		case <-d.exited:
			d.closeErr = fmt.Errorf("buildkitd had exited: %v%s", d.waitErr, d.out.quote())
		default:
		}
		d.stop()
		if err := unmountUnder(d.dir); err != nil && d.closeErr == nil {
			d.closeErr = fmt.Errorf("stop buildkitd: %w", err)
		}
		if d.ownDir {
			if err := os.RemoveAll(d.dir); err != nil && d.closeErr == nil {
				d.closeErr = fmt.Errorf("stop buildkitd: %w", err)
			}
		}
	})
	return d.closeErr
}

// stop ends the process and waits for it, and removes the runc containers
// it leaves. Its exit status after SIGTERM is not an error: buildkitd exits
// 1 on a signal.
//
// On SIGTERM buildkitd stops taking requests but waits for the builds in
// flight, however long they take, and exits on its own without their
// containers, which then outlive it. So stop gives it a moment, then kills
// the containers of its builds, which fails the builds and lets it exit
// cleanly; SIGKILL comes last.
func (d *Daemon) stop() {
	defer removeContainers(d.runc, d.dir)
	select {
	case <-d.exited:
		return
	default:
	}
	terminate(d.cmd.Process)
	if d.waitExit(termGrace) {
		return
	}
	for deadline := time.Now().Add(stopTimeout); time.Now().Before(deadline); {
		killContainers(d.runc, d.dir)
		if d.waitExit(200 * time.Millisecond) {
			return
		}
	}
	// Still running, so not yet reaped: its process group is still its own.
	kill(d.cmd.Process)
	<-d.exited
}

// waitExit reports whether the process exits within timeout.
func (d *Daemon) waitExit(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.exited:
		return true
	case <-t.C:
		return false
	}
}

// Connect returns a client of the buildkitd at addr ("unix:///path" or
// "tcp://host:port") after checking that it answers and has a worker.
func Connect(ctx context.Context, addr string) (*client.Client, error) {
	c, err := client.New(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to buildkitd at %s: %w", addr, err)
	}
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to buildkitd at %s: list workers: %w", addr, err)
	}
	if len(ws) == 0 {
		c.Close()
		return nil, fmt.Errorf("connect to buildkitd at %s: it has no workers", addr)
	}
	return c, nil
}

// tail keeps the last max bytes written to it, to quote in errors.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// quote returns the daemon's last output, to append to an error.
func (t *tail) quote() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == 0 {
		return ""
	}
	return "\nbuildkitd's last output:\n" + string(t.buf)
}
