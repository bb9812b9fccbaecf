package natsq_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsserver"
	"github.com/lanternfarm/lantern/scheduler"
)

// The scheduler's queue is a natsq.Queue.
var _ scheduler.Queue = (*natsq.Queue)(nil)

// The scheduler reads builders' queues from it (GET /api/v1/status).
var _ scheduler.BuilderQueues = (*natsq.Queue)(nil)

// patience bounds every wait in these tests: generous, because the machine
// may be loaded. Nothing asserts on how long anything took.
const patience = 60 * time.Second

func testLog(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return nil
}

// connect connects to f's server with cfg (credentials included), logging
// to the test's log with -v, and closes the connection when the test ends.
func connect(t *testing.T, f *natstest.Farm, cfg natsq.Config) *natsq.Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	q, err := natsq.Connect(ctx, f.URL(), cfg, testLog(t))
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// connectScheduler connects as the farm's scheduler and sets the farm up,
// as every scheduler does when it starts.
func connectScheduler(t *testing.T, f *natstest.Farm, cfg natsq.Config) *natsq.Queue {
	t.Helper()
	q := connect(t, f, f.SchedulerConfig(cfg))
	if err := q.Setup(testCtx(t)); err != nil {
		t.Fatalf("Setup() = %v", err)
	}
	return q
}

// connectBuilder connects as a worker of builder, with new credentials of
// that builder.
func connectBuilder(t *testing.T, f *natstest.Farm, builder lantern.Digest, cfg natsq.Config) *natsq.Queue {
	t.Helper()
	return connect(t, f, f.BuilderConfig(builder, cfg))
}

// testCtx is the test's context with a deadline of patience.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	t.Cleanup(cancel)
	return ctx
}

func testBuilder(name string) lantern.Digest { return lantern.DigestOf([]byte("builder key " + name)) }

func testJob(n int) lantern.Job {
	src := lantern.Source{Name: "example.com/m", Version: fmt.Sprintf("v1.0.%d", n), Digest: lantern.DigestOf(fmt.Appendf(nil, "source %d", n))}
	return lantern.Job{
		ID:      lantern.JobID(src, "go", nil, nil, lantern.Digest{}),
		Source:  src,
		Recipe:  "go",
		Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func testJobs(from, to int) []lantern.Job {
	var jobs []lantern.Job
	for n := from; n < to; n++ {
		jobs = append(jobs, testJob(n))
	}
	return jobs
}

func jobIDs(jobs []lantern.Job) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamMsgs counts a stream's messages; q must be the scheduler's.
func streamMsgs(t *testing.T, q *natsq.Queue, stream string) uint64 {
	t.Helper()
	s, err := q.JetStreamForTest().Stream(testCtx(t), stream)
	if err != nil {
		t.Fatalf("Stream(%s) = %v", stream, err)
	}
	info, err := s.Info(testCtx(t))
	if err != nil {
		t.Fatalf("Stream(%s).Info() = %v", stream, err)
	}
	return info.State.Msgs
}

// consumerInfo describes a consumer; q must be the scheduler's.
func consumerInfo(t *testing.T, q *natsq.Queue, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := q.JetStreamForTest().Consumer(testCtx(t), stream, name)
	if err != nil {
		t.Fatalf("Consumer(%s, %s) = %v", stream, name, err)
	}
	info, err := c.Info(testCtx(t))
	if err != nil {
		t.Fatalf("Consumer(%s, %s).Info() = %v", stream, name, err)
	}
	return info
}

// settled reports whether the consumer has had every message of the stream
// acked (or terminated); q must be the scheduler's. It goes by the ack
// floor, not by the consumer's count of pending messages, which the server
// updates asynchronously.
func settled(t *testing.T, q *natsq.Queue, stream, name string) bool {
	t.Helper()
	js := q.JetStreamForTest()
	s, err := js.Stream(testCtx(t), stream)
	if err != nil {
		t.Fatalf("Stream(%s) = %v", stream, err)
	}
	last := s.CachedInfo().State.LastSeq
	c, err := js.Consumer(testCtx(t), stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false // not made yet
	}
	if err != nil {
		t.Fatalf("Consumer(%s, %s) = %v", stream, name, err)
	}
	info := c.CachedInfo()
	return info.AckFloor.Stream >= last && info.NumAckPending == 0
}

func jobsOf(t *testing.T, q *natsq.Queue, builder lantern.Digest) *natsq.JobConsumer {
	t.Helper()
	c, err := q.Jobs(testCtx(t), builder)
	if err != nil {
		t.Fatalf("Jobs(%s) = %v", builder.Short(), err)
	}
	t.Cleanup(c.Close)
	return c
}

func next(t *testing.T, c *natsq.JobConsumer) *natsq.JobMsg {
	t.Helper()
	m, err := c.Next(testCtx(t))
	if err != nil {
		t.Fatalf("Next() = %v", err)
	}
	return m
}

func ack(t *testing.T, m *natsq.JobMsg) {
	t.Helper()
	if err := m.Ack(testCtx(t)); err != nil {
		t.Fatalf("Ack() = %v", err)
	}
}

// takeAll takes and acks jobs with c, a consumer of builder's jobs, until
// the builder's consumer has none left (as the scheduler's connection sched
// sees it), and returns their ids in the order they came.
func takeAll(t *testing.T, sched *natsq.Queue, c *natsq.JobConsumer, builder lantern.Digest) []string {
	t.Helper()
	var ids []string
	for !settled(t, sched, natsq.StreamJobs, natsq.ConsumerName(builder)) {
		m := next(t, c)
		ids = append(ids, m.Job.ID)
		ack(t, m)
	}
	return ids
}

// collector is a BatchHandler that records what it is given.
type collector struct {
	mu   sync.Mutex
	msgs []lantern.Message
	// result decides each message's error; nil means nil.
	result func(m lantern.Message) error
}

func (c *collector) handle(_ context.Context, msgs []lantern.Message) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		c.msgs = append(c.msgs, m)
		if c.result != nil {
			errs[i] = c.result(m)
		}
	}
	return errs
}

func (c *collector) data() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		out = append(out, string(m.Data))
	}
	return out
}

func (c *collector) messages() []lantern.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// run runs f in a goroutine until the test ends, and reports f's error.
func run(t *testing.T, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		if err := f(ctx); err != nil {
			t.Errorf("consumer returned %v", err)
		}
	}()
}

func TestServerRefusesAnonymous(t *testing.T) {
	f := natstest.Start(t)
	if nc, err := nats.Connect(f.URL(), nats.Timeout(patience)); err == nil {
		nc.Close()
		t.Fatalf("a client without credentials connected")
	} else {
		t.Logf("without credentials: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	if q, err := natsq.Connect(ctx, f.URL(), natsq.Config{}, testLog(t)); err == nil {
		q.Close()
		t.Fatalf("Connect() without credentials = nil, want an error")
	}
}

func TestServerKeepsStateAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	f := natstest.StartIn(t, dir, -1)
	sched := connectScheduler(t, f, natsq.Config{})
	b := testBuilder("a")
	ctx := testCtx(t)
	if err := sched.EnsureBuilder(ctx, b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	if err := sched.PublishJobs(ctx, testJobs(0, 3)); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	if err := sched.PublishClaim(ctx, []byte(`{"claim":1}`)); err != nil {
		t.Fatalf("PublishClaim() = %v", err)
	}
	farmObj, err := sched.PutObject(ctx, "diff", bytesReader("report"))
	if err != nil {
		t.Fatalf("scheduler's PutObject() = %v", err)
	}
	w := connectBuilder(t, f, b, natsq.Config{})
	builderObj, err := w.PutObject(ctx, "build.log", bytesReader("log"))
	if err != nil {
		t.Fatalf("builder's PutObject() = %v", err)
	}
	c := jobsOf(t, w, b)
	if got, want := next(t, c).Job.ID, testJob(0).ID; got != want {
		t.Fatalf("Next() = job %s, want %s", got, want)
	}
	// Left unacked on purpose.
	c.Close()
	w.Close()
	sched.Close()
	f.Shutdown()

	f2 := natstest.StartIn(t, dir, -1)
	sched2 := connectScheduler(t, f2, natsq.Config{})
	for stream, want := range map[string]uint64{natsq.StreamClaims: 1, natsq.StreamJobs: 3, natsq.StreamResults: 0, natsq.StreamDead: 0} {
		if got := streamMsgs(t, sched2, stream); got != want {
			t.Errorf("after restart, stream %s has %d messages, want %d", stream, got, want)
		}
	}
	info := consumerInfo(t, sched2, natsq.StreamJobs, natsq.ConsumerName(b))
	if got := info.Config.Metadata[natsq.MetadataBuilder]; got != b.String() {
		t.Errorf("after restart, consumer metadata %s = %q, want %q", natsq.MetadataBuilder, got, b)
	}
	if info.NumAckPending != 1 || info.Delivered.Stream != 1 {
		t.Errorf("after restart, consumer has %d pending acks at stream seq %d, want 1 at 1", info.NumAckPending, info.Delivered.Stream)
	}
	if got := readObject(t, sched2, farmObj); got != "report" {
		t.Errorf("after restart, the scheduler's object = %q, want %q", got, "report")
	}
	if got := readObject(t, sched2, builderObj); got != "log" {
		t.Errorf("after restart, the builder's object = %q, want %q", got, "log")
	}
	// The consumer carries on from where it was: job 0 is still out (it
	// comes back after the ack wait), so the next one is job 1.
	w2 := connectBuilder(t, f2, b, natsq.Config{})
	if got, want := next(t, jobsOf(t, w2, b)).Job.ID, testJob(1).ID; got != want {
		t.Errorf("after restart, Next() = job %s, want %s", got, want)
	}
}

func TestStartServerPortInUse(t *testing.T) {
	f := natstest.Start(t)
	u, err := neturl.Parse(f.URL())
	if err != nil {
		t.Fatalf("server URL %q: %v", f.URL(), err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("server URL %q: port: %v", f.URL(), err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	s2, err := natsserver.Start(ctx, natsserver.Options{Dir: t.TempDir(), Port: p, Auth: f.Auth})
	if err == nil {
		s2.Shutdown()
		t.Fatalf("natsserver.Start() on a port in use succeeded")
	}
}

func TestDuplicatesAreStoredOnce(t *testing.T) {
	f := natstest.Start(t)
	sched := connectScheduler(t, f, natsq.Config{})
	ctx := testCtx(t)
	a := testBuilder("a")
	wa := connectBuilder(t, f, a, natsq.Config{})
	env := []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`)
	for range 2 {
		if err := sched.PublishClaim(ctx, env); err != nil {
			t.Fatalf("PublishClaim() = %v", err)
		}
		if err := wa.PublishResult(ctx, a, env); err != nil {
			t.Fatalf("PublishResult() = %v", err)
		}
	}
	j := testJob(1)
	if err := sched.PublishJobs(ctx, []lantern.Job{j, j}); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	if err := sched.PublishJobs(ctx, []lantern.Job{j}); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	for stream, want := range map[string]uint64{natsq.StreamClaims: 1, natsq.StreamJobs: 1, natsq.StreamResults: 1} {
		if got := streamMsgs(t, sched, stream); got != want {
			t.Errorf("stream %s has %d messages, want %d", stream, got, want)
		}
	}
	b := testBuilder("b")
	if err := sched.EnsureBuilder(ctx, b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	wb := connectBuilder(t, f, b, natsq.Config{})
	if got, want := takeAll(t, sched, jobsOf(t, wb, b), b), []string{j.ID}; !slices.Equal(got, want) {
		t.Errorf("builder got jobs %v, want %v", got, want)
	}
}

func TestPublishJobsRejectsBadJobs(t *testing.T) {
	f := natstest.Start(t)
	q := connectScheduler(t, f, natsq.Config{})
	bad := testJob(2)
	bad.Recipe = "go.evil"
	noID := testJob(3)
	noID.ID = ""
	for _, tc := range []struct {
		name string
		jobs []lantern.Job
	}{
		{"recipe with a dot", []lantern.Job{testJob(1), bad}},
		{"no id", []lantern.Job{testJob(1), noID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := q.PublishJobs(testCtx(t), tc.jobs); err == nil {
				t.Errorf("PublishJobs() = nil, want an error")
			}
		})
	}
	if got := streamMsgs(t, q, natsq.StreamJobs); got != 0 {
		t.Errorf("stream %s has %d messages after rejected batches, want 0", natsq.StreamJobs, got)
	}
}

func TestEveryBuilderGetsEveryJobOnce(t *testing.T) {
	f := natstest.Start(t)
	sched := connectScheduler(t, f, natsq.Config{})
	ctx := testCtx(t)
	a, b := testBuilder("a"), testBuilder("b")
	for _, builder := range []lantern.Digest{a, b} {
		if err := sched.EnsureBuilder(ctx, builder, true); err != nil {
			t.Fatalf("EnsureBuilder() = %v", err)
		}
	}
	jobs := testJobs(0, 30)
	if err := sched.PublishJobs(ctx, jobs); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}

	// Builder a: one worker takes them all, in order.
	wa := connectBuilder(t, f, a, natsq.Config{})
	if got, want := takeAll(t, sched, jobsOf(t, wa, a), a), jobIDs(jobs); !slices.Equal(got, want) {
		t.Errorf("builder a got jobs %v, want %v", got, want)
	}

	// Builder b: two workers, each with its own connection, share them.
	// While the first works on a job, the second gets another one.
	workers := []*natsq.JobConsumer{
		jobsOf(t, connectBuilder(t, f, b, natsq.Config{}), b),
		jobsOf(t, connectBuilder(t, f, b, natsq.Config{}), b),
	}
	m0, m1 := next(t, workers[0]), next(t, workers[1])
	if m0.Job.ID == m1.Job.ID {
		t.Fatalf("both workers of builder b got job %s", m0.Job.ID)
	}
	ack(t, m0)
	ack(t, m1)
	got := map[string]int{m0.Job.ID: 1, m1.Job.ID: 1}
	perWorker := []int{1, 1}
	// Then they take the rest as fast as they can.
	var mu sync.Mutex
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	for w, c := range workers {
		wg.Go(func() {
			for {
				m, err := c.Next(wctx)
				if err != nil {
					if wctx.Err() == nil {
						t.Errorf("worker %d: Next() = %v", w, err)
					}
					return
				}
				if err := m.Ack(wctx); err != nil {
					t.Errorf("worker %d: Ack() = %v", w, err)
				}
				mu.Lock()
				got[m.Job.ID]++
				perWorker[w]++
				mu.Unlock()
			}
		})
	}
	waitFor(t, "builder b's workers to take every job", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(jobs)
	})
	waitFor(t, "builder b's consumer to settle", func() bool { return settled(t, sched, natsq.StreamJobs, natsq.ConsumerName(b)) })
	stop()
	wg.Wait()
	for _, j := range jobs {
		if got[j.ID] != 1 {
			t.Errorf("builder b's workers got job %s %d times, want once", j.ID, got[j.ID])
		}
	}
	t.Logf("jobs per worker of builder b: %v", perWorker)
}

func TestVanishedWorkersJobIsRedelivered(t *testing.T) {
	f := natstest.Start(t)
	cfg := natsq.Config{AckWait: time.Second}
	sched := connectScheduler(t, f, cfg)
	ctx := testCtx(t)
	b := testBuilder("a")
	if err := sched.EnsureBuilder(ctx, b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	if err := sched.PublishJobs(ctx, testJobs(0, 1)); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	w1 := connectBuilder(t, f, b, cfg)
	m1 := next(t, jobsOf(t, w1, b))
	if m1.Deliveries != 1 {
		t.Errorf("first delivery: Deliveries = %d, want 1", m1.Deliveries)
	}
	w1.ConnForTest().Close() // the worker dies with the job

	w2 := connectBuilder(t, f, b, cfg)
	m2 := next(t, jobsOf(t, w2, b))
	if m2.Job.ID != m1.Job.ID || m2.Deliveries != 2 {
		t.Errorf("redelivery: job %s with Deliveries %d, want job %s with 2", m2.Job.ID, m2.Deliveries, m1.Job.ID)
	}
	ack(t, m2)
	if err := m2.Ack(ctx); !errors.Is(err, natsq.ErrSettled) {
		t.Errorf("second Ack() = %v, want ErrSettled", err)
	}
	waitFor(t, "the consumer to settle", func() bool { return settled(t, sched, natsq.StreamJobs, natsq.ConsumerName(b)) })
}

func TestInProgressKeepsJob(t *testing.T) {
	f := natstest.Start(t)
	cfg := natsq.Config{AckWait: 2 * time.Second}
	sched := connectScheduler(t, f, cfg)
	ctx := testCtx(t)
	b := testBuilder("a")
	if err := sched.EnsureBuilder(ctx, b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	if err := sched.PublishJobs(ctx, testJobs(0, 1)); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	w1 := connectBuilder(t, f, b, cfg)
	m := next(t, jobsOf(t, w1, b))

	// A long build: heartbeats while another worker of the builder waits
	// for work through several ack waits.
	stop := make(chan struct{})
	beats := make(chan error, 1)
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				beats <- nil
				return
			case <-tick.C:
				if err := m.InProgress(ctx); err != nil {
					beats <- err
					return
				}
			}
		}
	}()
	w2 := connectBuilder(t, f, b, cfg)
	wctx, cancel := context.WithTimeout(ctx, 3*cfg.AckWait)
	defer cancel()
	if got, err := jobsOf(t, w2, b).Next(wctx); err == nil {
		t.Errorf("while the job was in progress, another worker got job %s (Deliveries %d)", got.Job.ID, got.Deliveries)
	}
	close(stop)
	if err := <-beats; err != nil {
		t.Fatalf("InProgress() = %v", err)
	}
	ack(t, m)
	info := consumerInfo(t, sched, natsq.StreamJobs, natsq.ConsumerName(b))
	if info.NumRedelivered != 0 || info.NumAckPending != 0 || info.Delivered.Consumer != 1 {
		t.Errorf("consumer: %d redelivered, %d pending acks, %d deliveries; want 0, 0, 1",
			info.NumRedelivered, info.NumAckPending, info.Delivered.Consumer)
	}
}

func TestTermEndsJob(t *testing.T) {
	f := natstest.Start(t)
	cfg := natsq.Config{AckWait: time.Second}
	sched := connectScheduler(t, f, cfg)
	ctx := testCtx(t)
	b := testBuilder("a")
	if err := sched.EnsureBuilder(ctx, b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	if err := sched.PublishJobs(ctx, testJobs(0, 2)); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	w := connectBuilder(t, f, b, cfg)
	c := jobsOf(t, w, b)
	m := next(t, c)
	if err := m.Term(ctx); err != nil {
		t.Fatalf("Term() = %v", err)
	}
	if got, want := takeAll(t, sched, c, b), []string{testJob(1).ID}; !slices.Equal(got, want) {
		t.Errorf("jobs after Term = %v, want %v", got, want)
	}
	if err := m.Ack(ctx); !errors.Is(err, natsq.ErrSettled) {
		t.Errorf("Ack() after Term = %v, want ErrSettled", err)
	}
}

func TestJobConsumerClose(t *testing.T) {
	f := natstest.Start(t)
	sched := connectScheduler(t, f, natsq.Config{})
	b := testBuilder("a")
	if err := sched.EnsureBuilder(testCtx(t), b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	w := connectBuilder(t, f, b, natsq.Config{})
	c := jobsOf(t, w, b)
	done := make(chan error, 1)
	go func() {
		_, err := c.Next(testCtx(t))
		done <- err
	}()
	c.Close()
	if err := <-done; !errors.Is(err, natsq.ErrClosed) {
		t.Errorf("Next() during Close = %v, want ErrClosed", err)
	}
	if _, err := c.Next(testCtx(t)); !errors.Is(err, natsq.ErrClosed) {
		t.Errorf("Next() after Close = %v, want ErrClosed", err)
	}
	// A builder the scheduler has not added.
	nobody := testBuilder("nobody")
	wn := connectBuilder(t, f, nobody, natsq.Config{})
	if _, err := wn.Jobs(testCtx(t), nobody); !errors.Is(err, natsq.ErrUnknownBuilder) {
		t.Errorf("Jobs(unknown builder) = %v, want ErrUnknownBuilder", err)
	}
}

func TestRemoveBuilder(t *testing.T) {
	f := natstest.Start(t)
	sched := connectScheduler(t, f, natsq.Config{})
	ctx := testCtx(t)
	b, other := testBuilder("a"), testBuilder("b")
	for _, builder := range []lantern.Digest{b, other} {
		if err := sched.EnsureBuilder(ctx, builder, true); err != nil {
			t.Fatalf("EnsureBuilder() = %v", err)
		}
	}
	w := connectBuilder(t, f, b, natsq.Config{})
	c := jobsOf(t, w, b)
	waiting := make(chan error, 1)
	go func() {
		_, err := c.Next(ctx)
		waiting <- err
	}()
	waitFor(t, "the worker to wait for a job", func() bool {
		return consumerInfo(t, sched, natsq.StreamJobs, natsq.ConsumerName(b)).NumWaiting > 0
	})
	if err := sched.RemoveBuilder(ctx, b); err != nil {
		t.Fatalf("RemoveBuilder() = %v", err)
	}
	if err := <-waiting; !errors.Is(err, natsq.ErrUnknownBuilder) {
		t.Errorf("Next() of a removed builder = %v, want ErrUnknownBuilder", err)
	}
	if _, err := w.Jobs(ctx, b); !errors.Is(err, natsq.ErrUnknownBuilder) {
		t.Errorf("Jobs() of a removed builder = %v, want ErrUnknownBuilder", err)
	}
	if err := sched.RemoveBuilder(ctx, b); err != nil {
		t.Errorf("RemoveBuilder() again = %v, want nil", err)
	}
	// The others keep their consumers, and the removed builder keeps its
	// bucket.
	consumerInfo(t, sched, natsq.StreamJobs, natsq.ConsumerName(other))
	if _, err := sched.JetStreamForTest().ObjectStore(ctx, natsq.BuilderBucket(b)); err != nil {
		t.Errorf("the removed builder's bucket: %v", err)
	}
}

func TestDeadLetters(t *testing.T) {
	f := natstest.Start(t)
	cfg := natsq.Config{AckWait: time.Second, MaxDeliver: 3}
	admin := connectScheduler(t, f, cfg)
	ctx := testCtx(t)
	b := testBuilder("a")
	if err := admin.EnsureBuilder(ctx, b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	naked, ignored, done := testJob(1), testJob(2), testJob(3)
	if err := admin.PublishJobs(ctx, []lantern.Job{naked, ignored, done}); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}

	// The scheduler is another process: it learns the builder of a dead
	// letter from the consumer's metadata.
	sched := connectScheduler(t, f, cfg)
	dead := make(chan lantern.DeadLetter, 10)
	run(t, func(ctx context.Context) error {
		return sched.ConsumeDeadLetters(ctx, func(_ context.Context, d lantern.DeadLetter) error {
			dead <- d
			return nil
		})
	})

	// A worker that naks one job, takes another and never answers it, and
	// does the third. It keeps pulling, as workers do.
	w := connectBuilder(t, f, b, cfg)
	c := jobsOf(t, w, b)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	deliveries := make(map[string]int)
	var wmu sync.Mutex
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		for {
			m, err := c.Next(wctx)
			if err != nil {
				return
			}
			wmu.Lock()
			deliveries[m.Job.ID] = max(deliveries[m.Job.ID], m.Deliveries)
			wmu.Unlock()
			switch m.Job.ID {
			case naked.ID:
				_ = m.Nak(wctx, 0)
			case done.ID:
				_ = m.Ack(wctx)
			}
		}
	}()

	got := make(map[string]lantern.DeadLetter)
	for len(got) < 2 {
		select {
		case d := <-dead:
			if _, dup := got[d.JobID]; dup {
				t.Errorf("dead letter for job %s twice", d.JobID)
			}
			got[d.JobID] = d
		case <-ctx.Done():
			t.Fatalf("have dead letters %v; gave up waiting for two", got)
		}
	}
	stop()
	<-workerDone
	for _, j := range []lantern.Job{naked, ignored} {
		d, ok := got[j.ID]
		if !ok {
			t.Errorf("no dead letter for job %s; have %v", j.ID, got)
			continue
		}
		if d.Builder != b || d.Deliveries != cfg.MaxDeliver || d.Time.IsZero() {
			t.Errorf("dead letter of job %s = builder %s, %d deliveries, time %v; want builder %s, %d deliveries, a time",
				j.ID, d.Builder.Short(), d.Deliveries, d.Time, b.Short(), cfg.MaxDeliver)
		}
		if deliveries[j.ID] != cfg.MaxDeliver {
			t.Errorf("worker saw job %s delivered up to %d times, want %d", j.ID, deliveries[j.ID], cfg.MaxDeliver)
		}
	}
	if _, ok := got[done.ID]; ok {
		t.Errorf("dead letter for job %s, which was acked", done.ID)
	}
	waitFor(t, "the dead-letter consumer to settle", func() bool { return settled(t, sched, natsq.StreamDead, natsq.ConsumerDead) })
}

func TestBacklog(t *testing.T) {
	f := natstest.Start(t)
	sched := connectScheduler(t, f, natsq.Config{})
	ctx := testCtx(t)
	if err := sched.PublishJobs(ctx, testJobs(0, 3)); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	latecomer, catcher := testBuilder("late"), testBuilder("catch-up")
	if err := sched.EnsureBuilder(ctx, latecomer, false); err != nil {
		t.Fatalf("EnsureBuilder(backlog=false) = %v", err)
	}
	if err := sched.EnsureBuilder(ctx, catcher, true); err != nil {
		t.Fatalf("EnsureBuilder(backlog=true) = %v", err)
	}
	if err := sched.PublishJobs(ctx, testJobs(3, 5)); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}

	wl := connectBuilder(t, f, latecomer, natsq.Config{})
	if got, want := takeAll(t, sched, jobsOf(t, wl, latecomer), latecomer), jobIDs(testJobs(3, 5)); !slices.Equal(got, want) {
		t.Errorf("builder without backlog got %v, want %v", got, want)
	}
	wc := connectBuilder(t, f, catcher, natsq.Config{})
	cc := jobsOf(t, wc, catcher)
	ack(t, next(t, cc))
	// Ensuring again, with either backlog, keeps the consumer's position.
	for _, backlog := range []bool{true, false} {
		if err := sched.EnsureBuilder(ctx, catcher, backlog); err != nil {
			t.Fatalf("EnsureBuilder(again, backlog=%v) = %v", backlog, err)
		}
		if err := sched.EnsureBuilder(ctx, latecomer, backlog); err != nil {
			t.Fatalf("EnsureBuilder(again, backlog=%v) = %v", backlog, err)
		}
	}
	if got, want := takeAll(t, sched, cc, catcher), jobIDs(testJobs(1, 5)); !slices.Equal(got, want) {
		t.Errorf("builder with backlog, after its first job, got %v, want %v", got, want)
	}
	if !settled(t, sched, natsq.StreamJobs, natsq.ConsumerName(latecomer)) {
		t.Errorf("ensuring the builder without backlog again gave it jobs")
	}
}

func TestEnsureBuilderUpdatesSettings(t *testing.T) {
	f := natstest.Start(t)
	q := connectScheduler(t, f, natsq.Config{AckWait: time.Minute, MaxDeliver: 4})
	b := testBuilder("a")
	if err := q.EnsureBuilder(testCtx(t), b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	backoff := []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	q2 := connectScheduler(t, f, natsq.Config{MaxDeliver: 6, BackOff: backoff})
	if err := q2.EnsureBuilder(testCtx(t), b, false); err != nil {
		t.Fatalf("EnsureBuilder(new settings) = %v", err)
	}
	cfg := consumerInfo(t, q2, natsq.StreamJobs, natsq.ConsumerName(b)).Config
	if cfg.MaxDeliver != 6 || !slices.Equal(cfg.BackOff, backoff) || cfg.AckWait != backoff[0] || cfg.DeliverPolicy != jetstream.DeliverAllPolicy {
		t.Errorf("consumer after update: max deliver %d, back-off %v, ack wait %v, deliver policy %v; want 6, %v, %v, all",
			cfg.MaxDeliver, cfg.BackOff, cfg.AckWait, cfg.DeliverPolicy, backoff, backoff[0])
	}
}

func TestConsumeAcksAndRedelivers(t *testing.T) {
	f := natstest.Start(t)
	q := connectScheduler(t, f, natsq.Config{NakDelay: 50 * time.Millisecond})
	ctx := testCtx(t)
	var mu sync.Mutex
	failed := make(map[string]bool)
	c := &collector{result: func(m lantern.Message) error {
		switch string(m.Data) {
		case "flaky":
			mu.Lock()
			defer mu.Unlock()
			if !failed["flaky"] {
				failed["flaky"] = true
				return errors.New("store busy")
			}
		case "bad":
			return &lantern.Permanent{Err: errors.New("bad signature")}
		}
		return nil
	}}
	run(t, func(ctx context.Context) error { return q.ConsumeClaims(ctx, c.handle) })
	for _, env := range []string{"good", "flaky", "bad"} {
		if err := q.PublishClaim(ctx, []byte(env)); err != nil {
			t.Fatalf("PublishClaim() = %v", err)
		}
	}
	waitFor(t, "four deliveries", func() bool { return c.len() >= 4 })
	waitFor(t, "the claims consumer to settle", func() bool { return settled(t, q, natsq.StreamClaims, natsq.ConsumerClaims) })
	var got []string
	for _, m := range c.messages() {
		got = append(got, fmt.Sprintf("%s#%d", m.Data, m.Deliveries))
	}
	slices.Sort(got)
	if want := []string{"bad#1", "flaky#1", "flaky#2", "good#1"}; !slices.Equal(got, want) {
		t.Errorf("handled %q, want %q", got, want)
	}
	for _, m := range c.messages() {
		if m.Subject != natsq.SubjectClaimsAPI { // the scheduler's own connection publishes the API's claims
			t.Errorf("message subject = %q, want %q", m.Subject, natsq.SubjectClaimsAPI)
		}
	}

	// Results, published by a builder with its key id in the subject.
	r := &collector{}
	run(t, func(ctx context.Context) error { return q.ConsumeResults(ctx, r.handle) })
	b := testBuilder("a")
	w := connectBuilder(t, f, b, natsq.Config{})
	if err := w.PublishResult(ctx, b, []byte("attestation")); err != nil {
		t.Fatalf("PublishResult() = %v", err)
	}
	waitFor(t, "the result", func() bool { return r.len() == 1 })
	if want, got := natsq.SubjectResults+"."+b.Hex(), r.messages()[0]; got.Subject != want || string(got.Data) != "attestation" {
		t.Errorf("result = %q on %q, want %q on %q", got.Data, got.Subject, "attestation", want)
	}
	waitFor(t, "the results consumer to settle", func() bool { return settled(t, q, natsq.StreamResults, natsq.ConsumerResults) })
}

func TestConsumeBatches(t *testing.T) {
	f := natstest.Start(t)
	q := connectScheduler(t, f, natsq.Config{Batch: 16})
	ctx := testCtx(t)
	var want []string
	for i := range 100 {
		env := fmt.Sprintf("claim %03d", i)
		want = append(want, env)
		if err := q.PublishClaim(ctx, []byte(env)); err != nil {
			t.Fatalf("PublishClaim() = %v", err)
		}
	}
	var mu sync.Mutex
	largest := 0
	c := &collector{}
	run(t, func(ctx context.Context) error {
		return q.ConsumeClaims(ctx, func(ctx context.Context, msgs []lantern.Message) []error {
			mu.Lock()
			largest = max(largest, len(msgs))
			mu.Unlock()
			return c.handle(ctx, msgs)
		})
	})
	waitFor(t, "every claim", func() bool { return c.len() >= len(want) })
	waitFor(t, "the claims consumer to settle", func() bool { return settled(t, q, natsq.StreamClaims, natsq.ConsumerClaims) })
	if got := c.data(); !slices.Equal(got, want) {
		t.Errorf("handled %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if largest > 16 || largest < 2 {
		t.Errorf("largest batch = %d, want 2 to 16", largest)
	}
}

func TestQueueContinuesAcrossServerRestart(t *testing.T) {
	f := natstest.Start(t)
	sched := connectScheduler(t, f, natsq.Config{})
	b := testBuilder("a")
	worker := connectBuilder(t, f, b, natsq.Config{})
	ctx := testCtx(t)
	if err := sched.EnsureBuilder(ctx, b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	if err := sched.PublishJobs(ctx, testJobs(0, 4)); err != nil {
		t.Fatalf("PublishJobs() = %v", err)
	}
	claims := &collector{}
	run(t, func(ctx context.Context) error { return sched.ConsumeClaims(ctx, claims.handle) })
	for _, env := range []string{"c1", "c2", "c3"} {
		if err := sched.PublishClaim(ctx, []byte(env)); err != nil {
			t.Fatalf("PublishClaim() = %v", err)
		}
	}
	waitFor(t, "three claims handled and acked", func() bool {
		return claims.len() == 3 && settled(t, sched, natsq.StreamClaims, natsq.ConsumerClaims)
	})
	jc := jobsOf(t, worker, b)
	for _, want := range testJobs(0, 2) {
		m := next(t, jc)
		if m.Job.ID != want.ID {
			t.Fatalf("Next() = job %s, want %s", m.Job.ID, want.ID)
		}
		ack(t, m)
	}

	f.Restart() // same files, same port

	// Publishing waits for the connection to come back.
	waitFor(t, "a claim published after the restart", func() bool {
		return sched.PublishClaim(ctx, []byte("c4")) == nil
	})
	waitFor(t, "the fourth claim handled and acked", func() bool {
		return claims.len() >= 4 && settled(t, sched, natsq.StreamClaims, natsq.ConsumerClaims)
	})
	if got, want := claims.data(), []string{"c1", "c2", "c3", "c4"}; !slices.Equal(got, want) {
		t.Errorf("claims handled = %q, want %q", got, want)
	}
	// The worker's connection comes back too, with its builder's
	// credentials, and its consumer carries on.
	m := next(t, jc)
	if want := testJob(2); m.Job.ID != want.ID || m.Deliveries != 1 {
		t.Errorf("Next() after restart = job %s (Deliveries %d), want %s (1)", m.Job.ID, m.Deliveries, want.ID)
	}
	ack(t, m)
	// A new connection (a worker started after the restart) carries on too.
	late := connectBuilder(t, f, b, natsq.Config{})
	if got, want := takeAll(t, sched, jobsOf(t, late, b), b), jobIDs(testJobs(3, 4)); !slices.Equal(got, want) {
		t.Errorf("new worker after restart got %v, want %v", got, want)
	}
	if got := streamMsgs(t, sched, natsq.StreamClaims); got != 4 {
		t.Errorf("stream %s has %d messages, want 4", natsq.StreamClaims, got)
	}
}

func TestReplay(t *testing.T) {
	f := natstest.Start(t)
	q := connectScheduler(t, f, natsq.Config{Batch: 3})
	ctx := testCtx(t)

	// Nothing to replay yet.
	empty := &collector{}
	if err := q.Replay(ctx, empty.handle, empty.handle); err != nil || empty.len() != 0 {
		t.Fatalf("Replay() of empty streams = %v with %d messages, want nil with 0", err, empty.len())
	}

	var wantClaims, wantResults []string
	for i := range 10 {
		env := fmt.Sprintf("claim %d", i)
		wantClaims = append(wantClaims, env)
		if err := q.PublishClaim(ctx, []byte(env)); err != nil {
			t.Fatalf("PublishClaim() = %v", err)
		}
	}
	// Results of two builders, each published by its own worker.
	builders := []lantern.Digest{testBuilder("0"), testBuilder("1")}
	workers := []*natsq.Queue{connectBuilder(t, f, builders[0], natsq.Config{}), connectBuilder(t, f, builders[1], natsq.Config{})}
	for i := range 7 {
		env := fmt.Sprintf("result %d", i)
		wantResults = append(wantResults, env)
		if err := workers[i%2].PublishResult(ctx, builders[i%2], []byte(env)); err != nil {
			t.Fatalf("PublishResult() = %v", err)
		}
	}
	// A scheduler consumer that has acked everything does not hide
	// anything from a replay.
	consumed := &collector{}
	run(t, func(ctx context.Context) error { return q.ConsumeClaims(ctx, consumed.handle) })
	waitFor(t, "the claims consumer to settle", func() bool { return settled(t, q, natsq.StreamClaims, natsq.ConsumerClaims) })

	var order []string
	claims := &collector{result: func(lantern.Message) error { order = append(order, "claim"); return nil }}
	results := &collector{result: func(m lantern.Message) error {
		order = append(order, "result")
		if string(m.Data) == "result 3" {
			return &lantern.Permanent{Err: errors.New("bad signature")}
		}
		return nil
	}}
	if err := q.Replay(ctx, claims.handle, results.handle); err != nil {
		t.Fatalf("Replay() = %v", err)
	}
	if got := claims.data(); !slices.Equal(got, wantClaims) {
		t.Errorf("replayed claims %q, want %q", got, wantClaims)
	}
	if got := results.data(); !slices.Equal(got, wantResults) {
		t.Errorf("replayed results %q, want %q", got, wantResults)
	}
	for _, m := range append(claims.messages(), results.messages()...) {
		if m.Deliveries != 0 {
			t.Errorf("replayed %q with Deliveries %d, want 0", m.Data, m.Deliveries)
		}
	}
	if i := slices.Index(order, "result"); i != len(wantClaims) {
		t.Errorf("first result replayed at %d, want after all %d claims", i, len(wantClaims))
	}

	// A handler failure stops the replay with its error.
	boom := errors.New("disk full")
	failing := &collector{result: func(lantern.Message) error { return boom }}
	if err := q.Replay(ctx, failing.handle, failing.handle); !errors.Is(err, boom) {
		t.Errorf("Replay() with a failing handler = %v, want %v", err, boom)
	}
}

func TestCloseWhileWaiting(t *testing.T) {
	f := natstest.Start(t)
	b := testBuilder("a")
	admin := connectScheduler(t, f, natsq.Config{})
	if err := admin.EnsureBuilder(testCtx(t), b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}
	// A worker waiting for a job, and a scheduler waiting for claims.
	w := connectBuilder(t, f, b, natsq.Config{})
	c := jobsOf(t, w, b)
	jobs := make(chan error, 1)
	go func() {
		_, err := c.Next(context.Background())
		jobs <- err
	}()
	sched := connectScheduler(t, f, natsq.Config{})
	claims := make(chan error, 1)
	go func() {
		claims <- sched.ConsumeClaims(context.Background(), func(context.Context, []lantern.Message) []error { return nil })
	}()
	waitFor(t, "the worker to wait for a job", func() bool {
		return consumerInfo(t, admin, natsq.StreamJobs, natsq.ConsumerName(b)).NumWaiting > 0
	})
	waitFor(t, "the scheduler to wait for a claim", func() bool {
		_, err := admin.JetStreamForTest().Consumer(testCtx(t), natsq.StreamClaims, natsq.ConsumerClaims)
		return err == nil && consumerInfo(t, admin, natsq.StreamClaims, natsq.ConsumerClaims).NumWaiting > 0
	})
	if err := w.Close(); err != nil {
		t.Errorf("worker's Close() = %v", err)
	}
	if err := <-jobs; !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Next() on a closed queue = %v, want an error wrapping nats.ErrConnectionClosed", err)
	}
	if err := sched.Close(); err != nil {
		t.Errorf("scheduler's Close() = %v", err)
	}
	if err := <-claims; !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("ConsumeClaims() on a closed queue = %v, want an error wrapping nats.ErrConnectionClosed", err)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct {
		url    string
		secret []string // none may be left
		keep   []string // all must be left
	}{
		{"nats://alice:s3cret@host:4222", []string{"s3cret", "alice"}, []string{"host:4222"}},
		{"nats://alice:s3cret@h1:4222,nats://bob:hunter2@h2:4223", []string{"s3cret", "alice", "hunter2", "bob"}, []string{"h1:4222", "h2:4223"}},
		{"nats://alice:s3cret@h1:4222, tls://h2:4223", []string{"s3cret", "alice"}, []string{"h1:4222", "tls://h2:4223"}},
		{"nats://tok3n@h:1", []string{"tok3n"}, []string{"h:1"}},
		{"tok3n@h:1", []string{"tok3n"}, []string{"h:1"}},
		{"nats://host:4222", nil, []string{"nats://host:4222"}},
	} {
		got := natsq.RedactURL(tc.url)
		for _, s := range tc.secret {
			if strings.Contains(got, s) {
				t.Errorf("RedactURL(%q) = %q, which still has %q", tc.url, got, s)
			}
		}
		for _, s := range tc.keep {
			if !strings.Contains(got, s) {
				t.Errorf("RedactURL(%q) = %q, want %q in it", tc.url, got, s)
			}
		}
	}
	if got, want := natsq.RedactURL("nats://host:4222"), "nats://host:4222"; got != want {
		t.Errorf("RedactURL(%q) = %q, want it unchanged", want, got)
	}

	// Nothing listens on port 1.
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	q, err := natsq.Connect(ctx, "nats://bob:hunter2@127.0.0.1:1", natsq.Config{}, testLog(t))
	if err == nil {
		q.Close()
		t.Fatalf("Connect() to nothing = nil, want an error")
	}
	t.Logf("Connect() = %v", err)
	for _, s := range []string{"hunter2", "bob"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("Connect() = %q, which has %q", err, s)
		}
	}
}
