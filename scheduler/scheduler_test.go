package scheduler_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
)

// TestReproducedThenMismatch: one claim makes one job per builder; two
// builders with equal outputs give reproduced; a third with a different
// output turns it into mismatch, listing who agrees with whom.
func TestReproducedThenMismatch(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB, builderC)
	claim, job := sourceClaim(t, claimKey, "example.org/hello", lantern.Digest{})
	var accepted struct{ Job string }
	if code := f.do("POST", "/api/v1/claims", claim, &accepted); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	if accepted.Job != job.ID {
		t.Fatalf("POST claim job = %q, want %q", accepted.Job, job.ID)
	}
	// The same claim again, once stored, makes no second job.
	eventually(t, "the job to be stored", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	var dup struct{ Duplicate bool }
	if code := f.do("POST", "/api/v1/claims", claim, &dup); code != http.StatusOK || !dup.Duplicate {
		t.Errorf("POST the same claim again = %d %+v, want 200 and duplicate", code, dup)
	}

	// Each builder gets the job once, and only it.
	bq := map[lantern.Digest]*natsq.Queue{}
	for _, b := range []*keys.Private{builderA, builderB, builderC} {
		bq[b.ID()] = f.builder(b)
		jc, err := bq[b.ID()].Jobs(t.Context(), b.ID())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		m, err := jc.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("builder %s: Next() = %v", b.ID().Short(), err)
		}
		if m.Job.ID != job.ID {
			t.Errorf("builder %s got job %s, want %s", b.ID().Short(), m.Job.ID, job.ID)
		}
		if err := m.Ack(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel = context.WithTimeout(t.Context(), 2*time.Second)
		if extra, err := jc.Next(ctx); err == nil {
			t.Errorf("builder %s got a second job %s", b.ID().Short(), extra.Job.ID)
		}
		cancel()
		jc.Close()
	}

	x, y := lantern.DigestOf([]byte("output x")), lantern.DigestOf([]byte("output y"))
	if err := bq[builderA.ID()].PublishResult(t.Context(), builderA.ID(), rebuilt(t, builderA, job, "output x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a pending verdict", func() bool { v := f.verdict(x); return v != nil && v.Status == lantern.StatusPending })
	if err := bq[builderB.ID()].PublishResult(t.Context(), builderB.ID(), rebuilt(t, builderB, job, "output x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reproduced", func() bool { v := f.verdict(x); return v != nil && v.Status == lantern.StatusReproduced })

	// The third builder posts to the API.
	if code := f.do("POST", "/api/v1/attestations", rebuilt(t, builderC, job, "output y"), nil); code != http.StatusAccepted {
		t.Fatalf("POST attestation = %d, want 202", code)
	}
	eventually(t, "mismatch", func() bool { v := f.verdict(x); return v != nil && v.Status == lantern.StatusMismatch })
	groups := groupsOf(f.verdict(x))
	agree := []lantern.Digest{builderA.ID(), builderB.ID()}
	slices.SortFunc(agree, func(a, b lantern.Digest) int { return strings.Compare(a.String(), b.String()) })
	if got := groups[x]; !slices.Equal(got, agree) {
		t.Errorf("group of %s = %v, want builders A and B %v", x.Short(), got, agree)
	}
	if got := groups[y]; !slices.Equal(got, []lantern.Digest{builderC.ID()}) {
		t.Errorf("group of %s = %v, want builder C", y.Short(), got)
	}
	// The source page says the same.
	var src struct {
		Verdicts     []lantern.Verdict
		Attestations []struct{ Builder lantern.Digest }
	}
	if code := f.do("GET", "/api/v1/sources/example.org/hello@v1.0.0", nil, &src); code != http.StatusOK {
		t.Fatalf("GET source = %d", code)
	}
	if len(src.Verdicts) != 1 || src.Verdicts[0].Status != lantern.StatusMismatch || len(src.Attestations) != 3 {
		t.Errorf("GET source = %+v, want one mismatch verdict and three attestations", src)
	}
}

// TestRedelivery: a process of a builder takes a job and vanishes; the job
// is redelivered and finished by another process of the same builder, with
// one attestation.
func TestRedelivery(t *testing.T) {
	f := newFarm(t, natsq.Config{AckWait: time.Second}, builderA, builderB)
	claim, job := sourceClaim(t, claimKey, "example.org/redeliver", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	// Process 1 of builder A: its own NATS connection, which it loses.
	p1 := f.builder(builderA)
	m1 := takeJob(t, p1, builderA)
	if m1.Job.ID != job.ID {
		t.Fatalf("process 1 got job %s, want %s", m1.Job.ID, job.ID)
	}
	p1.Close() // vanishes without acking

	p2 := f.builder(builderA)
	m2 := takeJob(t, p2, builderA)
	if m2.Job.ID != job.ID || m2.Deliveries < 2 {
		t.Fatalf("process 2 got job %s (delivery %d), want %s redelivered", m2.Job.ID, m2.Deliveries, job.ID)
	}
	if err := p2.PublishResult(t.Context(), builderA.ID(), rebuilt(t, builderA, job, "out")); err != nil {
		t.Fatal(err)
	}
	if err := m2.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := lantern.DigestOf([]byte("out"))
	eventually(t, "the attestation", func() bool { return f.verdict(out) != nil })
	var atts struct{ Attestations []any }
	f.do("GET", "/api/v1/artefacts/"+out.String()+"/attestations", nil, &atts)
	if len(atts.Attestations) != 1 {
		t.Errorf("attestations of the output = %d, want 1", len(atts.Attestations))
	}
}

var _ = errors.New
