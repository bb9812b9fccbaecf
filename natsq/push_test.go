package natsq_test

import (
	"context"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
)

// TestPushKeepsWaitingPulls: pushing the farm's accounts again, as the
// scheduler does when it starts and whenever a builder is added or removed,
// does not cut off a worker's pull that is waiting for a job. A builder's
// pull reaches the farm's account through a service import, whose answers
// the server routes back by a mapping it keeps in the farm's account; an
// account JWT that differs from the one the server holds, if only in when
// it was signed, makes the server rebuild that account and drop those
// mappings. The pull then stands on the server with nowhere to send its
// job: the job counts as delivered and comes back only after the ack wait
// (2 minutes by default), counting a delivery towards MaxDeliver.
func TestPushKeepsWaitingPulls(t *testing.T) {
	f := natstest.Start(t)
	// An ack wait longer than the test: a job lost on the way does not come
	// back while it runs.
	cfg := natsq.Config{AckWait: time.Hour}
	sched := connectScheduler(t, f, cfg)
	ctx := testCtx(t)
	b := testBuilder("a")
	if err := sched.EnsureBuilder(ctx, b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	w := connectBuilder(t, f, b, cfg) // pushes the accounts
	signed := time.Now().Unix()
	jobs := jobsOf(t, w, b)
	got := make(chan error, 1)
	go func() {
		m, err := jobs.Next(ctx)
		if err == nil {
			err = m.Ack(ctx)
		}
		got <- err
	}()
	waitFor(t, "the worker's pull to wait on the server", func() bool {
		q, err := sched.BuilderQueue(ctx, b)
		return err == nil && q.Waiting == 1
	})
	// The JWTs are signed again, in a later second than the last push's:
	// the same accounts in JWTs that differ.
	for time.Now().Unix() <= signed {
		time.Sleep(10 * time.Millisecond)
	}
	f.Push(nil)

	if err := sched.PublishJobs(ctx, testJobs(0, 1)); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	waitFor(t, "the server to deliver the job", func() bool {
		q, err := sched.BuilderQueue(ctx, b)
		return err == nil && q.Queued == 0
	})
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Next() = %v", err)
		}
	case <-ctx.Done():
		q, _ := sched.BuilderQueue(context.Background(), b)
		t.Fatalf("the worker never got the job the server delivered to its pull (builder's queue now: %d building, %d pulls waiting): the push cut the pull off", q.Building, q.Waiting)
	}
}
