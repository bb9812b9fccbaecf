package natsq_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

// The scheduler reads logs and outputs through a natsq.Queue.
var _ scheduler.ObjectReader = (*natsq.Queue)(nil)

func bytesReader(s string) io.Reader { return strings.NewReader(s) }

func readObject(t *testing.T, q *natsq.Queue, d lantern.Digest) string {
	t.Helper()
	rc, err := q.GetObject(testCtx(t), d)
	if err != nil {
		t.Fatalf("GetObject(%s) = %v", d.Short(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading object %s: %v", d.Short(), err)
	}
	return string(b)
}

// objectStore binds bucket with q's permissions.
func objectStore(t *testing.T, q *natsq.Queue, bucket string) jetstream.ObjectStore {
	t.Helper()
	obs, err := q.JetStreamForTest().ObjectStore(testCtx(t), bucket)
	if err != nil {
		t.Fatalf("ObjectStore(%s) = %v", bucket, err)
	}
	return obs
}

func TestObjects(t *testing.T) {
	f := natstest.Start(t)
	sched := connectScheduler(t, f, natsq.Config{})
	b := testBuilder("a")

	// A builder the scheduler has not added has no bucket to upload to.
	w := connectBuilder(t, f, b, natsq.Config{})
	if _, err := w.PutObject(testCtx(t), "early", bytesReader("too early")); !errors.Is(err, natsq.ErrNotSetUp) {
		t.Errorf("PutObject() before EnsureBuilder = %v, want ErrNotSetUp", err)
	}
	if err := sched.EnsureBuilder(testCtx(t), b, true); err != nil {
		t.Fatalf("EnsureBuilder() = %v", err)
	}

	big := make([]byte, natsq.SpoolInMemory+300<<10) // spills to a temporary file
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	// Both upload; the scheduler reads both.
	for _, up := range []struct {
		who    string
		q      *natsq.Queue
		bucket string // where its uploads go
		other  string // where they do not
	}{
		{"builder", w, natsq.BuilderBucket(b), natsq.BucketObjects},
		{"scheduler", sched, natsq.BucketObjects, natsq.BuilderBucket(b)},
	} {
		for _, tc := range []struct {
			name string
			data []byte
		}{
			{"empty", nil},
			{"log", []byte("step 1\nstep 2\n" + up.who)},
			{"artefact", append([]byte(up.who), big...)},
		} {
			t.Run(up.who+"/"+tc.name, func(t *testing.T) {
				ctx := testCtx(t)
				d, err := up.q.PutObject(ctx, tc.name, bytes.NewReader(tc.data))
				if err != nil {
					t.Fatalf("PutObject() = %v", err)
				}
				if want := lantern.DigestOf(tc.data); d != want {
					t.Errorf("PutObject() = %s, want %s", d, want)
				}
				if got := readObject(t, sched, d); got != string(tc.data) {
					t.Errorf("GetObject() read %d bytes, want the %d put", len(got), len(tc.data))
				}
				again, err := up.q.PutObject(ctx, "again", bytes.NewReader(tc.data))
				if err != nil || again != d {
					t.Errorf("PutObject(same bytes) = %s, %v; want %s, nil", again, err, d)
				}
				info, err := objectStore(t, sched, up.bucket).GetInfo(ctx, d.String())
				if err != nil {
					t.Fatalf("GetInfo() in %s = %v", up.bucket, err)
				}
				if info.Description != tc.name || info.Size != uint64(len(tc.data)) {
					t.Errorf("object info: description %q, size %d; want %q, %d", info.Description, info.Size, tc.name, len(tc.data))
				}
				// The empty object is the one both upload.
				if tc.name != "empty" {
					if _, err := objectStore(t, sched, up.other).GetInfo(ctx, d.String()); !errors.Is(err, jetstream.ErrObjectNotFound) {
						t.Errorf("GetInfo() in %s = %v, want ErrObjectNotFound", up.other, err)
					}
				}
			})
		}
	}
	if _, err := sched.GetObject(testCtx(t), lantern.DigestOf([]byte("never stored"))); !errors.Is(err, natsq.ErrObjectNotFound) || !errors.Is(err, lantern.ErrNoObject) {
		t.Errorf("GetObject(missing) = %v, want ErrObjectNotFound and lantern.ErrNoObject", err)
	}
}

// forgerAndHonest starts a farm with two builders, the forger's bucket read
// before the honest one's.
func forgerAndHonest(t *testing.T) (*natstest.Farm, *natsq.Queue, lantern.Digest, lantern.Digest) {
	t.Helper()
	f := natstest.Start(t)
	sched := connectScheduler(t, f, natsq.Config{})
	forger, honest := testBuilder("a"), testBuilder("b")
	if natsq.BuilderBucket(forger) > natsq.BuilderBucket(honest) {
		forger, honest = honest, forger
	}
	for _, b := range []lantern.Digest{forger, honest} {
		if err := sched.EnsureBuilder(testCtx(t), b, true); err != nil {
			t.Fatalf("EnsureBuilder() = %v", err)
		}
	}
	return f, sched, forger, honest
}

// A builder can put anything under any name in its own bucket: GetObject
// takes an object only when its bytes are the ones its name says.
func TestGetObjectPassesOverForgedObject(t *testing.T) {
	f, sched, forger, honest := forgerAndHonest(t)
	ctx := testCtx(t)
	genuine, forged := []byte("the output the builders got"), []byte("something else")
	d := lantern.DigestOf(genuine)

	// The forger uploads other bytes under d's name, with its own
	// credentials but not through PutObject, which names objects by their
	// bytes.
	wf := connectBuilder(t, f, forger, natsq.Config{})
	if _, err := objectStore(t, wf, natsq.BuilderBucket(forger)).Put(ctx, jetstream.ObjectMeta{Name: d.String(), Description: "build.log"}, bytes.NewReader(forged)); err != nil {
		t.Fatalf("forger's Put() = %v", err)
	}
	if _, err := sched.GetObject(ctx, d); !errors.Is(err, lantern.ErrDigestMismatch) {
		t.Errorf("GetObject() with only a forged object = %v, want lantern.ErrDigestMismatch", err)
	}

	wh := connectBuilder(t, f, honest, natsq.Config{})
	got, err := wh.PutObject(ctx, "out", bytes.NewReader(genuine))
	if err != nil || got != d {
		t.Fatalf("honest builder's PutObject() = %s, %v; want %s, nil", got, err, d)
	}
	if got := readObject(t, sched, d); got != string(genuine) {
		t.Errorf("GetObject() = %q, want %q", got, genuine)
	}
}

// TestGetObjectGivesUpOnAStalledObject: a builder's object whose chunks
// never come holds a reader up only for a while; the genuine object in
// another builder's bucket is read then.
func TestGetObjectGivesUpOnAStalledObject(t *testing.T) {
	natsq.SetReadTimeForTest(t.Cleanup, 2*time.Second)
	f, sched, forger, honest := forgerAndHonest(t)
	ctx := testCtx(t)
	genuine := []byte("the genuine output")
	d := lantern.DigestOf(genuine)
	// The forger publishes an object's metadata: 8 chunks, none sent.
	wf := connectBuilder(t, f, forger, natsq.Config{})
	bucket := natsq.BuilderBucket(forger)
	meta := fmt.Sprintf(`{"name":%q,"bucket":%q,"nuid":"NOCHUNKS","size":8000,"chunks":8,"mtime":"2026-11-30T00:00:00Z","digest":"SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="}`, d.String(), bucket)
	subj := "$O." + bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(d.String()))
	if _, err := wf.JetStreamForTest().Publish(ctx, subj, []byte(meta)); err != nil {
		t.Fatalf("plant the metadata: %v", err)
	}
	wh := connectBuilder(t, f, honest, natsq.Config{})
	if _, err := wh.PutObject(ctx, "out", bytes.NewReader(genuine)); err != nil {
		t.Fatal(err)
	}
	if got := readObject(t, sched, d); got != string(genuine) {
		t.Errorf("GetObject() = %q, want %q", got, genuine)
	}
}
