package worker_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/dockertest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/worker"
	"github.com/lanternfarm/lantern/worker/dockerengine"
)

// TestStringerOnDockerEngine: a worker on Docker Engine (Debian's dockerd,
// its built-in BuildKit reached through the Engine's API) and a worker on a
// buildkitd of its own rebuild golang.org/x/tools/cmd/stringer@v0.30.0 from
// one source claim with the go recipe, and the farm's verdict is that they
// got the same bytes. The Engine's worker runs as 'lantern worker --docker'
// does on that Engine: without caps and with an unsized scratch space
// where the Engine's BuildKit cannot do them (before Engine 23.0).
func TestStringerOnDockerEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds stringer twice, once on Docker Engine: about a minute")
	}
	d := dockertest.Start(t)
	e, err := dockerengine.Connect(t.Context(), d.Host, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	t.Logf("%s", e)
	_, bk := buildkittest.Start(t)

	// The module cache package recipes' tests keep between runs: the
	// toolchain and stringer's modules are downloaded once.
	modCache := filepath.Join(os.TempDir(), "lantern-recipes-test-cache", "modcache")
	onEngine, onBuildkitd := mustKey(t), mustKey(t)
	f := newFarm(t, natsq.Config{}, onEngine, onBuildkitd)

	gb, err := worker.NewGoBuilder(bk, modCache, logger())
	if err != nil {
		t.Fatal(err)
	}
	gb.Caps = worker.DefaultCaps
	f.startWorker(worker.Config{Key: onBuildkitd, Builders: map[string]worker.Builder{"go": gb}, Heartbeat: 5 * time.Second}, natsq.Config{})

	eb, err := worker.NewGoBuilder(e.Client, modCache, logger())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.HoldsCaps(); err != nil {
		t.Logf("the Engine's worker builds without caps: %v", err)
		eb.UnsizedScratch = true
	} else {
		eb.Caps = worker.DefaultCaps
	}
	f.startWorker(worker.Config{Key: onEngine, Builders: map[string]worker.Builder{"go": eb}, Heartbeat: 5 * time.Second}, natsq.Config{})

	zip, sum := toolsModule(t)
	src := lantern.Source{Name: "golang.org/x/tools/cmd/stringer", Version: "v0.30.0", Digest: zip, GoSum: sum}
	job := f.claimSource(&lantern.SourceClaim{Source: src, Recipe: "go", Fetch: "https://proxy.golang.org/golang.org/x/tools/@v/v0.30.0.zip", Time: time.Now().UTC().Truncate(time.Second)})

	deadline := time.Now().Add(15 * time.Minute)
	for {
		v := f.source(job)
		if len(v.Verdicts) == 1 && v.Verdicts[0].Status != lantern.StatusPending {
			vd := v.Verdicts[0]
			if vd.Status != lantern.StatusReproduced || len(vd.Groups) != 1 ||
				!slices.Contains(vd.Groups[0].Builders, onEngine.ID()) || !slices.Contains(vd.Groups[0].Builders, onBuildkitd.ID()) {
				t.Fatalf("verdict = %+v\nattestations: %+v\nwant reproduced by the worker on Docker Engine (%s) and the one on buildkitd (%s)", vd, v.Attestations, onEngine.ID().Short(), onBuildkitd.ID().Short())
			}
			t.Logf("%s: %s, %s by the worker on %s and the one on buildkitd", vd.Label, vd.Status, vd.Groups[0].Output, e)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verdict after 15 minutes: %+v", v)
		}
		time.Sleep(time.Second)
	}
	// The Engine's BuildKit did build: its cache holds the build's records.
	du, err := e.Client.DiskUsage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(du) == 0 {
		t.Errorf("the Engine's BuildKit holds nothing after the build: did the worker build elsewhere?")
	}
}
