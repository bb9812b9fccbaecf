package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/boltstore"
)

// A farm's store for the tests: a real bbolt store holding genuinely
// signed claims and attestations, recorded the way the scheduler records
// them (verified envelope, record, verdict from lantern.Decide).

var (
	claimKey = mustKey()
	alice    = mustKey()
	bob      = mustKey()
	carol    = mustKey()
)

func mustKey() *keys.Private {
	k, err := keys.Generate()
	if err != nil {
		panic(err)
	}
	return k
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

type fixture struct {
	t         testing.TB
	st        *boltstore.Store
	threshold int
	objects   *memObjects
	// fetch, if set, is where the claims say their source is.
	fetch string
	mu    sync.Mutex // serialises record's read-decide-write, as the scheduler does
	n     int
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "scheduler.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, threshold: 2, objects: &memObjects{m: map[lantern.Digest][]byte{}}}
	for _, b := range []*keys.Private{alice, bob, carol} {
		rec := scheduler.BuilderRecord{ID: b.ID(), PublicKey: b.Public().MarshalPEM(), Added: t0}
		if err := st.PutBuilder(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// handler is the dashboard over the fixture's store and objects.
func (f *fixture) handler() http.Handler {
	f.t.Helper()
	h, err := New(Config{Store: f.st, Objects: f.objects, Threshold: f.threshold, Refresh: 200 * time.Millisecond})
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

// claim signs a source claim of name@version that published the artefacts
// given (label → bytes), stores it with its job, and returns the job.
func (f *fixture) claim(name, version string, published map[string]string) lantern.Job {
	f.t.Helper()
	f.n++
	c := &lantern.SourceClaim{
		Source: lantern.Source{Name: name, Version: version, Digest: lantern.DigestOf([]byte("source of " + name + "@" + version))},
		Recipe: "go",
		Fetch:  f.fetch,
		Time:   t0.Add(time.Duration(f.n) * time.Minute),
	}
	if len(published) > 0 {
		c.Artefacts = map[string]lantern.Digest{}
		for label, b := range published {
			c.Artefacts[label] = lantern.DigestOf([]byte(b))
		}
	}
	return f.putClaim(c, claimKey)
}

// putClaim signs c as signer and stores it, as the scheduler does, with its
// job; it returns the job.
func (f *fixture) putClaim(c *lantern.SourceClaim, signer *keys.Private) lantern.Job {
	f.t.Helper()
	env, err := attest.Sign(c, signer)
	if err != nil {
		f.t.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		f.t.Fatal(err)
	}
	d := lantern.DigestOf(raw)
	job := lantern.JobFromClaim(c, raw, signer.ID())
	job.Created = c.Time
	id := job.ID
	rec := scheduler.ClaimRecord{Envelope: d, Raw: raw, Claim: *c, Signer: signer.ID(), Jobs: []string{id}, Received: c.Time}
	if _, err := f.st.PutClaims(f.t.Context(), []scheduler.ClaimRecord{rec}, []lantern.Job{job}); err != nil {
		f.t.Fatal(err)
	}
	return job
}

// rebuilt signs, as builder, a rebuild of job's label to output (the
// artefact's bytes) that took took, stores its log, and records it.
func (f *fixture) rebuilt(job lantern.Job, builder *keys.Private, label, output string, took time.Duration, log string) scheduler.AttestationRecord {
	f.t.Helper()
	f.n++
	finished := t0.Add(time.Hour + time.Duration(f.n)*time.Minute)
	r := &lantern.Rebuild{
		Source: job.Source, Label: label, Output: lantern.DigestOf([]byte(output)),
		Recipe:  lantern.Recipe{BuildType: attest.URIBase + "recipes/go/v1", Digest: lantern.DigestOf([]byte("go recipe v1"))},
		Builder: builder.ID(), JobID: job.ID, Started: finished.Add(-took), Finished: finished,
		Log: f.objects.put(log),
	}
	return f.record(job, builder, r)
}

// failed signs, as builder, a failed rebuild of job's label and records it.
func (f *fixture) failed(job lantern.Job, builder *keys.Private, label, stage, reason, log string) scheduler.AttestationRecord {
	f.t.Helper()
	f.n++
	finished := t0.Add(time.Hour + time.Duration(f.n)*time.Minute)
	r := &lantern.RebuildFailure{
		Source: job.Source, Label: label, Stage: stage, Reason: reason,
		Recipe:  lantern.Recipe{BuildType: attest.URIBase + "recipes/go/v1", Digest: lantern.DigestOf([]byte("go recipe v1"))},
		Builder: builder.ID(), JobID: job.ID, Started: finished.Add(-10 * time.Second), Finished: finished,
		Log: f.objects.put(log),
	}
	return f.record(job, builder, r)
}

func (f *fixture) record(job lantern.Job, builder *keys.Private, c lantern.Claim) scheduler.AttestationRecord {
	f.t.Helper()
	env, err := attest.Sign(c, builder)
	if err != nil {
		f.t.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		f.t.Fatal(err)
	}
	// What the scheduler does with an envelope: verify it with the
	// builder's key, then record what it says.
	v, err := attest.Verify(env, builder.Public())
	if err != nil {
		f.t.Fatal(err)
	}
	rec := scheduler.AttestationRecord{Envelope: lantern.DigestOf(raw), Raw: raw, Kind: v.Claim.Kind(), Builder: builder.ID()}
	switch c := v.Claim.(type) {
	case *lantern.Rebuild:
		rec.JobID, rec.Source, rec.Label, rec.Output, rec.Recipe = c.JobID, c.Source, c.Label, c.Output, c.Recipe
		rec.Started, rec.Finished, rec.Log = c.Started, c.Finished, c.Log
	case *lantern.RebuildFailure:
		rec.JobID, rec.Source, rec.Label, rec.Recipe = c.JobID, c.Source, c.Label, c.Recipe
		rec.Stage, rec.Reason, rec.Started, rec.Finished, rec.Log = c.Stage, c.Reason, c.Started, c.Finished, c.Log
	}
	rec.Received = rec.Finished.Add(time.Second)
	f.mu.Lock()
	defer f.mu.Unlock()
	ctx := context.Background()
	outcomes, err := f.st.Outcomes(ctx, rec.JobID, rec.Label)
	if err != nil {
		f.t.Fatal(err)
	}
	verdict := lantern.Decide(rec.Source, rec.Label, job.Published[rec.Label], f.threshold, append(outcomes, rec.Outcome()))
	verdict.Job, verdict.Recipe, verdict.Claims = job.ID, job.Recipe, []lantern.ClaimRef{{Envelope: job.Claim, Signer: claimKey.ID()}}
	if err := f.st.PutAttestation(ctx, rec, []lantern.Verdict{verdict}); err != nil {
		f.t.Fatal(err)
	}
	return rec
}

// memObjects is an object store in memory, for the unit tests of the pages
// that show logs (the scheduler's API tests read logs from the real NATS
// object store).
type memObjects struct {
	mu sync.Mutex
	m  map[lantern.Digest][]byte
}

func (o *memObjects) put(s string) lantern.Digest {
	if s == "" {
		return lantern.Digest{}
	}
	d := lantern.DigestOf([]byte(s))
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[d] = []byte(s)
	return d
}

func (o *memObjects) GetObject(ctx context.Context, d lantern.Digest) (io.ReadCloser, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.m[d]
	if !ok {
		return nil, fmt.Errorf("get object %s: %w", d, scheduler.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// get fetches path from h and returns the response and its body.
func get(t testing.TB, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	resp := w.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
