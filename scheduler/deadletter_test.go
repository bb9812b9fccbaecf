package scheduler_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

// TestDeadLetter: a job a builder keeps failing to finish ends, after the
// last delivery, in a dead-letter record and the builder's state "dead" —
// not in a loop.
func TestDeadLetter(t *testing.T) {
	f := newFarm(t, natsq.Config{AckWait: time.Second, MaxDeliver: 2}, builderA)
	claim, job := sourceClaim(t, claimKey, "example.org/dead", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	jc, err := f.builder(builderA).Jobs(t.Context(), builderA.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer jc.Close()
	for i := 1; i <= 2; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		m, err := jc.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		if m.Job.ID != job.ID || m.Deliveries != i {
			t.Fatalf("delivery %d: job %s, deliveries %d", i, m.Job.ID, m.Deliveries)
		}
		m.Nak(t.Context(), 0)
	}
	// The server announces the last failed delivery on the builder's next pull.
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		jc.Next(ctx)
	}()
	var dl struct{ DeadLetters []scheduler.DeadLetter }
	eventually(t, "the dead letter", func() bool {
		return f.do("GET", "/api/v1/deadletters", nil, &dl) == http.StatusOK && len(dl.DeadLetters) == 1
	})
	if d := dl.DeadLetters[0]; d.JobID != job.ID || d.Builder != builderA.ID() || d.Deliveries != 2 {
		t.Errorf("dead letter = %+v, want job %s, builder A, 2 deliveries", d, job.ID)
	}
	var j struct {
		Builders map[lantern.Digest]scheduler.BuilderJob
	}
	f.do("GET", "/api/v1/jobs/"+job.ID, nil, &j)
	if st := j.Builders[builderA.ID()]; st.State != scheduler.JobDead {
		t.Errorf("builder A's state of the job = %+v, want dead", st)
	}

	// A store rebuilt from the streams keeps the dead letter.
	f.stopScheduler()
	if err := removeStore(f); err != nil {
		t.Fatal(err)
	}
	f.startScheduler()
	if err := f.s.Reindex(t.Context()); err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	dl.DeadLetters = nil
	if f.do("GET", "/api/v1/deadletters", nil, &dl); len(dl.DeadLetters) != 1 || dl.DeadLetters[0].JobID != job.ID {
		t.Errorf("dead letters after a reindex = %+v, want the one of job %s", dl.DeadLetters, job.ID)
	}
	j.Builders = nil
	f.do("GET", "/api/v1/jobs/"+job.ID, nil, &j)
	if st := j.Builders[builderA.ID()]; st.State != scheduler.JobDead {
		t.Errorf("builder A's state of the job after a reindex = %+v, want dead", st)
	}
}

// TestReindex: the store rebuilt from the streams alone answers as the
// store it replaces did.
func TestReindex(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB)
	claim, job := sourceClaim(t, claimKey, "example.org/reindex", lantern.DigestOf([]byte("published")))
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	eventually(t, "the job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	if err := f.builder(builderA).PublishResult(t.Context(), builderA.ID(), rebuilt(t, builderA, job, "published")); err != nil {
		t.Fatal(err)
	}
	if err := f.builder(builderB).PublishResult(t.Context(), builderB.ID(), rebuilt(t, builderB, job, "other")); err != nil {
		t.Fatal(err)
	}
	out := lantern.DigestOf([]byte("published"))
	eventually(t, "mismatch", func() bool { v := f.verdict(out); return v != nil && v.Status == lantern.StatusMismatch })
	before := f.snapshot(job, out)

	f.stopScheduler()
	if err := removeStore(f); err != nil {
		t.Fatal(err)
	}
	f.startScheduler()
	if err := f.s.Reindex(t.Context()); err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	if after := f.snapshot(job, out); after != before {
		t.Errorf("after reindex:\n%s\nbefore:\n%s", after, before)
	}
}
