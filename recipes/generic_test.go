package recipes_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/ocitest"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker/buildkit"
	"github.com/lanternfarm/lantern/worker/solve"
)

// genericEnv is what every generic build here has: a buildkitd that pulls
// from a registry on 127.0.0.1 holding the busybox image, and a file server
// on 127.0.0.1 for the tarballs, which counts its requests.
type genericEnv struct {
	c        *client.Client
	image    string
	files    *httptest.Server
	mu       sync.Mutex
	served   map[string][]byte
	requests atomic.Int32
	r        *recipes.Recipe
}

func newGenericEnv(t *testing.T) *genericEnv {
	t.Helper()
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)
	_, c := buildkittest.StartWith(t, buildkit.Options{PlainHTTPRegistries: []string{reg.Host}})
	r, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		t.Fatal(err)
	}
	e := &genericEnv{c: c, image: image, served: map[string][]byte{}, r: r}
	e.files = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		e.requests.Add(1)
		e.mu.Lock()
		b, ok := e.served[req.URL.Path]
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(e.files.Close)
	return e
}

// build prepares and builds a source served at path with the given
// commands and outputs, under limits.
func (e *genericEnv) build(t *testing.T, tarball []byte, commands []string, outputs map[string]string, limits recipes.Limits) (string, error) {
	t.Helper()
	out, _, err := e.buildLog(t, tarball, commands, outputs, limits)
	return out, err
}

// buildLog is build, returning the build's log too.
func (e *genericEnv) buildLog(t *testing.T, tarball []byte, commands []string, outputs map[string]string, limits recipes.Limits) (string, string, error) {
	t.Helper()
	return e.buildLogAs(t, "", tarball, commands, outputs, limits)
}

// buildLogAs is buildLog, serving the tarball under a name of its own.
func (e *genericEnv) buildLogAs(t *testing.T, as string, tarball []byte, commands []string, outputs map[string]string, limits recipes.Limits) (string, string, error) {
	name := "/" + t.Name() + as + ".tar.gz"
	e.mu.Lock()
	e.served[name] = tarball
	e.mu.Unlock()
	src := lantern.Source{Name: "hello", Version: "1.0", Digest: lantern.DigestOf(tarball)}
	spec := &lantern.BuildSpec{Image: e.image, Commands: commands, Outputs: outputs,
		SourceDate: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	dir := t.TempDir()
	in, err := recipes.PrepareGeneric(t.Context(), e.r, src, e.files.URL+name, spec, filepath.Join(dir, "inputs"),
		recipes.GenericOptions{Limits: limits, HTTP: e.files.Client()})
	if err != nil {
		return "", "", fmt.Errorf("PrepareGeneric: %w", err) // not Fatal: it may run in a goroutine
	}
	var log bytes.Buffer
	out := filepath.Join(dir, "out")
	defer func() { t.Logf("build log:\n%s", log.String()) }()
	b, err := recipes.GenericBuild(t.Context(), in, e.r)
	if err != nil {
		return "", "", fmt.Errorf("GenericBuild: %w", err)
	}
	err = solve.Run(t.Context(), e.c, b, out, &log)
	return out, log.String(), err
}

var helloSource = map[string]string{"greeting.txt": "hello, world\n", "build.sh": "tr a-z A-Z < greeting.txt\n"}

func TestGeneric(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in BuildKit")
	}
	e := newGenericEnv(t)
	tarball := ocitest.TarGz(t, "hello-1.0", helloSource)

	t.Run("builds", func(t *testing.T) {
		out, err := e.build(t, tarball, []string{
			"sh build.sh > shout.txt",
			`mkdir -p "$OUT/share" && cp shout.txt "$OUT/share/hello.txt"`,
			// The whole environment the build saw, and where it ran.
			`{ env | sort; echo "pwd=$(pwd)"; echo "umask=$(umask)"; } > "$OUT/env.txt"`,
		}, map[string]string{"hello": "share/hello.txt", "env": "env.txt"}, recipes.Limits{})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		got, _ := os.ReadFile(filepath.Join(out, "share", "hello.txt"))
		if string(got) != "HELLO, WORLD\n" {
			t.Errorf("output = %q, want %q", got, "HELLO, WORLD\n")
		}
		env, _ := os.ReadFile(filepath.Join(out, "env.txt"))
		want := strings.Join([]string{
			"HOME=/tmp/home", "LANG=C", "LC_ALL=C", "OLDPWD=/", "OUT=/out",
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"PWD=/tmp/build", "SHLVL=1", "SOURCE_DATE_EPOCH=1704164645", "SRC=/src", "TMPDIR=/tmp", "TZ=UTC",
			"pwd=/tmp/build", "umask=0022", "",
		}, "\n")
		if string(env) != want {
			t.Errorf("the build's environment:\n%s\nwant exactly:\n%s", env, want)
		}
	})

	t.Run("each build builds", func(t *testing.T) {
		// Two builds of one spec at once on one daemon, as two builders
		// sharing a BuildKit run them: neither is answered from the cache or
		// merged with the other, so a build that is not reproducible — here
		// it writes a random id — differs.
		stamp := []string{`cat /proc/sys/kernel/random/uuid > "$OUT/stamp"`, "sleep 1"}
		outs := make([]string, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				outs[i], _, errs[i] = e.buildLogAs(t, fmt.Sprintf("stamp%d", i), tarball, stamp, map[string]string{"stamp": "stamp"}, recipes.Limits{})
			})
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("builds: %v, %v", errs[0], errs[1])
		}
		a, _ := os.ReadFile(filepath.Join(outs[0], "stamp"))
		b, _ := os.ReadFile(filepath.Join(outs[1], "stamp"))
		if len(a) == 0 || bytes.Equal(a, b) {
			t.Errorf("two builds stamped %q and %q: want two different ids", a, b)
		}
	})

	t.Run("no network", func(t *testing.T) {
		before := e.requests.Load()
		// The file server answers on 127.0.0.1 — to the host, as the
		// download of the tarball showed.
		// (busybox's nc, not its wget, which crashes without a network.)
		host, port, _ := strings.Cut(strings.TrimPrefix(e.files.URL, "http://"), ":")
		_, log, err := e.buildLog(t, tarball, []string{
			`printf 'GET /anything HTTP/1.0\r\n\r\n' | nc ` + host + " " + port + " > page",
			`cp page "$OUT/page"`,
		}, map[string]string{"page": "page"}, recipes.Limits{})
		if !errors.Is(err, recipes.ErrStepFailed) {
			t.Fatalf("build = %v, want %v", err, recipes.ErrStepFailed)
		}
		// The sandbox has a loopback of its own, where nothing listens.
		if !strings.Contains(log, "can't connect to remote host") {
			t.Errorf("the build log does not show nc failing to connect")
		}
		if n := e.requests.Load() - before; n != 1 {
			t.Errorf("the file server got %d requests, want 1 (the tarball's, from outside the sandbox)", n)
		}
	})

	t.Run("writes outside the outputs", func(t *testing.T) {
		for _, target := range []string{"/etc/lantern", "/bin/lantern", "/src/lantern", "/lantern"} {
			_, err := e.build(t, tarball, []string{"echo x > " + target, `echo y > "$OUT/y"`}, map[string]string{"y": "y"}, recipes.Limits{})
			if !errors.Is(err, recipes.ErrStepFailed) || !strings.Contains(err.Error(), "exit code") {
				t.Errorf("write to %s: build = %v, want %v", target, err, recipes.ErrStepFailed)
			}
		}
		_, err := e.build(t, tarball, []string{`echo y > "$OUT/y"`, `echo z > "$OUT/undeclared"`}, map[string]string{"y": "y"}, recipes.Limits{})
		if !errors.Is(err, recipes.ErrOutputs) || !strings.Contains(err.Error(), "undeclared") {
			t.Errorf("undeclared output: build = %v, want %v naming it", err, recipes.ErrOutputs)
		}
		_, err = e.build(t, tarball, []string{`echo y > "$OUT/y"`}, map[string]string{"y": "y", "missing": "z"}, recipes.Limits{})
		if !errors.Is(err, recipes.ErrOutputs) || !strings.Contains(err.Error(), "missing") {
			t.Errorf("missing output: build = %v, want %v naming it", err, recipes.ErrOutputs)
		}
	})

	t.Run("size caps", func(t *testing.T) {
		// The scratch space, which holds the working copy, is a tmpfs of
		// the size limit: writing past it fails in the sandbox.
		_, err := e.build(t, tarball, []string{
			"dd if=/dev/zero of=big bs=1048576 count=24",
			`echo y > "$OUT/y"`,
		}, map[string]string{"y": "y"}, recipes.Limits{Tmp: 16 << 20})
		if !errors.Is(err, recipes.ErrStepFailed) {
			t.Errorf("24 MiB in a 16 MiB scratch space: build = %v, want %v", err, recipes.ErrStepFailed)
		}
		// Outputs past their limit are refused: the export stops at it.
		_, err = e.build(t, tarball, []string{
			`dd if=/dev/zero of="$OUT/big" bs=1048576 count=2`,
		}, map[string]string{"big": "big"}, recipes.Limits{Output: 1 << 20})
		if !errors.Is(err, recipes.ErrOutputs) || !strings.Contains(err.Error(), "more than 1 MiB, the output cap") {
			t.Errorf("2 MiB of outputs with a 1 MiB limit: build = %v, want %v", err, recipes.ErrOutputs)
		}
	})

	t.Run("time limit", func(t *testing.T) {
		start := time.Now()
		_, err := e.build(t, tarball, []string{"sleep 617", `echo y > "$OUT/y"`}, map[string]string{"y": "y"}, recipes.Limits{Time: 3 * time.Second})
		if !errors.Is(err, recipes.ErrTimeLimit) {
			t.Fatalf("build = %v, want %v", err, recipes.ErrTimeLimit)
		}
		t.Logf("failed after %s", time.Since(start).Round(time.Millisecond))
		// Killed, not left running.
		deadline := time.Now().Add(30 * time.Second)
		for {
			pids := processesWith("sleep\x00617")
			if len(pids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the build's process is still running (pids %v)", pids)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// processesWith returns the pids whose command line contains s.
func processesWith(s string) []string {
	var pids []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, filepath.Base(d))
		}
	}
	return pids
}

func TestGenericSourceMismatch(t *testing.T) {
	claimed := ocitest.TarGz(t, "hello-1.0", helloSource)
	served := ocitest.TarGz(t, "hello-1.0", map[string]string{"greeting.txt": "hello, mallory\n"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(served) }))
	defer srv.Close()
	r, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		t.Fatal(err)
	}
	src := lantern.Source{Name: "hello", Version: "1.0", Digest: lantern.DigestOf(claimed)}
	spec := &lantern.BuildSpec{Image: "127.0.0.1:1/x@sha256:" + strings.Repeat("0", 64), Commands: []string{"true"}, Outputs: map[string]string{"x": "x"}}
	dir := t.TempDir()
	_, err = recipes.PrepareGeneric(t.Context(), r, src, srv.URL+"/hello.tar.gz", spec, dir, recipes.GenericOptions{HTTP: srv.Client()})
	de, ok := errors.AsType[*recipes.DigestError](err)
	if !ok || de.Expected != src.Digest || de.Actual != lantern.DigestOf(served) {
		t.Fatalf("PrepareGeneric = %v, want a DigestError: expected %s, actual %s", err, src.Digest, lantern.DigestOf(served))
	}
	if _, err := os.Stat(filepath.Join(dir, "src")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the mismatching tarball was unpacked (%v)", err)
	}
}
