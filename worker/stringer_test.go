package worker_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/worker"
)

// TestStringerThroughTheFarm is the whole path with every real part: source
// claims of golang.org/x/tools/cmd/stringer@v0.30.0 and of goimports, a
// second command of the same module, posted to the scheduler's API, two workers with different keys, each with its own
// buildkitd and runc, rebuilding it with the go recipe, and the farm's
// verdicts, one per command, that they got the same bytes. (That those are the bytes of a plain
// host go install is shown in package recipes.)
func TestStringerThroughTheFarm(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds stringer twice in BuildKit: about a minute")
	}
	a, b := mustKey(t), mustKey(t)
	f := newFarm(t, natsq.Config{}, a, b)
	for _, key := range []*worker.Config{{Key: a}, {Key: b}} {
		_, c := buildkittest.Start(t)
		gb, err := worker.NewGoBuilder(c, filepath.Join(t.TempDir(), "modcache"), logger())
		if err != nil {
			t.Fatal(err)
		}
		gb.Caps = worker.DefaultCaps // what lantern worker holds a build to
		key.Builders = map[string]worker.Builder{"go": gb}
		key.Heartbeat = 5 * time.Second
		f.startWorker(*key, natsq.Config{})
	}

	// The claim a maintainer (or a bridge from the checksum database) makes:
	// the module zip's digest and its h1: hash, as the go command has them.
	zip, sum := toolsModule(t)
	// Two commands of one module: one module zip, two builds, two jobs.
	var jobs []lantern.Job
	for _, cmd := range []string{"stringer", "goimports"} {
		src := lantern.Source{Name: "golang.org/x/tools/cmd/" + cmd, Version: "v0.30.0", Digest: zip, GoSum: sum}
		jobs = append(jobs, f.claimSource(&lantern.SourceClaim{Source: src, Recipe: "go", Fetch: "https://proxy.golang.org/golang.org/x/tools/@v/v0.30.0.zip", Time: time.Now().UTC().Truncate(time.Second)}))
	}
	if jobs[0].ID == jobs[1].ID {
		t.Fatalf("stringer and goimports make one job, %s", jobs[0].ID)
	}

	deadline := time.Now().Add(15 * time.Minute)
	for _, job := range jobs {
		for {
			v := f.source(job)
			if len(v.Verdicts) == 1 && v.Verdicts[0].Status != lantern.StatusPending {
				vd := v.Verdicts[0]
				if vd.Status != lantern.StatusReproduced || len(vd.Groups) != 1 || len(vd.Groups[0].Builders) != 2 || vd.Job != job.ID {
					t.Fatalf("%s: verdict = %+v, want reproduced by both builders, of job %s", job.Source, vd, job.ID)
				}
				t.Logf("%s: %s, %s by %d builders", vd.Label, vd.Status, vd.Groups[0].Output, len(vd.Groups[0].Builders))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no verdict after 15 minutes: %+v", job.Source, v)
			}
			time.Sleep(time.Second)
		}
	}
}

// toolsModule is golang.org/x/tools@v0.30.0's module zip, downloaded by
// the go command: its digest and its h1: hash, as a claim has them.
func toolsModule(t *testing.T) (zip lantern.Digest, sum string) {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "golang.org/x/tools@v0.30.0").Output()
	if err != nil {
		t.Fatalf("go mod download: %v", err)
	}
	var dl struct{ Zip, Sum string }
	if err := json.Unmarshal(out, &dl); err != nil {
		t.Fatal(err)
	}
	zip, _, err = lantern.DigestFile(dl.Zip)
	if err != nil {
		t.Fatal(err)
	}
	return zip, dl.Sum
}
