// Package buildkittest starts a real buildkitd for a test of a package that
// builds in BuildKit (recipes, worker). Where buildkitd, runc or root is
// missing it skips the test — and fails it under CI, which must run them.
package buildkittest

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/moby/buildkit/client"

	"github.com/lanternfarm/lantern/worker/buildkit"
)

// Start starts a buildkitd for one test, stops it when the test ends, and
// returns a client of it. On failure the test's log shows the daemon's
// output.
func Start(t testing.TB) (*buildkit.Daemon, *client.Client) {
	t.Helper()
	return StartWith(t, buildkit.Options{})
}

// Require skips the test where buildkitd, runc or root is missing — and
// fails it under CI — for a test that starts buildkitd some other way (a
// lantern process that starts its own). It returns the buildkitd binary,
// for $LANTERN_BUILDKITD of such a process.
func Require(t testing.TB) string {
	t.Helper()
	bin, err := buildkit.Check("")
	missing(t, err)
	return bin
}

func missing(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, buildkit.ErrNoBuildkitd) || errors.Is(err, buildkit.ErrNoRunc) || errors.Is(err, buildkit.ErrNotRoot) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v\nCI must run the BuildKit tests: 'make buildkitd', and as root, 'apt-get install runc'", err)
		}
		t.Skipf("%v\n(to run this test: 'make buildkitd' and, as root, 'apt-get install runc')", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// StartWith is Start with options; Dir and Log are the helper's own.
func StartWith(t testing.TB, opts buildkit.Options) (*buildkit.Daemon, *client.Client) {
	t.Helper()
	// Not t.TempDir(): its path can be too long for a unix socket.
	dir, err := os.MkdirTemp("", "bk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	log := new(SyncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("buildkitd's output:\n%s", log)
		}
	})
	opts.Dir, opts.Log = dir, log
	d, err := buildkit.StartDaemon(t.Context(), opts)
	missing(t, err)
	t.Cleanup(func() { d.Close() })
	c, err := buildkit.Connect(t.Context(), d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return d, c
}

// SyncBuffer is a bytes.Buffer that a process's output goroutines may
// write to while the test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
