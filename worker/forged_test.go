package worker_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/internal/ocitest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker"
	"github.com/lanternfarm/lantern/worker/buildkit"
)

// refused returns how many jobs w refused, from its metrics.
func refused(t *testing.T, w *worker.Worker) float64 {
	t.Helper()
	mfs, err := w.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "lantern_worker_jobs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "refused" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestForgedJobs: whoever holds the scheduler's own (admin) credentials
// publishes jobs on the bus — one with the id, source and claim of a real
// job but a build spec that prints bytes of its choosing, one with no claim
// envelope, one whose claim is signed by a key the builders do not accept.
// No worker builds any of them (none fetches their source; each terminates
// them and counts them as refused), and the real claim's verdict is
// untouched. Real NATS, real BuildKit, the real generic recipe.
func TestForgedJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in BuildKit")
	}
	reg := ocitest.StartRegistry(t)
	image := reg.PushBusybox(t)
	tarball := ocitest.TarGz(t, "hello-1.0", map[string]string{"greeting.txt": "hello, world\n"})
	var fetches atomic.Int64
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(tarball)
	}))
	defer files.Close()

	a, b := mustKey(t), mustKey(t)
	f := newFarm(t, natsq.Config{}, a, b)
	_, c := buildkittest.StartWith(t, buildkit.Options{PlainHTTPRegistries: []string{reg.Host}})
	for _, k := range []*keys.Private{a, b} {
		gb, err := worker.NewGenericBuilder(c, recipes.Limits{Time: time.Minute}, logger(), worker.FetchPolicy(netguard.Policy{AllowPrivate: true, AllowHTTP: true}))
		if err != nil {
			t.Fatal(err)
		}
		f.startWorker(worker.Config{Key: k, Builders: map[string]worker.Builder{lantern.RecipeGeneric: gb}, Heartbeat: 2 * time.Second}, natsq.Config{})
	}
	spec := func(command string) *lantern.BuildSpec {
		return &lantern.BuildSpec{Image: image, Commands: []string{command}, Outputs: map[string]string{"shout": "shout.txt"}}
	}
	want := lantern.DigestOf([]byte("HELLO, WORLD\n"))
	claim := &lantern.SourceClaim{
		Source: lantern.Source{Name: "hello", Version: "1.0", Digest: lantern.DigestOf(tarball)},
		Fetch:  files.URL + "/hello-1.0.tar.gz", Recipe: lantern.RecipeGeneric,
		Build:     spec(`tr a-z A-Z < greeting.txt > "$OUT/shout.txt"`),
		Artefacts: map[string]lantern.Digest{"shout": want}, Time: time.Now().UTC().Truncate(time.Second),
	}
	real := f.claimSource(claim)
	eventually(t, "the real claim reproduced", func() bool {
		v := f.source(real)
		return len(v.Verdicts) == 1 && v.Verdicts[0].Status == lantern.StatusReproduced && len(v.Attestations) == 2
	})
	before := f.source(real)
	fetched := fetches.Load()

	evil := spec(`printf 'bytes of my choosing' > "$OUT/shout.txt"`)
	// (a) The real job, its id, source and claim, with another spec.
	withSpec := real
	withSpec.Build = evil
	// (b) No claim at all, its id made to fit.
	noClaim := real
	noClaim.Envelope, noClaim.Claim, noClaim.Build = nil, lantern.Digest{}, evil
	noClaim.ID = lantern.JobID(noClaim.Source, noClaim.Recipe, evil, nil, f.claimKey.ID())
	// (c) A claim signed by a key no builder accepts, the job exactly what
	// it says.
	strangerClaim := *claim
	strangerClaim.Build, strangerClaim.Artefacts = evil, nil
	strangerKey := mustKey(t)
	env, err := attest.Sign(&strangerClaim, strangerKey)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	stranger := lantern.JobFromClaim(&strangerClaim, raw, strangerKey.ID())

	// Published as the scheduler's own connection could: straight on the
	// jobs stream, each with a message id of the forger's choosing.
	nc, err := nats.Connect(f.nats.URL(), nats.UserCredentials(f.nats.SchedulerConfig(natsq.Config{}).Creds))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range []lantern.Job{withSpec, noClaim, stranger} {
		subject, err := natsq.JobSubject(lantern.RecipeGeneric, fmt.Sprintf("forged-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		j.Created = time.Now().UTC()
		data, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Data: data}, jetstream.WithMsgID(fmt.Sprintf("forged-%d", i))); err != nil {
			t.Fatalf("publish forged job %d: %v", i, err)
		}
	}
	for i, w := range f.workers {
		eventually(t, fmt.Sprintf("worker %d refusing the three forged jobs", i), func() bool { return refused(t, w) >= 3 })
		if n := refused(t, w); n != 3 {
			t.Errorf("worker %d refused %v jobs, want 3", i, n)
		}
	}
	if n := fetches.Load(); n != fetched {
		t.Errorf("the source was fetched %d more times after the forged jobs: a worker built one", n-fetched)
	}
	after := f.source(real)
	if len(after.Attestations) != len(before.Attestations) || len(after.Verdicts) != 1 || after.Verdicts[0].Status != lantern.StatusReproduced ||
		after.Verdicts[0].Groups[0].Output != want {
		t.Errorf("the real claim's evidence changed:\nbefore %+v\nafter  %+v", before, after)
	}
	var job struct{ Builders map[lantern.Digest]any }
	if code := f.get("/api/v1/jobs/"+stranger.ID, &job); code != http.StatusNotFound {
		t.Errorf("GET the stranger's job = %d %+v, want 404: the farm never queued it", code, job)
	}
}
