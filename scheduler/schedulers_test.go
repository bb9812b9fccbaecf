package scheduler_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

// Two or more schedulers on one farm: each reads every claim, result, dead
// letter and difference report into a store of its own, and what must
// happen once (a claim's job, a diffoscope run) happens once across them.

// streamSubjects counts the messages of stream on subjects matching filter,
// as the farm's admin sees them.
func streamSubjects(t *testing.T, f *farm, stream, filter string) uint64 {
	t.Helper()
	js := f.adminJS(t)
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// publishResult publishes env as builder b does, on its own connection.
func (f *farm) publishResult(t *testing.T, b *keys.Private, env []byte) {
	t.Helper()
	if err := f.builder(b).PublishResult(t.Context(), b.ID(), env); err != nil {
		t.Fatalf("PublishResult as %s: %v", b.ID().Short(), err)
	}
}

// die stops f's scheduler as a crash would: its connection goes first, so
// that nothing it holds is acked or given back; then, after gone (if not
// nil) lets go of what holds it, the rest of it.
func (f *farm) die(gone func()) {
	f.t.Helper()
	f.q.Close()
	if gone != nil {
		gone()
	}
	f.api.Close()
	f.cancel()
	<-f.done // an error: its connection is gone
	f.st.Close()
	f.cancel = nil
}

// TestSchedulersAgree: two schedulers with stores of their own answer the
// API with the same jobs, verdicts and sources, whichever of them took the
// claims (the API of one, of the other, or a claimant on NATS), and each
// claim's job is queued once.
func TestSchedulersAgree(t *testing.T) {
	f := newTunedFarm(t, natsq.Config{SchedulerName: "one"}, nil, nil, builderA, builderB, builderC)
	p := f.peer("two", nil, nil)
	published := lantern.DigestOf([]byte("published bytes"))
	claim1, job1 := sourceClaim(t, claimKey, "example.org/one", published)
	claim2, job2 := sourceClaim(t, claimKey, "example.org/two", lantern.Digest{})
	claim3, job3 := sourceClaim(t, claimKey2, "example.org/three", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim1, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim to one = %d, want 202", code)
	}
	if code := p.do("POST", "/api/v1/claims", claim2, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim to two = %d, want 202", code)
	}
	if err := f.claimant().PublishClaim(t.Context(), claim3); err != nil {
		t.Fatal(err)
	}
	jobs := []lantern.Job{job1, job2, job3}
	for _, s := range []*farm{f, p} {
		for _, j := range jobs {
			eventually(t, "job "+j.ID, func() bool { return s.do("GET", "/api/v1/jobs/"+j.ID, nil, nil) == http.StatusOK })
		}
	}
	// Each builder: job1 reproduced by A and B (matching the published
	// artefact), C differs; job2 A alone; job3 A and B disagree.
	for _, r := range []struct {
		b   *keys.Private
		job lantern.Job
		out string
	}{
		{builderA, job1, "published bytes"}, {builderB, job1, "published bytes"}, {builderC, job1, "other bytes"},
		{builderA, job2, "two"},
		{builderA, job3, "three a"}, {builderB, job3, "three b"},
	} {
		f.publishResult(t, r.b, rebuilt(t, r.b, r.job, r.out))
	}
	artefacts := []lantern.Digest{published, lantern.DigestOf([]byte("two")), lantern.DigestOf([]byte("three a"))}
	rebuilds := []int{3, 1, 2}
	counted := func(v *lantern.Verdict) int {
		n := 0
		for _, g := range v.Groups {
			n += len(g.Builders)
		}
		return n
	}
	for i, j := range jobs {
		eventually(t, "both schedulers to agree on "+j.Source.Name, func() bool {
			va, vb := f.verdict(artefacts[i]), p.verdict(artefacts[i])
			if va == nil || vb == nil || counted(va) != rebuilds[i] || counted(vb) != rebuilds[i] {
				return false
			}
			return f.snapshot(j, artefacts[i]) == p.snapshot(j, artefacts[i])
		})
	}
	if v := p.verdict(published); v == nil || v.Status != lantern.StatusMismatch && v.Status != lantern.StatusReproduced {
		t.Errorf("two's verdict on %s = %+v", published.Short(), v)
	}
	for _, s := range []*farm{f, p} {
		var got []lantern.Verdict
		for _, a := range artefacts {
			if v := s.verdict(a); v != nil {
				got = append(got, *v)
			}
		}
		if len(got) != len(artefacts) {
			t.Errorf("a scheduler answers %d verdicts, want %d", len(got), len(artefacts))
		}
	}
	if n := streamSubjects(t, f, natsq.StreamJobs, natsq.SubjectJobs+".>"); n != uint64(len(jobs)) {
		t.Errorf("the jobs stream has %d messages for %d claims taken by two schedulers, want %d", n, len(jobs), len(jobs))
	}
}

// holdJobs publishes jobs for real, then holds the claim's ingest there, as
// a scheduler that dies between queuing a claim's job and storing the
// claim: it tells published, and returns when its ctx ends.
type holdJobs struct {
	*natsq.Queue
	published chan<- struct{}
}

func (h holdJobs) PublishJobs(ctx context.Context, jobs []lantern.Job) error {
	if err := h.Queue.PublishJobs(ctx, jobs); err != nil {
		return err
	}
	h.published <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// TestClaimIngestOnceWhenASchedulerDies: a scheduler that queued a claim's
// job and died before it stored the claim leaves the claim to the other,
// which stores it and queues nothing again — though it comes past the
// duplicate window, so that no message id saves it — and so does the first
// one when it comes back.
func TestClaimIngestOnceWhenASchedulerDies(t *testing.T) {
	published := make(chan struct{}, 1)
	const window = 200 * time.Millisecond
	f := &farm{t: t, dir: t.TempDir(), cfg: natsq.Config{SchedulerName: "one", DuplicateWindow: window}, builders: []*keys.Private{builderA, builderB}}
	f.wrap = func(q *natsq.Queue) scheduler.Queue { return holdJobs{Queue: q, published: published} }
	startFarm(f)
	claim, job := sourceClaim(t, claimKey, "example.org/held", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	<-published
	if code := f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil); code != http.StatusNotFound {
		t.Fatalf("GET the job from the scheduler held in its ingest = %d, want 404 (the claim is not stored yet)", code)
	}
	f.die(nil)
	time.Sleep(3 * window) // the job's message id is forgotten
	p := f.peer("two", nil, nil)
	eventually(t, "two to store the claim's job", func() bool { return p.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	if n := streamSubjects(t, f, natsq.StreamJobs, natsq.SubjectJobs+".>"); n != 1 {
		t.Errorf("the jobs stream has %d messages after one claim's ingest by two schedulers, want 1", n)
	}
	f.wrap = nil
	f.startScheduler() // one comes back, with its store
	eventually(t, "one to store the claim's job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	if n := streamSubjects(t, f, natsq.StreamJobs, natsq.SubjectJobs+".>"); n != 1 {
		t.Errorf("the jobs stream has %d messages after one claim's ingest was taken up again, want 1", n)
	}
	// Each builder is given the job once.
	for _, b := range []*keys.Private{builderA, builderB} {
		m := takeJob(t, f.builder(b), b)
		if m.Job.ID != job.ID {
			t.Errorf("builder %s got job %s, want %s", b.ID().Short(), m.Job.ID, job.ID)
		}
	}
}

// startFarm starts f's NATS server and scheduler, as newTunedFarm does.
func startFarm(f *farm) {
	f.t.Helper()
	g := newTunedFarm(f.t, f.cfg, nil, nil) // its NATS server, its logger
	g.stopScheduler()
	f.nats, f.log = g.nats, g.log
	f.startScheduler()
}

// holdingDiffer signals started when it is asked for a report, and holds
// on until released, then fails: a diffoscope that a kill -9 stops.
type holdingDiffer struct {
	started chan<- struct{}
	release <-chan struct{}
}

func (h holdingDiffer) Diff(ctx context.Context, name string, a, b io.Reader) ([]byte, error) {
	h.started <- struct{}{}
	<-h.release
	return nil, errors.New("killed")
}

// countingDiffer counts the reports it makes.
type countingDiffer struct {
	scheduler.Differ
	n *atomic.Int64
}

func (c countingDiffer) Diff(ctx context.Context, name string, a, b io.Reader) ([]byte, error) {
	report, err := c.Differ.Diff(ctx, name, a, b)
	if err == nil {
		c.n.Add(1)
	}
	return report, err
}

// TestDiffoscopeOnceWhenASchedulerDies: the scheduler that took a
// difference report dies while diffoscope runs; the other one, which does
// not take it while the first one's heartbeats keep it, takes it after the
// ack wait, makes it once with the real diffoscope, and both serve it.
func TestDiffoscopeOnceWhenASchedulerDies(t *testing.T) {
	d := findDiffoscope(t)
	started, release := make(chan struct{}, 1), make(chan struct{})
	cfg := natsq.Config{SchedulerName: "one", AckWait: 2 * time.Second}
	f := newDiffingFarm(t, cfg, holdingDiffer{started: started, release: release}, builderA, builderB)
	claim, job := sourceClaim(t, claimKey, "example.org/stamped", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	eventually(t, "the job to be stored", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	outA, outB := "built at 1\nsame\n", "built at 2\nsame\n"
	for b, out := range map[*keys.Private]string{builderA: outA, builderB: outB} {
		if _, err := f.builder(b).PutObject(t.Context(), "bin", strings.NewReader(out)); err != nil {
			t.Fatal(err)
		}
		f.publishResult(t, b, rebuilt(t, b, job, out))
	}
	<-started // one runs diffoscope, and holds there

	var made atomic.Int64
	p := f.peer("two", countingDiffer{Differ: d, n: &made}, nil)
	a, b := lantern.DigestOf([]byte(outA)), lantern.DigestOf([]byte(outB))
	diffPath := "/api/v1/diffs/" + a.String() + "/" + b.String()
	eventually(t, "two to have the report pending", func() bool {
		var rec scheduler.DiffRecord
		return p.do("GET", diffPath, nil, &rec) == http.StatusOK && rec.State == scheduler.DiffPending
	})
	// Past two ack waits, one's heartbeats keep the report from two.
	time.Sleep(2 * cfg.AckWait)
	if n := made.Load(); n != 0 {
		t.Fatalf("two made %d reports while one held the only one", n)
	}
	f.die(func() { close(release) })

	var rec scheduler.DiffRecord
	eventually(t, "two to make the report", func() bool {
		return p.do("GET", diffPath, nil, &rec) == http.StatusOK && rec.State != scheduler.DiffPending
	})
	if rec.State != scheduler.DiffDone {
		t.Fatalf("report = %+v, want done", rec)
	}
	report := p.text(t, diffPath+"/report")
	if !strings.Contains(report, "built at 1") || !strings.Contains(report, "built at 2") {
		t.Errorf("report is not diffoscope's on the two outputs:\n%s", report)
	}
	f.differ = nil
	f.startScheduler() // one comes back, without a diffoscope
	eventually(t, "one to serve the report", func() bool {
		var r scheduler.DiffRecord
		return f.do("GET", diffPath, nil, &r) == http.StatusOK && r == rec
	})
	if got := f.text(t, diffPath+"/report"); got != report {
		t.Errorf("one serves another report than two")
	}
	if n := made.Load(); n != 1 {
		t.Errorf("diffoscope made %d reports, want 1", n)
	}
	if n := streamSubjects(t, f, natsq.StreamDiffs, natsq.SubjectDiffsMade+".>"); n != 1 {
		t.Errorf("%d reports made on the stream, want 1", n)
	}
	if n := streamSubjects(t, f, natsq.StreamDiffs, natsq.SubjectDiffsWanted+".>"); n != 1 {
		t.Errorf("%d reports asked for on the stream by two schedulers, want 1", n)
	}
}

// TestUpgradeToNamedScheduler: a farm's one scheduler of before (no name,
// the shared consumers) comes back named, with its store: it reads the
// streams again through consumers of its own, queues nothing again, keeps
// its verdicts, and the shared consumers are gone.
func TestUpgradeToNamedScheduler(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB)
	claim, job := sourceClaim(t, claimKey, "example.org/upgraded", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	eventually(t, "the job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	f.publishResult(t, builderA, rebuilt(t, builderA, job, "bytes"))
	f.publishResult(t, builderB, rebuilt(t, builderB, job, "bytes"))
	out := lantern.DigestOf([]byte("bytes"))
	eventually(t, "the verdict", func() bool { v := f.verdict(out); return v != nil && v.Status == lantern.StatusReproduced })
	before := f.snapshot(job, out)
	f.stopScheduler()

	f.cfg.SchedulerName = "one"
	f.startScheduler()
	js := f.adminJS(t)
	// Its own consumers have read everything again.
	for stream, what := range map[string]string{natsq.StreamClaims: "claims", natsq.StreamResults: "results"} {
		eventually(t, "the named scheduler's "+what+" consumer to read "+stream, func() bool {
			c, err := js.Consumer(t.Context(), stream, natsq.SchedulerConsumer("one", what))
			if err != nil {
				return false
			}
			info, err := c.Info(t.Context())
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream > 0
		})
	}
	for stream, name := range map[string]string{natsq.StreamClaims: natsq.ConsumerClaims, natsq.StreamResults: natsq.ConsumerResults, natsq.StreamDead: natsq.ConsumerDead} {
		if _, err := js.Consumer(t.Context(), stream, name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("the unnamed scheduler's consumer %s of %s: err = %v, want it gone", name, stream, err)
		}
	}
	if after := f.snapshot(job, out); after != before {
		t.Errorf("after the upgrade the API says\n%s\nwant as before\n%s", after, before)
	}
	if n := streamSubjects(t, f, natsq.StreamJobs, natsq.SubjectJobs+".>"); n != 1 {
		t.Errorf("the jobs stream has %d messages after the upgrade, want 1", n)
	}
}

// adminJS is a JetStream view of the farm as its admin (the scheduler's
// user) has it, closed when the test ends.
func (f *farm) adminJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(f.nats.URL(), nats.UserCredentials(f.nats.SchedulerConfig(natsq.Config{}).Creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestNewSchedulerKeepsPacedClaims: a claim key's rate is counted in the
// stream's time, when each claim came, not when a scheduler reads it: a
// scheduler that joins the farm later (or reads a backlog) reads claims
// that kept to the rate at once, and must keep every one, as the first
// scheduler did, or the two disagree on which claims there are.
func TestNewSchedulerKeepsPacedClaims(t *testing.T) {
	tune := func(c *scheduler.Config) { c.ClaimsPerMinute, c.ClaimBurst = 30, 1 } // one every 2s
	f := newTunedFarm(t, natsq.Config{SchedulerName: "one"}, nil, tune, builderA)
	c := f.claimant()
	var jobs []lantern.Job
	for i, name := range []string{"example.org/paced-1", "example.org/paced-2", "example.org/paced-3"} {
		if i > 0 {
			time.Sleep(2500 * time.Millisecond) // keeps to the rate, with room
		}
		claim, job := sourceClaim(t, claimKey, name, lantern.Digest{})
		if err := c.PublishClaim(t.Context(), claim); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job)
	}
	p := f.peer("two", nil, nil)
	for _, s := range []*farm{f, p} {
		for _, j := range jobs {
			eventually(t, "job "+j.Source.Name+" on scheduler "+s.cfg.SchedulerName, func() bool {
				return s.do("GET", "/api/v1/jobs/"+j.ID, nil, nil) == http.StatusOK
			})
		}
	}
}
