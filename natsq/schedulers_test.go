package natsq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
)

// TestSchedulersEachReadEverything: two named schedulers on one farm each
// read every claim and result through a consumer of their own (neither
// takes the other's share), and an unnamed scheduler's shared consumers,
// which an earlier farm has, are deleted by a named one's Setup.
func TestSchedulersEachReadEverything(t *testing.T) {
	f := natstest.Start(t)
	old := connectScheduler(t, f, natsq.Config{})
	ctx := testCtx(t)
	// The farm's unnamed scheduler of before made its shared consumers.
	for stream, name := range map[string]string{natsq.StreamClaims: natsq.ConsumerClaims, natsq.StreamResults: natsq.ConsumerResults, natsq.StreamDead: natsq.ConsumerDead} {
		if _, err := old.JetStreamForTest().CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	a := connectScheduler(t, f, natsq.Config{SchedulerName: "a"})
	b := connectScheduler(t, f, natsq.Config{SchedulerName: "b-2"})
	for stream, name := range map[string]string{natsq.StreamClaims: natsq.ConsumerClaims, natsq.StreamResults: natsq.ConsumerResults, natsq.StreamDead: natsq.ConsumerDead} {
		if _, err := a.JetStreamForTest().Consumer(ctx, stream, name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("consumer %s of %s after a named scheduler's Setup: err = %v, want it deleted", name, stream, err)
		}
	}
	const n = 10
	claimsA, claimsB, resultsA, resultsB := &collector{}, &collector{}, &collector{}, &collector{}
	run(t, func(ctx context.Context) error { return a.ConsumeClaims(ctx, claimsA.handle) })
	run(t, func(ctx context.Context) error { return b.ConsumeClaims(ctx, claimsB.handle) })
	run(t, func(ctx context.Context) error { return a.ConsumeResults(ctx, resultsA.handle) })
	run(t, func(ctx context.Context) error { return b.ConsumeResults(ctx, resultsB.handle) })
	builder := testBuilder("a")
	w := connectBuilder(t, f, builder, natsq.Config{})
	var want []string
	for i := range n {
		env := fmt.Sprintf("claim %d", i)
		want = append(want, env)
		if err := a.PublishClaim(ctx, []byte(env)); err != nil {
			t.Fatal(err)
		}
		if err := w.PublishResult(ctx, builder, []byte(env)); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*collector{"a's claims": claimsA, "b's claims": claimsB, "a's results": resultsA, "b's results": resultsB} {
		waitFor(t, name, func() bool { return c.len() >= n })
		if got := c.data(); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want every one, in order: %q", name, got, want)
		}
	}
	for _, name := range []string{"a", "b-2"} {
		waitFor(t, name+"'s claims consumer to settle", func() bool {
			return settled(t, a, natsq.StreamClaims, natsq.SchedulerConsumer(name, "claims"))
		})
	}
	for _, bad := range []string{"a.b", "a b", "*", ">", "x123456789012345678901234567890123"} {
		if _, err := natsq.Connect(ctx, f.URL(), f.SchedulerConfig(natsq.Config{SchedulerName: bad}), nil); err == nil {
			t.Errorf("Connect with SchedulerName %q: no error, want one", bad)
		}
	}
}

// TestJobQueuedOnceHoweverLate: a job published again after the duplicate
// window, by another scheduler, is still queued once; and so is a job that
// two schedulers publish at the same time.
func TestJobQueuedOnceHoweverLate(t *testing.T) {
	f := natstest.Start(t)
	cfg := natsq.Config{DuplicateWindow: 100 * time.Millisecond}
	a := connectScheduler(t, f, natsq.Config{SchedulerName: "a", DuplicateWindow: cfg.DuplicateWindow})
	b := connectScheduler(t, f, natsq.Config{SchedulerName: "b", DuplicateWindow: cfg.DuplicateWindow})
	ctx := testCtx(t)
	j := testJob(1)
	if err := a.PublishJobs(ctx, []lantern.Job{j}); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	// Past the duplicate window: a message id is forgotten by then.
	time.Sleep(3 * cfg.DuplicateWindow)
	if err := b.PublishJobs(ctx, []lantern.Job{j}); err != nil {
		t.Fatalf("PublishJobs() again, past the duplicate window = %v", err)
	}
	if got := streamMsgs(t, a, natsq.StreamJobs); got != 1 {
		t.Errorf("stream %s has %d messages after one job was published twice, the second time past the duplicate window; want 1", natsq.StreamJobs, got)
	}
	jobs := testJobs(2, 50)
	var wg sync.WaitGroup
	for _, q := range []*natsq.Queue{a, b, a, b} {
		wg.Go(func() {
			if err := q.PublishJobs(ctx, jobs); err != nil {
				t.Errorf("PublishJobs() = %v", err)
			}
		})
	}
	wg.Wait()
	if got, want := streamMsgs(t, a, natsq.StreamJobs), uint64(1+len(jobs)); got != want {
		t.Errorf("stream %s has %d messages after four publishes of %d jobs at once; want %d", natsq.StreamJobs, got, len(jobs), want)
	}
	s, err := a.JetStreamForTest().Stream(ctx, natsq.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "lantern.jobs.go."+j.ID)
	if err != nil {
		t.Fatalf("job %s is not on its own subject: %v", j.ID, err)
	}
	if m.Sequence != 1 {
		t.Errorf("job %s is message %d, want 1", j.ID, m.Sequence)
	}
}

// TestDiffWorkGoesToOne: a report wanted by two schedulers is asked for
// once and handed to one of them, whose heartbeats keep it while it runs;
// one that dies without finishing it leaves it to the other after the ack
// wait; what is made is said once,
// and both read it.
func TestDiffWorkGoesToOne(t *testing.T) {
	f := natstest.Start(t)
	cfg := func(name string) natsq.Config {
		return natsq.Config{SchedulerName: name, AckWait: time.Second, NakDelay: 50 * time.Millisecond}
	}
	a := connectScheduler(t, f, cfg("a"))
	b := connectScheduler(t, f, cfg("b"))
	ctx := testCtx(t)
	for _, q := range []*natsq.Queue{a, b, a} {
		if err := q.WantDiff(ctx, "k1", []byte("want k1")); err != nil {
			t.Fatalf("WantDiff() = %v", err)
		}
	}
	if got := streamMsgs(t, a, natsq.StreamDiffs); got != 1 {
		t.Fatalf("stream %s has %d messages after three wants of one report, want 1", natsq.StreamDiffs, got)
	}

	// a takes it and holds it, past many ack waits: its heartbeats keep it.
	took := make(chan lantern.Message, 1)
	release := make(chan struct{})
	aCtx, stopA := context.WithCancel(context.Background())
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		a.ConsumeDiffWork(aCtx, func(ctx context.Context, m lantern.Message) error {
			took <- m
			select {
			case <-release:
				// a dies: its connection goes with no nak, no ack, and
				// the request is the server's to redeliver after the ack
				// wait.
				a.ConnForTest().Close()
				return errors.New("a died")
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	m := <-took
	if string(m.Data) != "want k1" || m.Deliveries != 1 {
		t.Fatalf("a took %q (delivery %d), want %q (1)", m.Data, m.Deliveries, "want k1")
	}
	var mu sync.Mutex
	var bTook []lantern.Message
	bGot := make(chan struct{}, 1)
	run(t, func(ctx context.Context) error {
		return b.ConsumeDiffWork(ctx, func(ctx context.Context, m lantern.Message) error {
			mu.Lock()
			bTook = append(bTook, m)
			mu.Unlock()
			if err := b.MadeDiff(ctx, "k1", []byte("made by b")); err != nil {
				return err
			}
			bGot <- struct{}{}
			return nil
		})
	})
	// Three ack waits: b must not have it while a holds it.
	time.Sleep(3 * time.Second)
	mu.Lock()
	if len(bTook) != 0 {
		t.Errorf("b took %d requests while a held the only one with heartbeats", len(bTook))
	}
	mu.Unlock()
	// a dies without finishing: b gets it, after the ack wait.
	close(release)
	stopA()
	<-aDone
	<-bGot
	a = connectScheduler(t, f, cfg("a")) // a comes back
	if data, made, err := a.DiffMade(ctx, "k1"); err != nil || !made || string(data) != "made by b" {
		t.Errorf("DiffMade(k1) = %q, %v, %v; want %q, true", data, made, err, "made by b")
	}
	if _, made, err := a.DiffMade(ctx, "k2"); err != nil || made {
		t.Errorf("DiffMade(k2) = %v, %v; want false", made, err)
	}
	if err := a.MadeDiff(ctx, "k1", []byte("made by a, late")); err != nil {
		t.Fatalf("MadeDiff() of a report made already = %v, want nil", err)
	}
	for name, q := range map[string]*natsq.Queue{"a": a, "b": b} {
		c := &collector{}
		run(t, func(ctx context.Context) error { return q.ConsumeDiffs(ctx, c.handle) })
		waitFor(t, name+" to read the report made", func() bool { return c.len() >= 1 })
		if got := c.messages(); len(got) != 1 || string(got[0].Data) != "made by b" || got[0].Subject != natsq.SubjectDiffsMade+".k1" {
			t.Errorf("%s read %v, want one report made by b", name, got)
		}
	}
}
