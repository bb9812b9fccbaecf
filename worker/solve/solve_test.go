package solve_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/tonistiigi/fsutil"

	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/ocitest"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker/buildkit"
	"github.com/lanternfarm/lantern/worker/solve"
)

// These tests solve in a real buildkitd (internal/buildkittest), the one
// backend that runs here; the solver takes any client, so that a client of
// Docker Engine's BuildKit runs the same code.

// build returns a Build of st that exports up to max bytes.
func build(t *testing.T, name string, st llb.State, max int64) *recipes.Build {
	t.Helper()
	def, err := st.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return &recipes.Build{Name: name, Def: def, MaxOutput: max}
}

// env is a buildkitd that pulls from a registry on 127.0.0.1 holding an
// image of busybox, for builds that run something.
type env struct {
	c     solve.Client
	image llb.State
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: solves in BuildKit")
	}
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)
	_, c := buildkittest.StartWith(t, buildkit.Options{PlainHTTPRegistries: []string{reg.Host}})
	return &env{c: c, image: llb.Image(image)}
}

// run returns the state of sh -c script run on busybox, with no network.
func (e *env) run(script string) llb.State {
	return e.image.Run(llb.Args([]string{"/bin/sh", "-c", script}), llb.Network(llb.NetModeNone), llb.IgnoreCache).Root()
}

func TestRun(t *testing.T) {
	e := newEnv(t)

	t.Run("exports", func(t *testing.T) {
		// FROM scratch, one file made by BuildKit itself.
		st := llb.Scratch().
			File(llb.Mkdir("/share", 0o755)).
			File(llb.Mkfile("/share/hello.txt", 0o644, []byte("hello, world\n")))
		b := build(t, "hello", st, 1<<20)
		var checked string
		b.Check = func(dir string, log io.Writer) error {
			checked = dir
			return nil
		}
		out := filepath.Join(t.TempDir(), "out") // Run makes it
		var log bytes.Buffer
		if err := solve.Run(t.Context(), e.c, b, out, &log); err != nil {
			t.Fatalf("Run() = %v\nlog:\n%s", err, &log)
		}
		got, err := os.ReadFile(filepath.Join(out, "share", "hello.txt"))
		if err != nil || string(got) != "hello, world\n" {
			t.Errorf("share/hello.txt = %q, %v; want %q", got, err, "hello, world\n")
		}
		if checked != out {
			t.Errorf("Check ran on %q, want %q", checked, out)
		}
		// The steps as they start and end, numbered as BuildKit does.
		for _, want := range []string{`(?m)^#1 mkdir /share$`, `(?m)^#1 DONE [0-9]+\.[0-9]s$`, `(?m)^#2 mkfile /share/hello.txt$`, `(?m)^#2 DONE [0-9]+\.[0-9]s$`} {
			if !regexp.MustCompile(want).MatchString(log.String()) {
				t.Errorf("the log has no line matching %s:\n%s", want, &log)
			}
		}
	})

	t.Run("logs the build's output", func(t *testing.T) {
		var log bytes.Buffer
		if err := solve.Run(t.Context(), e.c, build(t, "echo", e.run("echo one; echo two >&2"), 64<<20), t.TempDir(), &log); err != nil {
			t.Fatalf("Run() = %v\nlog:\n%s", err, &log)
		}
		for _, want := range []string{"/bin/sh -c echo one; echo two >&2\n", " one\n", " two\n"} {
			if !strings.Contains(log.String(), want) {
				t.Errorf("the log has no %q:\n%s", want, &log)
			}
		}
	})

	t.Run("check refuses", func(t *testing.T) {
		b := build(t, "checked", llb.Scratch().File(llb.Mkfile("/x", 0o644, []byte("x"))), 1<<20)
		refusal := errors.New("no y in the output")
		b.Check = func(dir string, log io.Writer) error { return refusal }
		err := solve.Run(t.Context(), e.c, b, t.TempDir(), nil)
		if !errors.Is(err, refusal) || !strings.HasPrefix(err.Error(), "build checked: ") {
			t.Errorf("Run() = %v, want the check's error, named for the build", err)
		}
	})

	t.Run("step fails", func(t *testing.T) {
		var log bytes.Buffer
		err := solve.Run(t.Context(), e.c, build(t, "failing", e.run("echo about to fail; exit 3"), 64<<20), t.TempDir(), &log)
		if !errors.Is(err, recipes.ErrStepFailed) || !strings.Contains(err.Error(), "exit code 3") || !strings.HasPrefix(err.Error(), "build failing: ") {
			t.Errorf("Run() = %v, want %v with exit code 3", err, recipes.ErrStepFailed)
		}
		if !strings.Contains(log.String(), "about to fail") || !strings.Contains(log.String(), "ERROR: ") {
			t.Errorf("the log does not show the step's output and its failure:\n%s", &log)
		}
	})

	t.Run("output cap", func(t *testing.T) {
		// 2 MiB of outputs with a cap of 1 MiB: the export stops at the
		// file that passes the cap, which is not written.
		out := t.TempDir()
		var log bytes.Buffer
		st := e.run("head -c 2097152 /dev/zero > /big")
		st = llb.Scratch().File(llb.Copy(st, "/big", "/big"))
		err := solve.Run(t.Context(), e.c, build(t, "big", st, 1<<20), out, &log)
		const said = "its outputs hold more than 1 MiB, the output cap; the export was stopped"
		if !errors.Is(err, recipes.ErrOutputs) || !strings.Contains(err.Error(), said) {
			t.Errorf("Run() = %v, want %v: %s", err, recipes.ErrOutputs, said)
		}
		if !strings.Contains(log.String(), "lantern: "+recipes.ErrOutputs.Error()+": "+said+"\n") {
			t.Errorf("the log does not say the outputs were refused:\n%s", &log)
		}
		if fi, err := os.Lstat(filepath.Join(out, "big")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the file past the cap is on disk: %v, %v", fi, err)
		}
	})

	t.Run("no output cap", func(t *testing.T) {
		// Refused before BuildKit is asked anything: a build without a cap
		// could fill the worker's disk.
		b := build(t, "uncapped", llb.Scratch().File(llb.Mkfile("/x", 0o644, []byte("x"))), 0)
		out := filepath.Join(t.TempDir(), "out")
		err := solve.Run(t.Context(), e.c, b, out, nil)
		if err == nil || errors.Is(err, recipes.ErrOutputs) || !strings.Contains(err.Error(), "no output cap") {
			t.Errorf("Run() = %v, want a refusal of a build without an output cap", err)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Run() made the output directory of a build it refused (%v)", err)
		}
	})

	t.Run("time limit", func(t *testing.T) {
		// sleep with an argument of its own, for the look at the
		// processes below.
		const sleep = "sleep 7919"
		b := build(t, "sleeper", e.run(sleep), 64<<20)
		b.Time = 3 * time.Second
		var log bytes.Buffer
		err := solve.Run(t.Context(), e.c, b, t.TempDir(), &log)
		if !errors.Is(err, recipes.ErrTimeLimit) || err.Error() != "build sleeper: build ran past its time limit of 3s: killed" {
			t.Fatalf("Run() = %v, want %v", err, recipes.ErrTimeLimit)
		}
		if !strings.HasSuffix(log.String(), "lantern: the build ran past its time limit of 3s and was killed\n") {
			t.Errorf("the log does not end with the kill:\n%s", &log)
		}
		waitGone(t, sleep)
	})

	t.Run("cancelled is not the time limit", func(t *testing.T) {
		// The caller's context ends while the step runs, well inside its
		// time limit: the build is stopped, and it did not run past its
		// limit.
		const sleep = "sleep 7907"
		b := build(t, "cancelled", e.run(sleep), 64<<20)
		b.Time = time.Hour
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		log := &watch{want: "/bin/sh -c " + sleep + "\n", seen: make(chan struct{})}
		go func() {
			select {
			case <-log.seen: // the step started
			case <-ctx.Done():
			}
			cancel()
		}()
		err := solve.Run(ctx, e.c, b, t.TempDir(), log)
		if err == nil || errors.Is(err, recipes.ErrTimeLimit) {
			t.Errorf("Run() = %v, want an error that is not %v", err, recipes.ErrTimeLimit)
		}
		waitGone(t, sleep)
	})
}

// TestSend sends a directory to BuildKit and exports nothing.
func TestSend(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: solves in BuildKit")
	}
	_, c := buildkittest.Start(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte("a toolchain"), 0o644); err != nil {
		t.Fatal(err)
	}
	def, err := llb.Local("toolchain").Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := &recipes.Build{Name: "the toolchain", Def: def, Locals: map[string]fsutil.FS{"toolchain": fs}}
	if err := solve.Send(t.Context(), c, b); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	// Without the directory the definition reads, BuildKit refuses it.
	b.Locals = nil
	if err := solve.Send(t.Context(), c, b); err == nil || !strings.HasPrefix(err.Error(), "send the toolchain: ") {
		t.Errorf("Send() of a build whose local source is missing = %v, want an error named for it", err)
	}
}

// watch is a log that closes seen when a line equal to want, after its
// "#N " step number, is written.
type watch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for l := range strings.Lines(w.buf.String()) {
		if _, rest, ok := strings.Cut(l, " "); ok && rest == w.want {
			w.once.Do(func() { close(w.seen) })
		}
	}
	return len(p), nil
}

// waitGone waits until no process runs the command line cmd, and fails
// the test if one still does after a while: a build that was stopped must
// not be left running.
func waitGone(t *testing.T, cmd string) {
	t.Helper()
	needle := []byte(strings.ReplaceAll(cmd, " ", "\x00"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pids []string
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "cmdline"))
			if err == nil && bytes.Contains(b, needle) {
				pids = append(pids, filepath.Base(d))
			}
		}
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q is still running (pids %v)", cmd, pids)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
