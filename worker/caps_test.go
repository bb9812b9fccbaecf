package worker_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/internal/ocitest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker"
	"github.com/lanternfarm/lantern/worker/buildkit"
)

// TestBuildCaps runs generic builds that try to take the worker's machine
// — a fork bomb, a build that allocates without end (and carries on when
// the kernel kills its allocator), one that writes into its output
// directory without end — on a worker with small caps: each is killed and
// signed as failed at stage build, naming its cap. The same worker then
// rebuilds a well-behaved source, and gets its bytes.
func TestBuildCaps(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in BuildKit")
	}
	caps := worker.Caps{Memory: 64 << 20, Processes: 64, Disk: 16 << 20}
	if err := worker.CheckCaps(caps); err != nil {
		t.Fatalf("CheckCaps = %v; this test needs root and cgroups", err)
	}
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)
	src := ocitest.TarGz(t, "hog-1.0", map[string]string{"greeting.txt": "hello, world\n"})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(src) }))
	defer files.Close()

	k := mustKey(t)
	f := newFarm(t, natsq.Config{}, k)
	_, c := buildkittest.StartWith(t, buildkit.Options{PlainHTTPRegistries: []string{reg.Host}})
	// The time limit is a backstop: a cap that does not hold shows as a
	// failure for the time limit, not for the cap.
	gb, err := worker.NewGenericBuilder(c, recipes.Limits{Time: 2 * time.Minute}, logger(), worker.FetchPolicy(netguard.Policy{AllowPrivate: true, AllowHTTP: true}))
	if err != nil {
		t.Fatal(err)
	}
	gb.Caps = caps
	f.startWorker(worker.Config{Key: k, Builders: map[string]worker.Builder{lantern.RecipeGeneric: gb}, Heartbeat: 2 * time.Second}, natsq.Config{})

	now := time.Now().UTC().Truncate(time.Second)
	claim := func(name string, commands ...string) lantern.Job {
		return f.claimSource(&lantern.SourceClaim{
			Source: lantern.Source{Name: name, Version: "1.0", Digest: lantern.DigestOf(src)},
			Fetch:  files.URL + "/" + name + ".tar.gz", Recipe: lantern.RecipeGeneric, Time: now,
			Build: &lantern.BuildSpec{Image: image, Commands: commands, Outputs: map[string]string{"out": "out.txt"}},
		})
	}
	answered := func(job lantern.Job) bool { return len(f.source(job).Attestations) == 1 }
	wait := func(jobs ...lantern.Job) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for _, j := range jobs {
			for !answered(j) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: no attestation after 5 minutes: %+v", j.Source, f.source(j))
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}

	hogs := []struct {
		job  lantern.Job
		want string
	}{{
		claim("forks",
			`bomb() { bomb | bomb & }`, `bomb`, `wait`, `sleep 600`, `echo done > "$OUT/out.txt"`),
		"killed: past the process cap of 64",
	}, {
		// The allocator is killed by the kernel; the script goes on, and
		// would succeed: the worker still fails it.
		claim("allocates",
			`awk 'BEGIN { s = "xxxxxxxx"; while (1) s = s s }' || true`, `echo survived > "$OUT/out.txt"`),
		"killed: past the memory cap of 64 MiB",
	}, {
		// Many files: a cap on each file's size (RLIMIT_FSIZE) would not
		// hold it.
		claim("writes",
			`i=0; while :; do i=$((i+1)); head -c 1048576 /dev/zero > "$OUT/f$i"; done`),
		"killed: past the disk cap of 16 MiB",
	}}
	for _, h := range hogs {
		wait(h.job)
		at := f.source(h.job).Attestations[0]
		if at.Kind != lantern.KindRebuildFailure || at.Stage != "build" || !strings.HasPrefix(at.Reason, h.want) {
			t.Errorf("%s: %+v, want a signed failure at build, %q", h.job.Source, at, h.want)
		}
		if v := f.source(h.job).Verdicts; len(v) != 1 || v[0].Status != lantern.StatusFailed {
			t.Errorf("%s: verdicts %+v, want failed", h.job.Source, v)
		}
	}

	// Outputs made at once, before the watch may look: a file past the cap
	// written in one go, and a sparse one of 64 GiB. The export stops them
	// as it unpacks (or the watch, if it looked in time): nothing near
	// their size reaches the worker's disk.
	for _, j := range []lantern.Job{
		claim("quick", `head -c 33554432 /dev/zero > "$OUT/out.txt"`),
		claim("sparse", `dd if=/dev/zero of="$OUT/out.txt" bs=1 count=1 seek=68719476735`),
	} {
		wait(j)
		at := f.source(j).Attestations[0]
		t.Logf("%s: %s: %s", j.Source, at.Stage, at.Reason)
		if at.Kind != lantern.KindRebuildFailure || !(strings.Contains(at.Reason, "output cap") || strings.Contains(at.Reason, "disk cap")) {
			t.Errorf("%s: %+v, want a signed failure naming the output or disk cap", j.Source, at)
		}
	}

	good := claim("hello", `tr a-z A-Z < greeting.txt > "$OUT/out.txt"`)
	wait(good)
	at := f.source(good).Attestations[0]
	if at.Kind != lantern.KindRebuild {
		t.Fatalf("hello: %+v, want a rebuild: the worker must be healthy after the builds it killed", at)
	}
	rb := f.claimOf(t, f.attestations(good)[0], k).(*lantern.Rebuild)
	want := lantern.DigestOf([]byte("HELLO, WORLD\n"))
	if rb.Label != "out" || rb.Output != want {
		t.Errorf("hello: %s = %s, want out = %s", rb.Label, rb.Output, want)
	}
}
