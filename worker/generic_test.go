package worker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/internal/ocitest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker"
	"github.com/lanternfarm/lantern/worker/buildkit"
)

// TestGenericThroughTheFarm runs the generic recipe with every real part:
// source claims posted to the scheduler, two builders with their own keys
// and buildkitds, the builder image pulled by digest from a registry on
// 127.0.0.1, tarballs served on 127.0.0.1. One source reproduces; one whose
// served bytes differ from its claim is never built, and each builder signs
// that failure; one that runs past the workers' time limit is killed and
// reported failed.
func TestGenericThroughTheFarm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in BuildKit")
	}
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)

	good := ocitest.TarGz(t, "hello-1.0", map[string]string{"greeting.txt": "hello, world\n"})
	claimed := ocitest.TarGz(t, "hello-1.1", map[string]string{"greeting.txt": "hello, world\n"})
	tampered := ocitest.TarGz(t, "hello-1.1", map[string]string{"greeting.txt": "hello, mallory\n"})
	served := map[string][]byte{"/hello-1.0.tar.gz": good, "/hello-1.1.tar.gz": tampered, "/slow-1.0.tar.gz": good}
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := served[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer files.Close()

	a, b := mustKey(t), mustKey(t)
	f := newFarm(t, natsq.Config{}, a, b)
	for _, k := range []*keys.Private{a, b} {
		_, c := buildkittest.StartWith(t, buildkit.Options{PlainHTTPRegistries: []string{reg.Host}})
		gb, err := worker.NewGenericBuilder(c, recipes.Limits{Time: 20 * time.Second}, logger(),
			worker.FetchPolicy(netguard.Policy{AllowPrivate: true, AllowHTTP: true}))
		if err != nil {
			t.Fatal(err)
		}
		f.startWorker(worker.Config{Key: k, Builders: map[string]worker.Builder{lantern.RecipeGeneric: gb}, Heartbeat: 2 * time.Second}, natsq.Config{})
	}

	spec := func(commands ...string) *lantern.BuildSpec {
		return &lantern.BuildSpec{Image: image, Commands: commands, Outputs: map[string]string{"shout": "shout.txt"}}
	}
	shout := spec(`tr a-z A-Z < greeting.txt > "$OUT/shout.txt"`)
	want := lantern.DigestOf([]byte("HELLO, WORLD\n"))
	now := time.Now().UTC().Truncate(time.Second)
	reproduced := f.claimSource(&lantern.SourceClaim{
		Source: lantern.Source{Name: "hello", Version: "1.0", Digest: lantern.DigestOf(good)},
		Fetch:  files.URL + "/hello-1.0.tar.gz", Recipe: lantern.RecipeGeneric, Build: shout,
		Artefacts: map[string]lantern.Digest{"shout": want}, Time: now,
	})
	mismatch := f.claimSource(&lantern.SourceClaim{
		Source: lantern.Source{Name: "hello", Version: "1.1", Digest: lantern.DigestOf(claimed)},
		Fetch:  files.URL + "/hello-1.1.tar.gz", Recipe: lantern.RecipeGeneric, Build: shout, Time: now,
	})
	slow := f.claimSource(&lantern.SourceClaim{
		Source: lantern.Source{Name: "slow", Version: "1.0", Digest: lantern.DigestOf(good)},
		Fetch:  files.URL + "/slow-1.0.tar.gz", Recipe: lantern.RecipeGeneric,
		Build: spec("sleep 3600", `tr a-z A-Z < greeting.txt > "$OUT/shout.txt"`), Time: now,
	})

	settled := func(job lantern.Job) bool {
		v := f.source(job)
		return len(v.Verdicts) == 1 && v.Verdicts[0].Status != lantern.StatusPending && len(v.Attestations) == 2
	}
	deadline := time.Now().Add(5 * time.Minute)
	for !settled(reproduced) || !settled(mismatch) || !settled(slow) {
		if time.Now().After(deadline) {
			t.Fatalf("no verdicts after 5 minutes:\n%+v\n%+v\n%+v", f.source(reproduced), f.source(mismatch), f.source(slow))
		}
		time.Sleep(200 * time.Millisecond)
	}

	vd := f.source(reproduced).Verdicts[0]
	if vd.Status != lantern.StatusReproduced || len(vd.Groups) != 1 || len(vd.Groups[0].Builders) != 2 || vd.Groups[0].Output != want {
		t.Errorf("hello@1.0: verdict %+v, want reproduced by both builders as %s", vd, want)
	}
	// The attestation names the image and the spec by digest.
	rb := f.claimOf(t, f.attestations(reproduced)[0], a, b).(*lantern.Rebuild)
	imageDigest, _ := shout.ImageDigest()
	deps := map[string]lantern.Digest{}
	for _, d := range rb.Dependencies {
		deps[d.Name] = d.Digest
	}
	if deps["builder-image"] != imageDigest || deps["build-spec"] != shout.Digest() {
		t.Errorf("dependencies = %+v, want the builder image %s and the build spec %s", rb.Dependencies, imageDigest, shout.Digest())
	}
	if rb.Environment["SOURCE_DATE_EPOCH"] != "0" || rb.Environment["TZ"] != "UTC" {
		t.Errorf("environment = %v, want the recipe's fixed one", rb.Environment)
	}

	for _, at := range f.attestations(mismatch) {
		fl, ok := f.claimOf(t, at, a, b).(*lantern.RebuildFailure)
		if !ok || fl.Stage != "verify-inputs" || fl.Expected != lantern.DigestOf(claimed) || fl.Actual != lantern.DigestOf(tampered) {
			t.Errorf("hello@1.1: %+v, want a signed failure at verify-inputs naming expected %s and actual %s", fl, lantern.DigestOf(claimed), lantern.DigestOf(tampered))
		}
	}
	for _, at := range f.source(slow).Attestations {
		if at.Kind != lantern.KindRebuildFailure || at.Stage != "build" || !strings.Contains(at.Reason, "time limit") {
			t.Errorf("slow@1.0: %+v, want a failure at build for the time limit", at)
		}
	}
}

// attestations returns the download paths of a job's attestations.
func (f *farm) attestations(job lantern.Job) []string {
	var v struct{ Attestations []struct{ Download string } }
	f.get("/api/v1/sources/"+job.Source.String(), &v)
	var out []string
	for _, a := range v.Attestations {
		out = append(out, a.Download)
	}
	return out
}

// claimOf downloads an attestation and verifies it with one of keys.
func (f *farm) claimOf(t *testing.T, download string, ks ...*keys.Private) lantern.Claim {
	t.Helper()
	resp, err := http.Get(f.api + download)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	env, err := dsse.Unmarshal(b)
	if err != nil {
		t.Fatalf("%s: %v", download, err)
	}
	for _, k := range ks {
		if v, err := attest.Verify(env, k.Public()); err == nil {
			return v.Claim
		}
	}
	t.Fatalf("%s: verifies with none of the builders' keys", download)
	return nil
}
