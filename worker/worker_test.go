package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/boltstore"
	"github.com/lanternfarm/lantern/worker"
)

// These tests run workers against a real farm — embedded NATS with the
// farm's identities, bbolt, the scheduler and its API — with a stand-in
// Builder, to test the worker's own loop: taking jobs, signing results and
// failures, handing jobs back. Each worker connects with its builder's own
// credentials, as `lantern worker` does, so the server holds it to what a
// builder may do; a permissions violation any connection or worker logs
// fails the test. The real recipes are tested with a real buildkitd in
// package recipes.

// fakeBuilder stands in for the go recipe's builder: it writes one output,
// under the label the go recipe gives it, whose bytes it makes from the job.
// It names the real go recipe, whose attestations the farm accepts.
type fakeBuilder struct {
	out   func(job lantern.Job) (string, error)
	calls atomic.Int32
}

func (f *fakeBuilder) Recipe() lantern.Recipe {
	r, err := recipes.Load("go")
	if err != nil {
		panic(err)
	}
	return r.Ref()
}

func (f *fakeBuilder) Build(ctx context.Context, job lantern.Job, work string, log io.Writer) (*worker.Result, error) {
	f.calls.Add(1)
	io.WriteString(log, "building "+job.Source.String()+"\n")
	content, err := f.out(job)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(work, "bin")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		return nil, err
	}
	label := recipes.GoLabel(job.Source.Name, "linux", "amd64")
	return &worker.Result{Outputs: map[string]string{label: p}, Environment: map[string]string{"TZ": "UTC"}}, nil
}

type farm struct {
	t        *testing.T
	nats     *natstest.Farm
	sched    *natsq.Queue // the scheduler's connection
	log      *slog.Logger // watches for permissions violations
	api      string
	claimKey *keys.Private
	workers  []*worker.Worker // started, in order
}

func logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFarm(t *testing.T, cfg natsq.Config, builders ...*keys.Private) *farm {
	t.Helper()
	dir := t.TempDir()
	log := natstest.WatchPermissions(t, logger())
	nf := natstest.Start(t)
	q, err := natsq.Connect(t.Context(), nf.URL(), nf.SchedulerConfig(cfg), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	if err := q.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, "scheduler.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	claimKey := mustKey(t)
	var pubs []*keys.Public
	for _, b := range builders {
		pubs = append(pubs, b.Public())
	}
	s, err := scheduler.New(scheduler.Config{RecipeVersions: recipes.Versions(), Threshold: 2, ClaimKeys: []*keys.Public{claimKey.Public()}, Builders: pubs, Backlog: true,
		Fetch: netguard.Policy{AllowPrivate: true, AllowHTTP: true}}, q, st, log) // the tests' sources are on 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	api := httptest.NewServer(s.Handler())
	t.Cleanup(api.Close)
	// The builders' consumers exist once the scheduler has registered them.
	deadline := time.Now().Add(60 * time.Second)
	for _, b := range builders {
		for {
			jc, err := q.Jobs(t.Context(), b.ID())
			if err == nil {
				jc.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("builder %s never registered: %v", b.ID().Short(), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return &farm{t: t, nats: nf, sched: q, log: log, api: api.URL, claimKey: claimKey}
}

func mustKey(t *testing.T) *keys.Private {
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startWorker runs a worker process (its own NATS connection, with new
// credentials of its builder, cfg.Key) until the returned stop is called.
func (f *farm) startWorker(cfg worker.Config, qcfg natsq.Config) (stop func()) {
	f.t.Helper()
	q, err := natsq.Connect(f.t.Context(), f.nats.URL(), f.nats.BuilderConfig(cfg.Key.ID(), qcfg), f.log)
	if err != nil {
		f.t.Fatal(err)
	}
	cfg.WorkDir = f.t.TempDir()
	if cfg.ClaimKeys == nil {
		cfg.ClaimKeys = []*keys.Public{f.claimKey.Public()}
	}
	w, err := worker.New(cfg, q, f.log)
	if err != nil {
		f.t.Fatal(err)
	}
	f.workers = append(f.workers, w)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(ctx); err != nil {
			f.t.Errorf("worker Run: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait(); q.Close() }) }
	f.t.Cleanup(stop)
	return stop
}

func (f *farm) claim(name string) lantern.Job {
	f.t.Helper()
	return f.claimSource(&lantern.SourceClaim{Source: lantern.Source{Name: name, Version: "v1", Digest: lantern.DigestOf([]byte(name))}, Recipe: "go", Time: time.Now().UTC().Truncate(time.Second)})
}

// claimSource posts a signed source claim to the farm's API and returns its job.
func (f *farm) claimSource(c *lantern.SourceClaim) lantern.Job {
	f.t.Helper()
	env, err := attest.Sign(c, f.claimKey)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	resp, err := http.Post(f.api+"/api/v1/claims", "application/json", bytes.NewReader(b))
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		f.t.Fatalf("POST claim = %d", resp.StatusCode)
	}
	return lantern.JobFromClaim(c, b, f.claimKey.ID())
}

func (f *farm) get(path string, out any) int {
	resp, err := http.Get(f.api + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

type sourceView struct {
	Verdicts     []lantern.Verdict
	Attestations []struct {
		Builder lantern.Digest
		Kind    lantern.Kind
		Stage   string
		Reason  string
		Log     lantern.Digest
	}
}

func (f *farm) source(job lantern.Job) sourceView {
	var v sourceView
	f.get("/api/v1/sources/"+job.Source.String(), &v)
	return v
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWorkersReproduce(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	f := newFarm(t, natsq.Config{}, a, b)
	fb := &fakeBuilder{out: func(j lantern.Job) (string, error) { return "binary of " + j.Source.String(), nil }}
	f.startWorker(worker.Config{Key: a, Builders: map[string]worker.Builder{"go": fb}}, natsq.Config{})
	f.startWorker(worker.Config{Key: b, Builders: map[string]worker.Builder{"go": fb}}, natsq.Config{})
	job := f.claim("example.org/worked")
	eventually(t, "reproduced", func() bool {
		v := f.source(job)
		return len(v.Verdicts) == 1 && v.Verdicts[0].Status == lantern.StatusReproduced
	})
	v := f.source(job)
	if len(v.Attestations) != 2 || v.Attestations[0].Log.IsZero() {
		t.Errorf("attestations = %+v, want 2 with their logs", v.Attestations)
	}
}

func TestWorkerSignsFailures(t *testing.T) {
	a := mustKey(t)
	f := newFarm(t, natsq.Config{}, a)
	want, got := lantern.DigestOf([]byte("claimed")), lantern.DigestOf([]byte("fetched"))
	fb := &fakeBuilder{out: func(lantern.Job) (string, error) {
		return "", &worker.BuildError{Stage: "verify-inputs", Expected: want, Actual: got, Err: errors.New("source archive differs from its claim")}
	}}
	f.startWorker(worker.Config{Key: a, Builders: map[string]worker.Builder{"go": fb}}, natsq.Config{})
	job := f.claim("example.org/tampered")
	eventually(t, "failed", func() bool {
		v := f.source(job)
		return len(v.Verdicts) == 1 && v.Verdicts[0].Status == lantern.StatusFailed
	})
	at := f.source(job).Attestations[0]
	if at.Kind != lantern.KindRebuildFailure || at.Stage != "verify-inputs" || at.Builder != a.ID() {
		t.Errorf("attestation = %+v, want a failure at verify-inputs signed by the builder", at)
	}
}

func TestWorkerHandsBackInfrastructureFailures(t *testing.T) {
	a := mustKey(t)
	f := newFarm(t, natsq.Config{}, a)
	fb := &fakeBuilder{}
	fb.out = func(lantern.Job) (string, error) {
		if fb.calls.Load() == 1 {
			return "", errors.New("buildkitd went away")
		}
		return "binary", nil
	}
	said := f.watchBuilding(a.ID())
	f.startWorker(worker.Config{Key: a, Builders: map[string]worker.Builder{"go": fb}, RetryDelay: 100 * time.Millisecond}, natsq.Config{})
	job := f.claim("example.org/retried")
	eventually(t, "the rebuild", func() bool { return len(f.source(job).Attestations) == 1 })
	// What the worker said on the bus while it built: building, handed
	// back, building again (and nothing after its answer).
	want := []string{job.ID + " true", job.ID + " false", job.ID + " true"}
	eventually(t, "the worker's progress", func() bool { return len(said()) >= len(want) })
	if got := said(); !slices.Equal(got, want) {
		t.Errorf("the worker said %q, want %q", got, want)
	}
	if n := fb.calls.Load(); n != 2 {
		t.Errorf("builds = %d, want 2 (one failed for the infrastructure, one done)", n)
	}
	if v := f.source(job); v.Attestations[0].Kind != lantern.KindRebuild {
		t.Errorf("attestation = %+v, want the rebuild", v.Attestations[0])
	}
}

// TestWorkerUploadsOutputs: a worker puts its outputs in the farm's object
// store (its builder's bucket), where the scheduler reads them for
// difference reports, unless they are larger than its upload limit.
func TestWorkerUploadsOutputs(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	f := newFarm(t, natsq.Config{}, a, b)
	fa := &fakeBuilder{out: func(j lantern.Job) (string, error) { return "output of A", nil }}
	fb := &fakeBuilder{out: func(j lantern.Job) (string, error) { return "output of B, too large to upload", nil }}
	f.startWorker(worker.Config{Key: a, Builders: map[string]worker.Builder{"go": fa}}, natsq.Config{})
	f.startWorker(worker.Config{Key: b, Builders: map[string]worker.Builder{"go": fb}, MaxUpload: 16}, natsq.Config{})
	job := f.claim("example.org/uploaded")
	eventually(t, "both answers", func() bool { return len(f.source(job).Attestations) == 2 })

	q := f.sched // only the scheduler reads what builders uploaded
	rc, err := q.GetObject(t.Context(), lantern.DigestOf([]byte("output of A")))
	if err != nil {
		t.Fatalf("A's output is not in the object store: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "output of A" {
		t.Errorf("A's output in the object store = %q, %v", got, err)
	}
	if _, err := q.GetObject(t.Context(), lantern.DigestOf([]byte("output of B, too large to upload"))); !errors.Is(err, natsq.ErrObjectNotFound) {
		t.Errorf("B's output, past its upload limit: GetObject = %v, want ErrObjectNotFound", err)
	}
}

// watchBuilding records what builder says it builds on the bus, as the
// scheduler hears it, from now on: the returned function lists "JOB BOOL"
// in order.
func (f *farm) watchBuilding(builder lantern.Digest) func() []string {
	f.t.Helper()
	var mu sync.Mutex
	var said []string
	probe := "j" + strings.Repeat("0", 32)
	ctx, cancel := context.WithCancel(f.t.Context())
	f.t.Cleanup(cancel)
	go f.sched.WatchBuilding(ctx, func(b lantern.Digest, job string, building bool) {
		if b != builder {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		said = append(said, fmt.Sprintf("%s %t", job, building))
	})
	// Listening once the scheduler's own probe comes back.
	eventually(f.t, "the building subject watched", func() bool {
		f.sched.PublishBuilding(ctx, builder, probe, true)
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return len(said) > 0
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, s := range said {
			if !strings.HasPrefix(s, probe) {
				out = append(out, s)
			}
		}
		return out
	}
}
