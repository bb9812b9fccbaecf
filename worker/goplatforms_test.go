package worker_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/worker"
)

// TestGoReleasesAndPlatforms: claims that name a Go release and platforms,
// through the farm with two builders (each its own buildkitd): one job of
// stringer for linux/amd64, linux/arm64 and windows/amd64 with go1.24.4,
// one of stringer with go1.23.4. Each label is reproduced by both builders
// (go/v2, which the workers follow; the farm takes no label go/v1
// could make of such a job), and is what the host's
//
//	GOOS=… GOARCH=… CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=go… go install
//
// makes.
func TestGoReleasesAndPlatforms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds stringer four times in each of two BuildKits: minutes")
	}
	start := time.Now()
	a, b := mustKey(t), mustKey(t)
	f := newFarm(t, natsq.Config{}, a, b)
	// One module cache for both workers and across runs (the go command
	// locks it): the two toolchain modules are 80 MB each.
	cache := filepath.Join(os.TempDir(), "lantern-worker-test-cache")
	for _, key := range []*worker.Config{{Key: a}, {Key: b}} {
		_, c := buildkittest.Start(t)
		gb, err := worker.NewGoBuilder(c, filepath.Join(cache, "modcache"), logger())
		if err != nil {
			t.Fatal(err)
		}
		gb.Caps = worker.DefaultCaps
		key.Builders = map[string]worker.Builder{"go": gb}
		key.Heartbeat = 5 * time.Second
		f.startWorker(*key, natsq.Config{})
	}
	out, err := exec.Command("go", "mod", "download", "-json", "golang.org/x/tools@v0.30.0").Output()
	if err != nil {
		t.Fatalf("go mod download: %v", err)
	}
	var dl struct{ Zip, Sum string }
	if err := json.Unmarshal(out, &dl); err != nil {
		t.Fatal(err)
	}
	zip, _, err := lantern.DigestFile(dl.Zip)
	if err != nil {
		t.Fatal(err)
	}
	src := lantern.Source{Name: "golang.org/x/tools/cmd/stringer", Version: "v0.30.0", Digest: zip, GoSum: dl.Sum}

	type want struct {
		goVersion, goos, goarch, label string
	}
	claims := []struct {
		gob   *lantern.GoBuild
		wants []want
	}{
		{&lantern.GoBuild{Platforms: []string{"linux/amd64", "linux/arm64", "windows/amd64"}}, []want{
			{"1.24.4", "linux", "amd64", "stringer-linux-amd64"},
			{"1.24.4", "linux", "arm64", "stringer-linux-arm64"},
			{"1.24.4", "windows", "amd64", "stringer-windows-amd64.exe"},
		}},
		{&lantern.GoBuild{Version: "1.23.4"}, []want{{"1.23.4", "linux", "amd64", "stringer-linux-amd64"}}},
	}
	var jobs []lantern.Job
	for _, c := range claims {
		jobs = append(jobs, f.claimSource(&lantern.SourceClaim{Source: src, Recipe: "go", Go: c.gob,
			Fetch: "https://proxy.golang.org/golang.org/x/tools/@v/v0.30.0.zip", Time: time.Now().UTC().Truncate(time.Second)}))
	}
	// What the host makes, while the farm builds.
	host := map[string]lantern.Digest{}
	for _, c := range claims {
		for _, w := range c.wants {
			host[w.goVersion+" "+w.label] = hostGoInstall(t, cache, w.goVersion, w.goos, w.goarch)
		}
	}

	deadline := time.Now().Add(30 * time.Minute)
	for i, job := range jobs {
		for {
			var vds []lantern.Verdict
			for _, vd := range f.source(job).Verdicts {
				if vd.Job == job.ID && vd.Status != lantern.StatusPending {
					vds = append(vds, vd)
				}
			}
			if len(vds) == len(claims[i].wants) {
				for _, w := range claims[i].wants {
					j := slices.IndexFunc(vds, func(vd lantern.Verdict) bool { return vd.Label == w.label })
					if j < 0 {
						t.Fatalf("%s: verdicts %+v, want one of label %s", job.Go, vds, w.label)
					}
					vd := vds[j]
					if vd.Status != lantern.StatusReproduced || len(vd.Groups) != 1 || len(vd.Groups[0].Builders) != 2 {
						t.Fatalf("%s %s: verdict = %+v, want reproduced by both builders", job.Go, w.label, vd)
					}
					if got, h := vd.Groups[0].Output, host[w.goVersion+" "+w.label]; got != h {
						t.Errorf("go%s %s: the farm's is %s, the host's go install %s", w.goVersion, w.label, got, h)
					}
					t.Logf("go%s %s: %s by %d builders, %s, the host's too", w.goVersion, vd.Label, vd.Status, len(vd.Groups[0].Builders), vd.Groups[0].Output)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no verdicts after 30 minutes: %+v", job.Go, f.source(job))
			}
			time.Sleep(time.Second)
		}
	}
	t.Logf("took %v", time.Since(start).Round(time.Second))
}

// hostGoInstall installs stringer on this machine as anyone can check a
// result, and returns the digest of the binary:
//
//	GOOS=… GOARCH=… CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=go… go install
func hostGoInstall(t *testing.T, cache, goVersion, goos, goarch string) lantern.Digest {
	t.Helper()
	gopath := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "go", "install", "golang.org/x/tools/cmd/stringer@v0.30.0")
	cmd.Dir = t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "GO") && k != "CGO_ENABLED" {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"GOTOOLCHAIN=go"+goVersion, "GOFLAGS=-trimpath -modcacherw", "CGO_ENABLED=0",
		"GOOS="+goos, "GOARCH="+goarch, "GOPATH="+gopath,
		"GOMODCACHE="+filepath.Join(cache, "host-modcache"), "GOCACHE="+t.TempDir(),
	)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Logf("go%s install for %s/%s on the host took %v", goVersion, goos, goarch, time.Since(start).Round(time.Millisecond))
	// go install puts a binary for another platform in bin/GOOS_GOARCH.
	name := filepath.Join(gopath, "bin", goos+"_"+goarch, "stringer")
	if hostOS, hostArch := hostPlatform(t); goos == hostOS && goarch == hostArch {
		name = filepath.Join(gopath, "bin", "stringer")
	}
	if goos == "windows" {
		name += ".exe"
	}
	d, _, err := lantern.DigestFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func hostPlatform(t *testing.T) (string, string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOHOSTOS", "GOHOSTARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	return f[0], f[1]
}
