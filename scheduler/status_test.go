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

type sourceResp struct {
	Verdicts    []scheduler.VerdictView `json:"verdicts"`
	Unreachable *scheduler.Unreachable  `json:"unreachable"`
}

// TestUnreachableVerdict: a farm whose threshold is 2 with one builder
// enrolled says, as data on the source and artefact answers, that the
// verdict cannot be reached — before any builder answered and once its one
// builder did; a farm of two says nothing of the kind; and a builder
// revoked from a farm of two leaves it short, so the verdict says so.
func TestUnreachableVerdict(t *testing.T) {
	const want = "cannot be reached: threshold 2, the farm has 1 builder (lantern builder add, or --threshold)"
	t.Run("one builder", func(t *testing.T) {
		f := newFarm(t, natsq.Config{}, builderA) // threshold 2
		claim, job := sourceClaim(t, claimKey, "example.org/alone", lantern.Digest{})
		if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
			t.Fatalf("POST claim = %d", code)
		}
		eventually(t, "the job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
		var src sourceResp
		f.do("GET", "/api/v1/sources/"+job.Source.String(), nil, &src)
		if src.Unreachable == nil || src.Unreachable.Message != want || src.Unreachable.Threshold != 2 || src.Unreachable.Builders != 1 {
			t.Errorf("source with no rebuild yet: unreachable = %+v, want %q", src.Unreachable, want)
		}

		a := f.builder(builderA)
		m := takeJob(t, a, builderA)
		if err := a.PublishResult(t.Context(), builderA.ID(), rebuilt(t, builderA, m.Job, "alice's output")); err != nil {
			t.Fatal(err)
		}
		m.Ack(t.Context())
		eventually(t, "alice's rebuild in the verdict", func() bool {
			f.do("GET", "/api/v1/sources/"+job.Source.String(), nil, &src)
			return len(src.Verdicts) == 1 && len(src.Verdicts[0].Groups) == 1
		})
		v := src.Verdicts[0]
		if v.Status != lantern.StatusPending || v.Unreachable == nil || v.Unreachable.Message != want {
			t.Errorf("pending verdict on a farm of one: %s, unreachable %+v; want pending, %q", v.Status, v.Unreachable, want)
		}
		if src.Unreachable == nil || src.Unreachable.Message != want {
			t.Errorf("source answer: unreachable = %+v, want %q", src.Unreachable, want)
		}
		var art sourceResp
		f.do("GET", "/api/v1/artefacts/"+lantern.DigestOf([]byte("alice's output")).String(), nil, &art)
		if len(art.Verdicts) != 1 || art.Verdicts[0].Unreachable == nil || art.Verdicts[0].Unreachable.Message != want {
			t.Errorf("artefact answer: verdicts %+v, want one saying %q", art.Verdicts, want)
		}
	})

	t.Run("two builders, then one revoked", func(t *testing.T) {
		f := newFarm(t, natsq.Config{}, builderA, builderB)
		claim, job := sourceClaim(t, claimKey, "example.org/pair", lantern.Digest{})
		if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
			t.Fatalf("POST claim = %d", code)
		}
		a := f.builder(builderA)
		m := takeJob(t, a, builderA)
		if err := a.PublishResult(t.Context(), builderA.ID(), rebuilt(t, builderA, m.Job, "alice's output")); err != nil {
			t.Fatal(err)
		}
		m.Ack(t.Context())
		var src sourceResp
		eventually(t, "alice's rebuild in the verdict", func() bool {
			f.do("GET", "/api/v1/sources/"+job.Source.String(), nil, &src)
			return len(src.Verdicts) == 1 && len(src.Verdicts[0].Groups) == 1
		})
		if v := src.Verdicts[0]; v.Status != lantern.StatusPending || v.Unreachable != nil || src.Unreachable != nil {
			t.Errorf("pending verdict on a farm of two: %s, unreachable %+v (source %+v); want pending and reachable", v.Status, v.Unreachable, src.Unreachable)
		}
		// Bob is removed: the farm has one builder left, and says so.
		if err := f.s.SetBuilders(t.Context(), []scheduler.Enrolled{{Key: builderB.Public(), Revoked: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		f.do("GET", "/api/v1/sources/"+job.Source.String(), nil, &src)
		if v := src.Verdicts[0]; v.Unreachable == nil || v.Unreachable.Message != want {
			t.Errorf("pending verdict once bob was revoked: unreachable %+v, want %q", v.Unreachable, want)
		}
	})
}

// TestStatus: GET /api/v1/status on a farm of three builders, threshold
// 1. Alice takes both jobs from her consumer, answers them and waits for
// more; Carol answers the second job with other bytes (a mismatch); Bob
// never connects. Alice is online with nothing queued and agrees in one of
// her two decided rebuilds; Bob is offline with both jobs queued and
// nothing done; both jobs wait on Bob; the newest verdicts are there.
func TestStatus(t *testing.T) {
	f := newTunedFarm(t, natsq.Config{}, nil, func(c *scheduler.Config) { c.Threshold = 1 }, builderA, builderB, builderC)
	var jobs []lantern.Job
	for _, name := range []string{"example.org/agreed", "example.org/disputed"} {
		claim, job := sourceClaim(t, claimKey, name, lantern.Digest{})
		if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
			t.Fatalf("POST claim %s = %d", name, code)
		}
		eventually(t, "the job of "+name, func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
		jobs = append(jobs, job)
	}

	a := f.builder(builderA)
	jc, err := a.Jobs(t.Context(), builderA.ID())
	if err != nil {
		t.Fatal(err)
	}
	for range jobs {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		m, err := jc.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("alice's next job: %v", err)
		}
		if err := a.PublishResult(t.Context(), builderA.ID(), rebuilt(t, builderA, m.Job, m.Job.Source.Name+" by alice")); err != nil {
			t.Fatal(err)
		}
		if err := m.Ack(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// Alice's worker waits for its next job, as an idle worker does.
	waitCtx, stopWaiting := context.WithCancel(t.Context())
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		if m, err := jc.Next(waitCtx); err == nil {
			m.Nak(context.Background(), 0)
		}
	}()
	t.Cleanup(func() { stopWaiting(); <-waited; jc.Close() })
	c := f.builder(builderC)
	if err := c.PublishResult(t.Context(), builderC.ID(), rebuilt(t, builderC, jobs[1], "carol's other bytes")); err != nil {
		t.Fatal(err)
	}

	var st scheduler.Status
	byID := func(id lantern.Digest) scheduler.BuilderStatus {
		for _, b := range st.Builders {
			if b.ID == id {
				return b
			}
		}
		t.Fatalf("status lists no builder %s: %+v", id.Short(), st.Builders)
		return scheduler.BuilderStatus{}
	}
	eventually(t, "alice online, carol's answer counted", func() bool {
		if f.do("GET", "/api/v1/status", nil, &st) != http.StatusOK {
			return false
		}
		return byID(builderA.ID()).Online && byID(builderC.ID()).Done == 1 && byID(builderA.ID()).Decided == 2
	})

	if st.Threshold != 1 || st.Unreachable != nil || len(st.Builders) != 3 {
		t.Errorf("status: threshold %d, unreachable %+v, %d builders; want 1, none, 3", st.Threshold, st.Unreachable, len(st.Builders))
	}
	alice := byID(builderA.ID())
	if alice.Queue == nil || alice.Queue.Queued != 0 || alice.Queue.Waiting < 1 || alice.Queue.LastAnswered.IsZero() {
		t.Errorf("alice's queue = %+v (%s), want none queued, a worker waiting, an answer", alice.Queue, alice.QueueError)
	}
	if alice.Done != 2 || alice.Failed != 0 || alice.Decided != 2 || alice.Agreed != 1 || alice.Agreement == nil || *alice.Agreement != 0.5 {
		t.Errorf("alice: done %d, failed %d, decided %d, agreed %d, agreement %v; want 2, 0, 2, 1, 0.5", alice.Done, alice.Failed, alice.Decided, alice.Agreed, alice.Agreement)
	}
	if alice.LastAttestation.IsZero() || alice.LastSeen.Before(alice.LastAttestation) {
		t.Errorf("alice: last attestation %v, last seen %v; want both, last seen not before", alice.LastAttestation, alice.LastSeen)
	}
	bob := byID(builderB.ID())
	if bob.Online || bob.Queue == nil || bob.Queue.Queued != 2 || bob.Queue.Building != 0 || bob.Queue.Waiting != 0 {
		t.Errorf("bob: online %v, queue %+v (%s); want offline with both jobs queued", bob.Online, bob.Queue, bob.QueueError)
	}
	if bob.Done != 0 || bob.Agreement != nil || !bob.LastSeen.IsZero() {
		t.Errorf("bob: done %d, agreement %v, last seen %v; want nothing", bob.Done, bob.Agreement, bob.LastSeen)
	}
	// Carol answered over NATS without taking the job: it is still queued
	// for her, and her one rebuild disagreed.
	carol := byID(builderC.ID())
	if carol.Online || carol.Decided != 1 || carol.Agreed != 0 || carol.Agreement == nil || *carol.Agreement != 0 {
		t.Errorf("carol: online %v, decided %d, agreed %d, agreement %v; want offline, 1, 0, 0", carol.Online, carol.Decided, carol.Agreed, carol.Agreement)
	}
	if st.Jobs.Window != 2 || st.Jobs.More || st.Jobs.Pending != 2 || st.Jobs.Dead != 0 {
		t.Errorf("jobs = %+v, want both pending (bob has not answered), none dead", st.Jobs)
	}
	statuses := map[string]lantern.Status{}
	for _, s := range st.Sources {
		for _, v := range s.Verdicts {
			statuses[s.Name] = v.Status
		}
	}
	if statuses["example.org/agreed"] != lantern.StatusReproduced || statuses["example.org/disputed"] != lantern.StatusMismatch {
		t.Errorf("newest verdicts = %v, want agreed reproduced, disputed mismatch", statuses)
	}

	// Once alice's worker is gone, she is offline: the server drops the
	// pull of a worker that left.
	stopWaiting()
	<-waited
	jc.Close()
	a.Close()
	eventually(t, "alice offline", func() bool {
		f.do("GET", "/api/v1/status", nil, &st)
		return !byID(builderA.ID()).Online
	})
}
