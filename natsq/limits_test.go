package natsq_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

// The scheduler removes outputs through a natsq.Queue.
var _ scheduler.OutputRemover = (*natsq.Queue)(nil)

// streamConfig reads the configuration of stream back from the server.
func streamConfig(t *testing.T, q *natsq.Queue, stream string) jetstream.StreamConfig {
	t.Helper()
	st, err := q.JetStreamForTest().Stream(testCtx(t), stream)
	if err != nil {
		t.Fatalf("Stream(%s) = %v", stream, err)
	}
	return st.CachedInfo().Config
}

// TestLimitsApplied: Setup and EnsureBuilder give the streams and buckets
// the limits of the config, and the defaults where it has none, as the
// server reads them back.
func TestLimitsApplied(t *testing.T) {
	type want struct {
		maxBytes   int64
		maxAge     time.Duration
		maxMsgSize int32
	}
	check := func(t *testing.T, q *natsq.Queue, streams map[string]want) {
		t.Helper()
		for name, w := range streams {
			c := streamConfig(t, q, name)
			if c.MaxBytes != w.maxBytes || c.MaxAge != w.maxAge || c.Discard != jetstream.DiscardNew {
				t.Errorf("stream %s: max bytes %d, max age %v, discard %v; want %d, %v, new", name, c.MaxBytes, c.MaxAge, c.Discard, w.maxBytes, w.maxAge)
			}
			if w.maxMsgSize != 0 && c.MaxMsgSize != w.maxMsgSize {
				t.Errorf("stream %s: max message size %d, want %d", name, c.MaxMsgSize, w.maxMsgSize)
			}
		}
	}
	b := testBuilder("a")
	t.Run("defaults", func(t *testing.T) {
		f := natstest.Start(t)
		q := connectScheduler(t, f, natsq.Config{})
		if err := q.EnsureBuilder(testCtx(t), b, true); err != nil {
			t.Fatal(err)
		}
		check(t, q, map[string]want{
			natsq.StreamClaims:              {natsq.DefaultStreamMaxBytes, 0, natsq.DefaultMaxMsgSize},
			natsq.StreamJobs:                {natsq.DefaultStreamMaxBytes, 0, natsq.DefaultMaxMsgSize},
			natsq.StreamResults:             {natsq.DefaultStreamMaxBytes, 0, natsq.DefaultMaxMsgSize},
			natsq.StreamDead:                {natsq.DefaultDeadMaxBytes, 0, natsq.DefaultMaxMsgSize},
			"OBJ_" + natsq.BucketObjects:    {natsq.DefaultBucketMaxBytes, 0, 0},
			"OBJ_" + natsq.BuilderBucket(b): {natsq.DefaultBuilderBucketMaxBytes, 0, 0},
		})
	})
	t.Run("a farm of an earlier version", func(t *testing.T) {
		// Streams and buckets as the version before limits made them,
		// with messages in them; then the farm comes up with limits, and
		// again with other limits.
		f := natstest.Start(t)
		q := connect(t, f, f.SchedulerConfig(natsq.Config{}))
		js := q.JetStreamForTest()
		ctx := testCtx(t)
		for name, subject := range map[string]string{
			natsq.StreamClaims: natsq.SubjectClaims, natsq.StreamJobs: natsq.SubjectJobs + ".>",
			natsq.StreamResults: natsq.SubjectResults + ".>", natsq.StreamDead: natsq.SubjectDead,
		} {
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage, Discard: jetstream.DiscardOld, Duplicates: 2 * time.Minute, AllowDirect: true}); err != nil {
				t.Fatal(err)
			}
		}
		for _, bucket := range []string{natsq.BucketObjects, natsq.BuilderBucket(b)} {
			if _, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, Storage: jetstream.FileStorage}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := js.Publish(ctx, natsq.SubjectClaims, []byte("an old claim")); err != nil {
			t.Fatal(err)
		}
		for i, cfg := range []natsq.Config{
			{StreamMaxBytes: 64 << 20, DeadMaxBytes: 1 << 20, StreamMaxAge: 90 * 24 * time.Hour, MaxMsgSize: 256 << 10, BucketMaxBytes: 32 << 20, BuilderBucketMaxBytes: 16 << 20},
			{StreamMaxBytes: 128 << 20, DeadMaxBytes: -1, MaxMsgSize: 512 << 10, BucketMaxBytes: -1, BuilderBucketMaxBytes: 8 << 20},
		} {
			q := connectScheduler(t, f, cfg)
			if err := q.EnsureBuilder(testCtx(t), b, true); err != nil {
				t.Fatal(err)
			}
			check(t, q, map[string]want{
				natsq.StreamClaims:              {cfg.StreamMaxBytes, cfg.StreamMaxAge, cfg.MaxMsgSize},
				natsq.StreamJobs:                {cfg.StreamMaxBytes, cfg.StreamMaxAge, cfg.MaxMsgSize},
				natsq.StreamResults:             {cfg.StreamMaxBytes, cfg.StreamMaxAge, cfg.MaxMsgSize},
				natsq.StreamDead:                {cfg.DeadMaxBytes, cfg.StreamMaxAge, cfg.MaxMsgSize},
				"OBJ_" + natsq.BucketObjects:    {cfg.BucketMaxBytes, 0, 0},
				"OBJ_" + natsq.BuilderBucket(b): {cfg.BuilderBucketMaxBytes, 0, 0},
			})
			if c := streamConfig(t, q, "OBJ_"+natsq.BuilderBucket(b)); c.AllowDirect {
				t.Errorf("builder bucket allows Direct Get after the update")
			}
			if n := streamMsgs(t, q, natsq.StreamClaims); n != uint64(1+i) {
				t.Errorf("claims stream has %d messages after the update, want the %d of before", n, 1+i)
			}
			// The claims stream takes the API's subject now.
			if err := q.PublishClaim(ctx, []byte("a new claim "+strconv.Itoa(i))); err != nil {
				t.Errorf("PublishClaim() after the update = %v", err)
			}
		}
	})
}

// TestStreamRefusesLargeMessages: a message past MaxMsgSize is refused,
// saying so.
func TestStreamRefusesLargeMessages(t *testing.T) {
	f := natstest.Start(t)
	q := connectScheduler(t, f, natsq.Config{MaxMsgSize: 1024})
	err := q.PublishClaim(testCtx(t), bytes.Repeat([]byte("c"), 2048))
	if err == nil || !strings.Contains(err.Error(), "--max-msg-size") {
		t.Errorf("PublishClaim() of 2 KiB with a 1 KiB limit = %v, want an error naming --max-msg-size", err)
	}
	if err := q.PublishClaim(testCtx(t), []byte("small")); err != nil {
		t.Errorf("PublishClaim() of a small claim = %v", err)
	}
}

// TestBuilderBucketCap: a builder's upload past its bucket's cap fails,
// sending nothing, and leaves the other builders' buckets alone; what an
// upload that never finished left (a worker that died) is removed by the
// sweep.
func TestBuilderBucketCap(t *testing.T) {
	f := natstest.Start(t)
	const capBytes = 1 << 20
	sched := connectScheduler(t, f, natsq.Config{BuilderBucketMaxBytes: capBytes})
	a, b := testBuilder("a"), testBuilder("b")
	for _, id := range []lantern.Digest{a, b} {
		if err := sched.EnsureBuilder(testCtx(t), id, true); err != nil {
			t.Fatal(err)
		}
	}
	wa, wb := connectBuilder(t, f, a, natsq.Config{}), connectBuilder(t, f, b, natsq.Config{})
	big := make([]byte, 2*capBytes)
	rand.Read(big)
	bucketBytes := func(id lantern.Digest) uint64 {
		st, err := sched.JetStreamForTest().Stream(testCtx(t), "OBJ_"+natsq.BuilderBucket(id))
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State.Bytes
	}
	_, err := wa.PutObject(testCtx(t), "bin", bytes.NewReader(big))
	if !errors.Is(err, natsq.ErrBucketFull) || !strings.Contains(err.Error(), "--builder-bucket-max-bytes") {
		t.Fatalf("PutObject() of %d bytes into a bucket of %d = %v, want ErrBucketFull naming --builder-bucket-max-bytes", len(big), capBytes, err)
	}
	if n := bucketBytes(a); n != 0 {
		t.Errorf("the refused upload left %d bytes in the bucket", n)
	}
	// Up to the cap, then one more.
	half := big[:capBytes/2]
	if _, err := wa.PutObject(testCtx(t), "bin", bytes.NewReader(half)); err != nil {
		t.Fatalf("PutObject() of half the cap = %v", err)
	}
	if _, err := wa.PutObject(testCtx(t), "bin", bytes.NewReader(big[capBytes/2:capBytes+capBytes/4])); !errors.Is(err, natsq.ErrBucketFull) {
		t.Errorf("PutObject() past the cap = %v, want ErrBucketFull", err)
	}
	// Builder b is not held up by a's bucket.
	if _, err := wb.PutObject(testCtx(t), "bin", bytes.NewReader(half)); err != nil {
		t.Errorf("builder b's PutObject() = %v, want its own bucket's room", err)
	}

	// An upload that never finished: chunks, and no object record.
	before := bucketBytes(b)
	for range 3 {
		if err := wb.ConnForTest().Publish("$O."+natsq.BuilderBucket(b)+".C.orphanupload", bytes.Repeat([]byte("x"), 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.ConnForTest().Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orphan chunks to be stored", func() bool { return bucketBytes(b) > before })
	// Chunks written less than an hour ago may be an upload in progress:
	// the sweep keeps them; once they are older, it removes them and keeps
	// the finished objects.
	if _, err := sched.RemoveOutputsBefore(testCtx(t), time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("RemoveOutputsBefore() = %v", err)
	}
	if n := bucketBytes(b); n <= before {
		t.Errorf("a sweep removed an upload in progress: bucket at %d bytes, %d before it", n, before)
	}
	natsq.SetOrphanAgeForTest(t.Cleanup, 0)
	if _, err := sched.RemoveOutputsBefore(testCtx(t), time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("RemoveOutputsBefore() = %v", err)
	}
	if n := bucketBytes(b); n != before {
		t.Errorf("bucket at %d bytes after the sweep, want %d, as before the orphan chunks", n, before)
	}
	if got := readObject(t, sched, lantern.DigestOf(half)); got != string(half) {
		t.Errorf("object read back differs from what was uploaded")
	}
}

// TestRemoveOutputs: RemoveOutput and RemoveOutputsBefore remove outputs
// from the builders' buckets and keep build logs and the farm's own
// objects.
func TestRemoveOutputs(t *testing.T) {
	f := natstest.Start(t)
	sched := connectScheduler(t, f, natsq.Config{})
	a, b := testBuilder("a"), testBuilder("b")
	up := func(w *natsq.Queue, name, data string) lantern.Digest {
		t.Helper()
		d, err := w.PutObject(testCtx(t), name, strings.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, id := range []lantern.Digest{a, b} {
		if err := sched.EnsureBuilder(testCtx(t), id, true); err != nil {
			t.Fatal(err)
		}
	}
	wa, wb := connectBuilder(t, f, a, natsq.Config{}), connectBuilder(t, f, b, natsq.Config{})
	shared := up(wa, "bin of j1 by a", "the same output")
	up(wb, "bin of j1 by b", "the same output")
	logA := up(wa, natsq.LogPrefix+"j1 by a", "a's log")
	other := up(wb, "bin of j2 by b", "another output")
	report := up(sched, "diffoscope report", "a report")

	gone := func(d lantern.Digest) bool {
		rc, err := sched.GetObject(testCtx(t), d)
		if err == nil {
			rc.Close()
			return false
		}
		if !errors.Is(err, lantern.ErrNoObject) {
			t.Fatalf("GetObject(%s) = %v", d.Short(), err)
		}
		return true
	}
	if err := sched.RemoveOutput(testCtx(t), shared); err != nil {
		t.Fatalf("RemoveOutput() = %v", err)
	}
	if !gone(shared) {
		t.Errorf("output in two builders' buckets is still there after RemoveOutput")
	}
	if err := sched.RemoveOutput(testCtx(t), logA); err != nil || gone(logA) {
		t.Errorf("RemoveOutput() of a log = %v, and the log is gone: %v; want it kept", err, gone(logA))
	}
	// Nothing is older than an hour ago; then everything is older than an
	// hour from now.
	if n, err := sched.RemoveOutputsBefore(testCtx(t), time.Now().Add(-time.Hour)); err != nil || n != 0 || gone(other) {
		t.Errorf("RemoveOutputsBefore(an hour ago) = %d, %v; want 0 removed", n, err)
	}
	if n, err := sched.RemoveOutputsBefore(testCtx(t), time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("RemoveOutputsBefore(in an hour) = %d, %v; want 1 removed", n, err)
	}
	if !gone(other) {
		t.Errorf("old output still there after RemoveOutputsBefore")
	}
	if gone(logA) || gone(report) {
		t.Errorf("RemoveOutputsBefore removed a log (%v) or the farm's report (%v); want them kept", gone(logA), gone(report))
	}
}
