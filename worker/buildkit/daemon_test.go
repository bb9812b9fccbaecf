package buildkit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/tonistiigi/fsutil"

	"github.com/lanternfarm/lantern/worker/buildkit"
)

// These tests start a real buildkitd with the OCI worker (runc), as root.
// Where buildkitd, runc or root is missing they skip on a developer's machine
// and fail under CI, which must run them.

// startDaemon starts a buildkitd for one test and stops it when the test
// ends, checking that nothing it started is left running.
func startDaemon(t *testing.T) *buildkit.Daemon {
	t.Helper()
	// Not t.TempDir(): its path can be too long for a unix socket.
	dir, err := os.MkdirTemp("", "bk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the daemon's directory: %v", err)
		}
	})
	log := new(bytes.Buffer)
	t.Cleanup(func() {
		if t.Failed() && log.Len() > 0 {
			t.Logf("buildkitd's output:\n%s", log)
		}
	})

	start := time.Now()
	d, err := buildkit.StartDaemon(t.Context(), buildkit.Options{Dir: dir, Log: log})
	if errors.Is(err, buildkit.ErrNoBuildkitd) || errors.Is(err, buildkit.ErrNoRunc) || errors.Is(err, buildkit.ErrNotRoot) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v\nCI must run the BuildKit tests: 'make test' builds buildkitd ('make buildkitd') and installs runc (apt-get install runc), as root", err)
		}
		t.Skipf("%v\n(to run these tests: 'make buildkitd' and, as root, 'apt-get install runc')", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("buildkitd answered on %s after %v", d.Addr(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		start := time.Now()
		if err := d.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		t.Logf("buildkitd stopped after %v", time.Since(start).Round(time.Millisecond))
		if ps := processesMentioning(t, dir); len(ps) > 0 {
			t.Errorf("after Close, still running: %q", ps)
		}
		if ms := mountsUnder(t, dir); len(ms) > 0 {
			t.Errorf("after Close, still mounted: %q", ms)
		}
		if cs := containersUnder(t, dir); len(cs) > 0 {
			t.Errorf("after Close, runc still lists: %q", cs)
		}
	})
	return d
}

func connect(t *testing.T, d *buildkit.Daemon) *client.Client {
	t.Helper()
	c, err := buildkit.Connect(t.Context(), d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// solve builds st, exports its result with the local exporter and returns
// the directory it went to.
func solve(t *testing.T, c *client.Client, st llb.State, opt client.SolveOpt) string {
	t.Helper()
	def, err := st.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	opt.Exports = []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: out}}

	// The build's own output, quoted when it fails.
	var logs bytes.Buffer
	status := make(chan *client.SolveStatus)
	var wg sync.WaitGroup
	wg.Go(func() {
		for s := range status {
			for _, l := range s.Logs {
				logs.Write(l.Data)
			}
			for _, v := range s.Vertexes {
				if v.Error != "" {
					logs.WriteString(v.Name + ": " + v.Error + "\n")
				}
			}
		}
	})
	start := time.Now()
	_, err = c.Solve(t.Context(), def, opt, status) // closes status
	wg.Wait()
	if err != nil {
		t.Fatalf("Solve() = %v\nthe build's output:\n%s", err, &logs)
	}
	t.Logf("solved in %v", time.Since(start).Round(time.Millisecond))
	return out
}

// TestMkfile: a file made by LLB on a scratch root comes out of the local
// exporter byte for byte.
func TestMkfile(t *testing.T) {
	c := connect(t, startDaemon(t))
	st := llb.Scratch().File(llb.Mkfile("/hello", 0o644, []byte("hi")))
	out := solve(t, c, st, client.SolveOpt{})

	got, err := os.ReadFile(filepath.Join(out, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hi" {
		t.Errorf("exported /hello = %q, want %q", got, "hi")
	}
	fi, err := os.Stat(filepath.Join(out, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("exported /hello's mode = %v, want %v", fi.Mode().Perm(), os.FileMode(0o644))
	}
}

// TestRunHasNoNetwork runs a process in the sandbox, on a scratch root with
// one static binary brought in from a local directory: with
// llb.NetModeNone it cannot reach a port on the host's 127.0.0.1, which the
// same process reaches with the worker's default network (the control: the
// probe works, and the default is the host's, so Lantern must ask for none).
// Two runs of the same step write the same bytes.
func TestRunHasNoNetwork(t *testing.T) {
	d := startDaemon(t)
	probeDir := buildProbe(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()

	c := connect(t, d)
	opt := client.SolveOpt{LocalMounts: map[string]fsutil.FS{"probe": localFS(t, probeDir)}}
	root := llb.Scratch().File(llb.Copy(llb.Local("probe"), "/netprobe", "/netprobe"))
	probe := func(network llb.RunOption) llb.State {
		// IgnoreCache: the second run must run, not come from the cache.
		run := root.Run(llb.Args([]string{"/netprobe", ln.Addr().String(), "/out"}), network, llb.IgnoreCache)
		return run.AddMount("/out", llb.Scratch())
	}

	var sandbox, trace [2]string
	for i := range sandbox {
		out := solve(t, c, probe(llb.Network(llb.NetModeNone)), opt)
		result := readFile(t, filepath.Join(out, "result"))
		if !strings.HasPrefix(result, "error: ") {
			t.Fatalf("run %d with NetModeNone: dial %s: got %q, want an error", i+1, ln.Addr(), result)
		}
		t.Logf("run %d with NetModeNone: %s", i+1, strings.TrimSpace(result))
		sandbox[i] = readFile(t, filepath.Join(out, "sandbox"))
		trace[i] = readFile(t, filepath.Join(out, "trace"))
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the listener accepted %d connections from runs with NetModeNone, want 0", n)
	}
	if sandbox[0] != sandbox[1] {
		t.Errorf("the same step wrote different /out/sandbox:\nrun 1:\n%s\nrun 2:\n%s", sandbox[0], sandbox[1])
	}
	t.Logf("/out/sandbox:\n%s", sandbox[0])
	if strings.Contains(sandbox[0], "otel-grpc.sock ") {
		t.Errorf("buildkitd's trace socket is in the sandbox's /dev, want it kept out")
	}
	// BuildKit gives every step the trace context of its run, and a step
	// cannot override it (v0.34); a recipe must keep it out of its outputs.
	t.Logf("trace context, run 1: %q; run 2: %q", trace[0], trace[1])

	out := solve(t, c, probe(llb.Network(llb.NetModeSandbox)), opt)
	if result := readFile(t, filepath.Join(out, "result")); result != "connected\n" {
		t.Errorf("control run with the default network: got %q, want %q (is the probe broken, or is the worker's default network no longer the host's?)", result, "connected\n")
	}
	if accepted.Load() == 0 {
		t.Errorf("control run with the default network: the listener accepted no connection")
	}
}

// buildProbe compiles testdata/netprobe into a new directory, statically,
// for the machine's own architecture, and returns the directory.
func buildProbe(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-o", filepath.Join(dir, "netprobe"), "./testdata/netprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build netprobe: %v\n%s", err, out)
	}
	return dir
}

func localFS(t *testing.T, dir string) fsutil.FS {
	t.Helper()
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// processesMentioning lists the command lines of running processes that
// name dir: the daemon and the runc processes it started all do.
func processesMentioning(t *testing.T, dir string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, name := range cmdlines {
		b, err := os.ReadFile(name)
		if err != nil {
			continue // it has exited
		}
		if cmd := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "); strings.Contains(cmd, dir) {
			found = append(found, cmd)
		}
	}
	return found
}

// containersUnder lists the runc containers whose bundles are below dir.
func containersUnder(t *testing.T, dir string) []string {
	t.Helper()
	// Not t.Context(): this runs in a cleanup, after it is cancelled.
	out, err := exec.Command("runc", "list", "--format", "json").Output()
	if err != nil {
		t.Fatalf("runc list: %v", err)
	}
	var list []struct {
		ID     string `json:"id"`
		Bundle string `json:"bundle"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("runc list: %v\n%s", err, out)
	}
	var found []string
	for _, c := range list {
		if strings.HasPrefix(c.Bundle, dir+"/") {
			found = append(found, c.ID+" "+c.Bundle)
		}
	}
	return found
}

// mountsUnder lists the mount points below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(f[4], dir+"/") {
			found = append(found, f[4])
		}
	}
	return found
}

// TestCloseDuringBuild: Close stops a daemon in the middle of a build step,
// and the step's process does not outlive it.
func TestCloseDuringBuild(t *testing.T) {
	d := startDaemon(t)
	c := connect(t, d)
	probeDir := buildProbe(t)

	// The word tells this test's process from any other.
	word := strconv.FormatInt(time.Now().UnixNano(), 36)
	root := llb.Scratch().File(llb.Copy(llb.Local("probe"), "/netprobe", "/netprobe"))
	st := root.Run(llb.Args([]string{"/netprobe", "sleep", word}), llb.Network(llb.NetModeNone), llb.IgnoreCache).Root()
	def, err := st.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	solved := make(chan error, 1)
	go func() {
		_, err := c.Solve(t.Context(), def, client.SolveOpt{LocalMounts: map[string]fsutil.FS{"probe": localFS(t, probeDir)}}, nil)
		solved <- err
	}()

	step := "/netprobe sleep " + word
	for deadline := time.Now().Add(30 * time.Second); len(processesMentioning(t, step)) == 0; {
		select {
		case err := <-solved:
			t.Fatalf("Solve() = %v before the step ran, want it to run until Close", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the build step did not start within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	if err := d.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	t.Logf("Close() took %v with a step running", time.Since(start).Round(time.Millisecond))
	if ps := processesMentioning(t, step); len(ps) > 0 {
		t.Errorf("after Close, the build step still runs: %q", ps)
	}
	select {
	case err := <-solved:
		if err == nil {
			t.Errorf("Solve() = nil after Close, want an error")
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Solve() had not returned 10s after Close")
	}
}
