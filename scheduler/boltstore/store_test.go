package boltstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// opts compares records after a JSON round trip, where an empty map or
// slice may come back nil.
var opts = cmp.Options{cmpopts.EquateEmpty()}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "lantern.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func digest(s string) lantern.Digest { return lantern.DigestOf([]byte(s)) }

func source(name, version string) lantern.Source {
	return lantern.Source{Name: name, Version: version, Digest: digest("source " + name + "@" + version)}
}

// claimOf returns the n-th claim of src and the job it makes.
func claimOf(src lantern.Source, n int, published map[string]lantern.Digest) (scheduler.ClaimRecord, lantern.Job) {
	raw := fmt.Sprintf(`{"claim":%d,"source":%q,"digest":%q}`, n, src, src.Digest)
	at := t0.Add(time.Duration(n) * time.Minute)
	env := digest(raw)
	job := lantern.Job{ID: lantern.JobID(src, "go", nil, nil, lantern.Digest{}), Source: src, Recipe: "go", Published: published, Claim: env, Created: at}
	return scheduler.ClaimRecord{
		Envelope: env,
		Raw:      []byte(raw),
		Claim:    lantern.SourceClaim{Source: src, Recipe: "go", Artefacts: published, Time: at},
		Signer:   digest("maintainer"),
		Jobs:     []string{job.ID},
		Received: at,
	}, job
}

// rebuild returns the n-th attestation, a rebuild of src's label by builder
// with output out (a failed rebuild when out is zero).
func rebuild(src lantern.Source, label string, builder, out lantern.Digest, n int) scheduler.AttestationRecord {
	raw := fmt.Sprintf(`{"n":%d,"builder":%q,"source":%q,"label":%q}`, n, builder, src, label)
	at := t0.Add(time.Duration(n) * time.Second)
	a := scheduler.AttestationRecord{
		Envelope: digest(raw),
		Raw:      []byte(raw),
		Kind:     lantern.KindRebuild,
		Builder:  builder,
		JobID:    lantern.JobID(src, "go", nil, nil, lantern.Digest{}),
		Source:   src,
		Label:    label,
		Output:   out,
		Recipe:   lantern.Recipe{BuildType: "https://lanternfarm.dev/recipes/go/v1", Digest: digest("recipe go")},
		Started:  at.Add(-time.Minute),
		Finished: at,
		Log:      digest("log " + raw),
		Received: at.Add(time.Second),
	}
	if out.IsZero() {
		a.Kind, a.Stage, a.Reason = lantern.KindRebuildFailure, "build", "exit status 2"
	}
	return a
}

// record stores a with the verdict the scheduler would compute, as the
// scheduler does, and returns the verdict.
func record(t testing.TB, s *Store, a scheduler.AttestationRecord, published lantern.Digest) lantern.Verdict {
	t.Helper()
	ctx := context.Background()
	outcomes, err := s.Outcomes(ctx, a.JobID, a.Label)
	if err != nil {
		t.Fatal(err)
	}
	v := lantern.Decide(a.Source, a.Label, published, 2, append(outcomes, a.Outcome()))
	v.Job = a.JobID
	if err := s.PutAttestation(ctx, a, []lantern.Verdict{v}); err != nil {
		t.Fatalf("PutAttestation(%s) = %v", a.Envelope, err)
	}
	return v
}

func envelopes(atts []scheduler.AttestationRecord) []lantern.Digest {
	var ds []lantern.Digest
	for _, a := range atts {
		ds = append(ds, a.Envelope)
	}
	return ds
}

func TestPutClaims(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	src, other := source("example.com/tool", "v1.2.3"), source("example.com/lib", "v0.1.0")
	c1, j1 := claimOf(src, 1, map[string]lantern.Digest{"linux-amd64": digest("published")})
	c2, j2 := claimOf(other, 2, nil)

	added, err := s.PutClaims(ctx, []scheduler.ClaimRecord{c1, c2, c1}, []lantern.Job{j1, j2, j1})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false}; !cmp.Equal(added, want) {
		t.Errorf("PutClaims(c1, c2, c1) added = %v, want %v", added, want)
	}
	got, err := s.Claim(ctx, c1.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&c1, got, opts); diff != "" {
		t.Errorf("Claim(c1) (-want +got):\n%s", diff)
	}

	// A job already there keeps its record and its state.
	a := digest("builder a")
	if err := s.SetJobState(ctx, j1.ID, a, scheduler.BuilderJob{State: scheduler.JobDone, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	c3, j3 := claimOf(src, 3, nil) // the same source again: the same job
	if j3.ID != j1.ID {
		t.Fatalf("job ids %s and %s differ", j3.ID, j1.ID)
	}
	added, err = s.PutClaims(ctx, []scheduler.ClaimRecord{c1, c3}, []lantern.Job{j3})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true}; !cmp.Equal(added, want) {
		t.Errorf("PutClaims(c1, c3) added = %v, want %v", added, want)
	}
	job, err := s.Job(ctx, j1.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := &scheduler.JobRecord{Job: j1, Builders: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobDone, Updated: t0}}}
	if diff := cmp.Diff(want, job, opts); diff != "" {
		t.Errorf("Job(j1) (-want +got):\n%s", diff)
	}
	c3got, err := s.Claim(ctx, c3.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(c3got.Jobs, []string{j1.ID}) {
		t.Errorf("Claim(c3).Jobs = %v, want [%s]", c3got.Jobs, j1.ID)
	}
	jobs, _, err := s.Jobs(ctx, "", scheduler.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Errorf("Jobs() = %d jobs, want 2", len(jobs))
	}

	claims, err := s.ClaimsOf(ctx, src.Name, src.Version)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]scheduler.ClaimRecord{c1, c3}, claims, opts); diff != "" {
		t.Errorf("ClaimsOf(%s) (-want +got):\n%s", src, diff)
	}
	for _, nv := range [][2]string{{"example.com/tool", "v1"}, {"example.com", "tool"}, {"nothing", "v0"}} {
		if claims, err := s.ClaimsOf(ctx, nv[0], nv[1]); err != nil || len(claims) != 0 {
			t.Errorf("ClaimsOf(%q, %q) = %d claims, %v; want none", nv[0], nv[1], len(claims), err)
		}
	}

	if _, err := s.Claim(ctx, digest("no such claim")); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("Claim(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.Job(ctx, "jnothing"); !errors.Is(err, scheduler.ErrNotFound) || !strings.Contains(err.Error(), "jnothing") {
		t.Errorf("Job(unknown) = %v, want ErrNotFound naming the job", err)
	}
}

func TestPutClaimsInvalid(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	good, job := claimOf(source("a", "v1"), 1, nil)
	noEnvelope := good
	noEnvelope.Envelope = lantern.Digest{}
	nul := good
	nul.Claim.Source.Name = "a\x00b"
	for name, tc := range map[string]struct {
		claims []scheduler.ClaimRecord
		jobs   []lantern.Job
	}{
		"no envelope": {[]scheduler.ClaimRecord{good, noEnvelope}, []lantern.Job{job}},
		"0 in name":   {[]scheduler.ClaimRecord{good, nul}, []lantern.Job{job}},
		"no job id":   {[]scheduler.ClaimRecord{good}, []lantern.Job{job, {}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.PutClaims(ctx, tc.claims, tc.jobs); err == nil {
				t.Fatal("PutClaims = nil, want an error")
			}
			if _, err := s.Claim(ctx, good.Envelope); !errors.Is(err, scheduler.ErrNotFound) {
				t.Errorf("after a failed PutClaims, Claim(good) = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestSetJobState(t *testing.T) {
	a, b := digest("builder a"), digest("builder b")
	env1, env2 := digest("envelope 1"), digest("envelope 2")
	type set struct {
		builder lantern.Digest
		st      scheduler.BuilderJob
	}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	tests := []struct {
		name string
		sets []set
		want map[lantern.Digest]scheduler.BuilderJob
	}{{
		name: "queued then done",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobQueued, Updated: at(1)}}, {a, scheduler.BuilderJob{State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(2)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(2)}},
	}, {
		name: "done is not queued again",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(1)}}, {a, scheduler.BuilderJob{State: scheduler.JobQueued, Updated: at(2)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(2)}},
	}, {
		name: "dead does not overwrite done",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobDone, Updated: at(1)}}, {a, scheduler.BuilderJob{State: scheduler.JobDead, Reason: "gave up", Updated: at(2)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobDone, Updated: at(2)}},
	}, {
		name: "dead does not overwrite failed",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobFailed, Reason: "exit 2", Updated: at(1)}}, {a, scheduler.BuilderJob{State: scheduler.JobDead, Reason: "gave up", Updated: at(2)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobFailed, Reason: "exit 2", Updated: at(2)}},
	}, {
		name: "dead is not queued again",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobDead, Reason: "gave up", Updated: at(1)}}, {a, scheduler.BuilderJob{State: scheduler.JobQueued, Updated: at(2)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobDead, Reason: "gave up", Updated: at(2)}},
	}, {
		name: "a late answer overwrites dead",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobDead, Reason: "gave up", Updated: at(1)}}, {a, scheduler.BuilderJob{State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(2)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(2)}},
	}, {
		name: "done then failed is failed",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(1)}}, {a, scheduler.BuilderJob{State: scheduler.JobFailed, Reason: "exit 2", Attestations: []lantern.Digest{env2}, Updated: at(2)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobFailed, Reason: "exit 2", Attestations: []lantern.Digest{env1, env2}, Updated: at(2)}},
	}, {
		name: "failed then done is failed",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobFailed, Reason: "exit 2", Attestations: []lantern.Digest{env2}, Updated: at(1)}}, {a, scheduler.BuilderJob{State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(2)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobFailed, Reason: "exit 2", Attestations: []lantern.Digest{env2, env1}, Updated: at(2)}},
	}, {
		name: "the same answer twice is recorded once",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(1)}}, {a, scheduler.BuilderJob{State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(1)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobDone, Attestations: []lantern.Digest{env1}, Updated: at(1)}},
	}, {
		name: "builders are separate",
		sets: []set{{a, scheduler.BuilderJob{State: scheduler.JobDone, Updated: at(1)}}, {b, scheduler.BuilderJob{State: scheduler.JobDead, Updated: at(2)}}},
		want: map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobDone, Updated: at(1)}, b: {State: scheduler.JobDead, Updated: at(2)}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := openStore(t)
			c, j := claimOf(source("a", "v1"), 1, nil)
			if _, err := s.PutClaims(ctx, []scheduler.ClaimRecord{c}, []lantern.Job{j}); err != nil {
				t.Fatal(err)
			}
			for _, st := range tt.sets {
				if err := s.SetJobState(ctx, j.ID, st.builder, st.st); err != nil {
					t.Fatalf("SetJobState(%s) = %v", st.st.State, err)
				}
			}
			got, err := s.Job(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.Builders, opts); diff != "" {
				t.Errorf("Builders (-want +got):\n%s", diff)
			}
			// The state index agrees with the record.
			for _, st := range []scheduler.JobState{scheduler.JobQueued, scheduler.JobDone, scheduler.JobFailed, scheduler.JobDead} {
				jobs, _, err := s.Jobs(ctx, st, scheduler.Page{})
				if err != nil {
					t.Fatal(err)
				}
				listed := len(jobs) == 1
				has := false
				for _, bj := range got.Builders {
					has = has || bj.State == st
				}
				if listed != has {
					t.Errorf("Jobs(%s) lists the job: %v, its builders' states %v", st, listed, got.Builders)
				}
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		ctx := t.Context()
		s := openStore(t)
		if err := s.SetJobState(ctx, "jnothing", a, scheduler.BuilderJob{State: scheduler.JobDone}); !errors.Is(err, scheduler.ErrNotFound) {
			t.Errorf("SetJobState(unknown job) = %v, want ErrNotFound", err)
		}
		if err := s.SetJobState(ctx, "j", a, scheduler.BuilderJob{State: "running"}); err == nil || !strings.Contains(err.Error(), `"running"`) {
			t.Errorf(`SetJobState(state "running") = %v, want an error naming the state`, err)
		}
		if err := s.SetJobState(ctx, "j", lantern.Digest{}, scheduler.BuilderJob{State: scheduler.JobDone}); err == nil {
			t.Errorf("SetJobState(no builder) = nil, want an error")
		}
	})
}

func TestJobsPaging(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	a, b := digest("builder a"), digest("builder b")
	var jobs []lantern.Job
	var claims []scheduler.ClaimRecord
	for i := range 7 {
		c, j := claimOf(source("tool", fmt.Sprintf("v1.0.%d", i)), i, nil)
		claims, jobs = append(claims, c), append(jobs, j)
	}
	if _, err := s.PutClaims(ctx, claims, jobs); err != nil {
		t.Fatal(err)
	}
	ids := func(rs []scheduler.JobRecord) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Job.ID)
		}
		return out
	}
	// all pages through Jobs(state) count at a time.
	all := func(state scheduler.JobState, count int) (pages [][]string) {
		t.Helper()
		page := scheduler.Page{Count: count}
		for {
			rs, next, err := s.Jobs(ctx, state, page)
			if err != nil {
				t.Fatalf("Jobs(%q, %+v) = %v", state, page, err)
			}
			pages = append(pages, ids(rs))
			if next == "" {
				return pages
			}
			page.Cursor = next
			if len(pages) > 100 {
				t.Fatal("Jobs never ends")
			}
		}
	}
	id := func(i ...int) []string {
		var out []string
		for _, n := range i {
			out = append(out, jobs[n].ID)
		}
		return out
	}
	if diff := cmp.Diff([][]string{id(6, 5, 4), id(3, 2, 1), id(0)}, all("", 3)); diff != "" {
		t.Errorf("Jobs pages of 3, newest first (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{id(6, 5, 4, 3, 2, 1, 0)}, all("", 7)); diff != "" {
		t.Errorf("Jobs page of 7 (-want +got):\n%s", diff)
	}

	for _, i := range []int{1, 3, 5} {
		if err := s.SetJobState(ctx, jobs[i].ID, a, scheduler.BuilderJob{State: scheduler.JobDone}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetJobState(ctx, jobs[5].ID, b, scheduler.BuilderJob{State: scheduler.JobFailed}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetJobState(ctx, jobs[3].ID, b, scheduler.BuilderJob{State: scheduler.JobQueued}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetJobState(ctx, jobs[1].ID, a, scheduler.BuilderJob{State: scheduler.JobFailed}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		state scheduler.JobState
		want  [][]string
	}{
		{scheduler.JobDone, [][]string{id(5, 3)}},
		{scheduler.JobFailed, [][]string{id(5, 1)}},
		{scheduler.JobQueued, [][]string{id(6, 4), id(3, 2), id(0)}},
		{scheduler.JobDead, [][]string{nil}},
	} {
		if diff := cmp.Diff(tt.want, all(tt.state, 2)); diff != "" {
			t.Errorf("Jobs(%s) pages of 2 (-want +got):\n%s", tt.state, diff)
		}
	}

	if _, _, err := s.Jobs(ctx, "running", scheduler.Page{}); err == nil {
		t.Error(`Jobs("running") = nil error, want one`)
	}
	_, next, err := s.Jobs(ctx, scheduler.JobQueued, scheduler.Page{Count: 1})
	if err != nil || next == "" {
		t.Fatalf("Jobs(queued, 1) = %q, %v", next, err)
	}
	if _, _, err := s.Jobs(ctx, scheduler.JobDone, scheduler.Page{Cursor: next}); err == nil || !strings.Contains(err.Error(), "cursor") {
		t.Errorf("Jobs(done) with a cursor of Jobs(queued) = %v, want a cursor error", err)
	}
}

func TestPutAttestation(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	src := source("example.com/tool", "v1.2.3")
	published := digest("published binary")
	c, j := claimOf(src, 1, map[string]lantern.Digest{"linux-amd64": published})
	if _, err := s.PutClaims(ctx, []scheduler.ClaimRecord{c}, []lantern.Job{j}); err != nil {
		t.Fatal(err)
	}
	a, b := digest("builder a"), digest("builder b")

	ra := rebuild(src, "linux-amd64", a, published, 1)
	v1 := record(t, s, ra, published)
	got, err := s.Attestation(ctx, ra.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&ra, got, opts); diff != "" {
		t.Errorf("Attestation (-want +got):\n%s", diff)
	}
	job, err := s.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[lantern.Digest]scheduler.BuilderJob{a: {State: scheduler.JobDone, Attestations: []lantern.Digest{ra.Envelope}, Updated: ra.Received}}
	if diff := cmp.Diff(want, job.Builders, opts); diff != "" {
		t.Errorf("job builders after a rebuild (-want +got):\n%s", diff)
	}
	verdicts, err := s.Verdicts(ctx, src.Name, src.Version)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lantern.Verdict{v1}, verdicts, opts); diff != "" {
		t.Errorf("Verdicts (-want +got):\n%s", diff)
	}
	if v1.Status != lantern.StatusPending {
		t.Errorf("verdict after one rebuild = %s, want pending", v1.Status)
	}

	// Duplicates store nothing.
	again := ra
	again.Received = t0.Add(time.Hour)
	err = s.PutAttestation(ctx, again, []lantern.Verdict{v1})
	if !errors.Is(err, scheduler.ErrDuplicate) || !strings.Contains(err.Error(), "envelope already recorded") {
		t.Errorf("PutAttestation(same envelope) = %v, want ErrDuplicate, envelope already recorded", err)
	}
	second := rebuild(src, "linux-amd64", a, digest("something else"), 2)
	err = s.PutAttestation(ctx, second, []lantern.Verdict{v1})
	if !errors.Is(err, scheduler.ErrDuplicate) || !strings.Contains(err.Error(), fmt.Sprintf("already answered job %s for label %q", j.ID, "linux-amd64")) {
		t.Errorf("PutAttestation(second answer) = %v, want ErrDuplicate, already answered job", err)
	}
	if _, err := s.Attestation(ctx, second.Envelope); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("Attestation(refused duplicate) = %v, want ErrNotFound", err)
	}
	if atts, _, err := s.AttestationsByBuilder(ctx, a, scheduler.Page{}); err != nil || len(atts) != 1 {
		t.Errorf("AttestationsByBuilder(a) = %d, %v; want 1 (the duplicates stored nothing)", len(atts), err)
	}
	if atts, _, err := s.AttestationsByArtefact(ctx, second.Output, lantern.Digest{}, scheduler.Page{}); err != nil || len(atts) != 0 {
		t.Errorf("AttestationsByArtefact(refused output) = %d, %v; want none", len(atts), err)
	}
	if got, err := s.Attestation(ctx, ra.Envelope); err != nil || !got.Received.Equal(ra.Received) {
		t.Errorf("Attestation(ra) after a duplicate = %v, %v; want it unchanged", got, err)
	}

	// Builder b agrees: reproduced. Then builder a answers another label,
	// and builder b fails that one.
	rb := rebuild(src, "linux-amd64", b, published, 3)
	v2 := record(t, s, rb, published)
	if v2.Status != lantern.StatusReproduced {
		t.Errorf("verdict after two matching rebuilds = %s, want reproduced", v2.Status)
	}
	ra2 := rebuild(src, "linux-arm64", a, digest("arm binary"), 4)
	record(t, s, ra2, lantern.Digest{})
	fb := rebuild(src, "linux-arm64", b, lantern.Digest{}, 5)
	v4 := record(t, s, fb, lantern.Digest{})

	job, err = s.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	want = map[lantern.Digest]scheduler.BuilderJob{
		a: {State: scheduler.JobDone, Attestations: []lantern.Digest{ra.Envelope, ra2.Envelope}, Updated: ra2.Received},
		b: {State: scheduler.JobFailed, Reason: "exit status 2", Attestations: []lantern.Digest{rb.Envelope, fb.Envelope}, Updated: fb.Received},
	}
	if diff := cmp.Diff(want, job.Builders, opts); diff != "" {
		t.Errorf("job builders (-want +got):\n%s", diff)
	}
	verdicts, err = s.Verdicts(ctx, src.Name, src.Version)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lantern.Verdict{v2, v4}, verdicts, opts); diff != "" {
		t.Errorf("Verdicts (-want +got):\n%s", diff)
	}
	outcomes, err := s.Outcomes(ctx, j.ID, "linux-arm64")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lantern.Outcome{ra2.Outcome(), fb.Outcome()}, outcomes, opts); diff != "" {
		t.Errorf("Outcomes(linux-arm64) (-want +got):\n%s", diff)
	}
	if labels, err := s.OutcomeLabels(ctx, j.ID); err != nil || !cmp.Equal(labels, []string{"linux-amd64", "linux-arm64"}) {
		t.Errorf("OutcomeLabels = %q, %v; want linux-amd64, linux-arm64", labels, err)
	}
	for _, label := range []string{"linux", "linux-arm", ""} {
		if outcomes, err := s.Outcomes(ctx, j.ID, label); err != nil || len(outcomes) != 0 {
			t.Errorf("Outcomes(%q) = %v, %v; want none", label, outcomes, err)
		}
	}

	// An attestation of a job the store does not have is kept all the same.
	stray := rebuild(source("elsewhere", "v1"), "bin", a, digest("stray"), 6)
	record(t, s, stray, lantern.Digest{})
	if _, err := s.Attestation(ctx, stray.Envelope); err != nil {
		t.Errorf("Attestation(stray) = %v", err)
	}

	if _, err := s.Attestation(ctx, digest("nothing")); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("Attestation(unknown) = %v, want ErrNotFound", err)
	}
}

func TestPutAttestationInvalid(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	src := source("tool", "v1")
	good := rebuild(src, "bin", digest("builder"), digest("out"), 1)
	verdict := func(src lantern.Source, job, label string, published lantern.Digest) lantern.Verdict {
		v := lantern.Decide(src, label, published, 2, []lantern.Outcome{good.Outcome()})
		v.Job = job
		return v
	}
	v := verdict(src, good.JobID, "bin", lantern.Digest{})
	noOutput := good
	noOutput.Output = lantern.Digest{}
	tests := []struct {
		name string
		a    scheduler.AttestationRecord
		vs   []lantern.Verdict
		want string
	}{
		{"no envelope", func() scheduler.AttestationRecord { a := good; a.Envelope = lantern.Digest{}; return a }(), []lantern.Verdict{v}, "envelope"},
		{"no builder", func() scheduler.AttestationRecord { a := good; a.Builder = lantern.Digest{}; return a }(), []lantern.Verdict{v}, "builder"},
		{"rebuild without output", noOutput, []lantern.Verdict{v}, "output"},
		{"unknown kind", func() scheduler.AttestationRecord { a := good; a.Kind = lantern.KindYank; return a }(), []lantern.Verdict{v}, "kind"},
		{"verdict on another source", good, []lantern.Verdict{verdict(source("tool", "v2"), good.JobID, "bin", lantern.Digest{})}, "verdicts are on"},
		{"verdict on another label", good, []lantern.Verdict{verdict(src, good.JobID, "lib", lantern.Digest{})}, "verdicts are on"},
		{"verdict on another job", good, []lantern.Verdict{verdict(src, "jother", "bin", lantern.Digest{})}, "verdicts are on"},
		{"verdict without a job", good, []lantern.Verdict{verdict(src, "", "bin", lantern.Digest{})}, "no job"},
		{"verdicts of two labels", good, []lantern.Verdict{v, verdict(src, good.JobID, "lib", digest("p"))}, "together"},
		{"two verdicts on one published artefact", good, []lantern.Verdict{v, v}, "two verdicts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.PutAttestation(ctx, tt.a, tt.vs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("PutAttestation = %v, want an error about %s", err, tt.want)
			}
		})
	}
	if _, err := s.Attestation(ctx, good.Envelope); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("Attestation after refusals = %v, want ErrNotFound", err)
	}
	// An attestation may come with no verdict.
	f := rebuild(src, "", digest("builder"), lantern.Digest{}, 2)
	if err := s.PutAttestation(ctx, f, nil); err != nil {
		t.Errorf("PutAttestation(failure, no verdict) = %v", err)
	}
}

func TestAttestationPaging(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	builders := []lantern.Digest{digest("builder a"), digest("builder b"), digest("builder c")}
	out, other := digest("artefact"), digest("other artefact")
	src := source("tool", "v1")
	var all []scheduler.AttestationRecord
	byBuilder := map[lantern.Digest][]lantern.Digest{}
	for i := range 25 {
		b := builders[i%3]
		a := rebuild(src, fmt.Sprintf("bin%d", i), b, out, i)
		record(t, s, a, lantern.Digest{})
		all = append(all, a)
		byBuilder[b] = append(byBuilder[b], a.Envelope)
		if i%5 == 0 {
			record(t, s, rebuild(source("lib", "v2"), fmt.Sprintf("bin%d", i), b, other, 100+i), lantern.Digest{})
		}
	}

	// pages lists a paged query count at a time.
	pages := func(t *testing.T, count int, list func(scheduler.Page) ([]scheduler.AttestationRecord, string, error)) (got []lantern.Digest, sizes []int) {
		t.Helper()
		page := scheduler.Page{Count: count}
		for {
			atts, next, err := list(page)
			if err != nil {
				t.Fatalf("page %+v: %v", page, err)
			}
			got, sizes = append(got, envelopes(atts)...), append(sizes, len(atts))
			if next == "" {
				return got, sizes
			}
			page.Cursor = next
			if len(sizes) > 100 {
				t.Fatal("paging never ends")
			}
		}
	}
	byArtefact := func(builder lantern.Digest) func(scheduler.Page) ([]scheduler.AttestationRecord, string, error) {
		return func(p scheduler.Page) ([]scheduler.AttestationRecord, string, error) {
			return s.AttestationsByArtefact(ctx, out, builder, p)
		}
	}

	t.Run("by artefact", func(t *testing.T) {
		got, sizes := pages(t, 10, byArtefact(lantern.Digest{}))
		if diff := cmp.Diff(envelopes(all), got); diff != "" {
			t.Errorf("AttestationsByArtefact, oldest first (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int{10, 10, 5}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
		if _, sizes := pages(t, 5, byArtefact(lantern.Digest{})); !cmp.Equal(sizes, []int{5, 5, 5, 5, 5}) {
			t.Errorf("pages of 5 of 25 = %v, want 5 full pages and no empty one", sizes)
		}
		first, _, err := s.AttestationsByArtefact(ctx, out, lantern.Digest{}, scheduler.Page{})
		if err != nil || len(first) != 25 {
			t.Errorf("AttestationsByArtefact(default count) = %d, %v; want all 25", len(first), err)
		}
	})
	t.Run("by artefact and builder", func(t *testing.T) {
		b := builders[1]
		got, sizes := pages(t, 3, byArtefact(b))
		if diff := cmp.Diff(byBuilder[b], got); diff != "" {
			t.Errorf("AttestationsByArtefact(builder b) (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int{3, 3, 2}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
		none, next, err := s.AttestationsByArtefact(ctx, out, digest("builder z"), scheduler.Page{})
		if err != nil || len(none) != 0 || next != "" {
			t.Errorf("AttestationsByArtefact(unknown builder) = %d, %q, %v; want none", len(none), next, err)
		}
	})
	t.Run("by source", func(t *testing.T) {
		got, _ := pages(t, 7, func(p scheduler.Page) ([]scheduler.AttestationRecord, string, error) {
			return s.AttestationsBySource(ctx, "tool", "v1", p)
		})
		if diff := cmp.Diff(envelopes(all), got); diff != "" {
			t.Errorf("AttestationsBySource (-want +got):\n%s", diff)
		}
		got, _ = pages(t, 7, func(p scheduler.Page) ([]scheduler.AttestationRecord, string, error) {
			return s.AttestationsBySource(ctx, "lib", "v2", p)
		})
		if len(got) != 5 {
			t.Errorf("AttestationsBySource(lib@v2) = %d, want 5", len(got))
		}
	})
	t.Run("by builder, newest first", func(t *testing.T) {
		b := builders[0]
		got, _ := pages(t, 4, func(p scheduler.Page) ([]scheduler.AttestationRecord, string, error) {
			return s.AttestationsByBuilder(ctx, b, p)
		})
		var want []lantern.Digest
		for i := 24; i >= 0; i-- {
			if i%3 == 0 {
				if i%5 == 0 {
					want = append(want, rebuild(source("lib", "v2"), fmt.Sprintf("bin%d", i), b, other, 100+i).Envelope)
				}
				want = append(want, all[i].Envelope)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("AttestationsByBuilder (-want +got):\n%s", diff)
		}
	})
	t.Run("bad cursors", func(t *testing.T) {
		_, next, err := s.AttestationsByArtefact(ctx, out, lantern.Digest{}, scheduler.Page{Count: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, cursor := range []string{"not base64!", "AAAA", next} {
			if _, _, err := s.AttestationsByArtefact(ctx, other, lantern.Digest{}, scheduler.Page{Cursor: cursor}); err == nil || !strings.Contains(err.Error(), "cursor") {
				t.Errorf("AttestationsByArtefact(cursor %q) = %v, want a cursor error", cursor, err)
			}
		}
	})
	t.Run("page counts", func(t *testing.T) {
		for in, want := range map[int]int{-1: 50, 0: 50, 1: 1, 50: 50, 1000: 1000, 1001: 1000, 1 << 30: 1000} {
			if got := pageCount(in); got != want {
				t.Errorf("pageCount(%d) = %d, want %d", in, got, want)
			}
		}
	})
}

func TestVerdictsOfArtefact(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	a, b := digest("builder a"), digest("builder b")
	published, rebuilt, never := digest("published"), digest("rebuilt"), digest("never built")
	tool, lib := source("tool", "v1"), source("lib", "v2")

	// tool's bin: published P; a gets P, b gets R (a mismatch).
	record(t, s, rebuild(tool, "bin", a, published, 1), published)
	vTool := record(t, s, rebuild(tool, "bin", b, rebuilt, 2), published)
	// lib's bin: nobody published; a gets R.
	vLib := record(t, s, rebuild(lib, "bin", a, rebuilt, 3), lantern.Digest{})
	// tool's doc: published N, which no builder got yet.
	vDoc := record(t, s, rebuild(tool, "doc", a, digest("doc"), 4), never)

	for _, tt := range []struct {
		artefact lantern.Digest
		want     []lantern.Verdict
	}{
		{published, []lantern.Verdict{vTool}},
		{rebuilt, []lantern.Verdict{vLib, vTool}},
		{never, []lantern.Verdict{vDoc}},
		{digest("unknown"), nil},
	} {
		got, err := s.VerdictsOfArtefact(ctx, tt.artefact)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got, opts); diff != "" {
			t.Errorf("VerdictsOfArtefact(%s) (-want +got):\n%s", tt.artefact.Short(), diff)
		}
	}
	if vTool.Status != lantern.StatusMismatch {
		t.Errorf("tool verdict = %s, want mismatch", vTool.Status)
	}
}

func TestDeadLettersAndBuilders(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	a, b := digest("builder a"), digest("builder b")
	var want []scheduler.DeadLetter
	for i := range 5 {
		d := scheduler.DeadLetter{JobID: fmt.Sprintf("j%d", i), Builder: []lantern.Digest{a, b}[i%2], Deliveries: 5, Time: t0.Add(time.Duration(i) * time.Minute)}
		added, err := s.PutDeadLetter(ctx, d)
		if err != nil || !added {
			t.Fatalf("PutDeadLetter(%d) = %v, %v; want true", i, added, err)
		}
		want = append([]scheduler.DeadLetter{d}, want...)
	}
	added, err := s.PutDeadLetter(ctx, scheduler.DeadLetter{JobID: "j3", Builder: b, Deliveries: 6, Time: t0.Add(time.Hour)})
	if err != nil || added {
		t.Errorf("PutDeadLetter(again) = %v, %v; want false", added, err)
	}
	if _, err := s.PutDeadLetter(ctx, scheduler.DeadLetter{JobID: "j9"}); err == nil {
		t.Error("PutDeadLetter(no builder) = nil error, want one")
	}
	var got []scheduler.DeadLetter
	page := scheduler.Page{Count: 2}
	for n := 0; ; n++ {
		ds, next, err := s.DeadLetters(ctx, page)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
		if next == "" {
			break
		}
		page.Cursor = next
		if n > 10 {
			t.Fatal("DeadLetters never ends")
		}
	}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("DeadLetters, newest first (-want +got):\n%s", diff)
	}

	ra := scheduler.BuilderRecord{ID: a, PublicKey: []byte("-----BEGIN PUBLIC KEY-----\na\n"), Name: "alice", Added: t0}
	rb := scheduler.BuilderRecord{ID: b, PublicKey: []byte("-----BEGIN PUBLIC KEY-----\nb\n"), Added: t0.Add(time.Minute)}
	for _, r := range []scheduler.BuilderRecord{ra, rb} {
		if err := s.PutBuilder(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	renamed := ra
	renamed.Name, renamed.Added = "alice's farm", t0.Add(time.Hour)
	if err := s.PutBuilder(ctx, renamed); err != nil {
		t.Fatal(err)
	}
	builders, err := s.Builders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	renamed.Added = ra.Added
	wantB := []scheduler.BuilderRecord{renamed, rb}
	if a.Hex() > b.Hex() {
		wantB = []scheduler.BuilderRecord{rb, renamed}
	}
	if diff := cmp.Diff(wantB, builders, opts); diff != "" {
		t.Errorf("Builders (-want +got):\n%s", diff)
	}
	if err := s.PutBuilder(ctx, scheduler.BuilderRecord{Name: "nobody"}); err == nil {
		t.Error("PutBuilder(no id) = nil, want an error")
	}
}

// fill puts one of everything in s and returns what a snapshot of s should
// show.
func fill(t *testing.T, s *Store) snapshot {
	t.Helper()
	ctx := t.Context()
	src := source("tool", "v1")
	c, j := claimOf(src, 1, map[string]lantern.Digest{"bin": digest("out")})
	if _, err := s.PutClaims(ctx, []scheduler.ClaimRecord{c}, []lantern.Job{j}); err != nil {
		t.Fatal(err)
	}
	record(t, s, rebuild(src, "bin", digest("builder a"), digest("out"), 1), digest("out"))
	record(t, s, rebuild(src, "bin", digest("builder b"), lantern.Digest{}, 2), digest("out"))
	if _, err := s.PutDeadLetter(ctx, scheduler.DeadLetter{JobID: j.ID, Builder: digest("builder c"), Deliveries: 5, Time: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBuilder(ctx, scheduler.BuilderRecord{ID: digest("builder a"), Name: "a", Added: t0}); err != nil {
		t.Fatal(err)
	}
	return take(t, s)
}

// snapshot is everything a store's queries return about what fill put in.
type snapshot struct {
	Claims       []scheduler.ClaimRecord
	Jobs         []scheduler.JobRecord
	Done, Failed []scheduler.JobRecord
	Atts         []scheduler.AttestationRecord
	BySource     []scheduler.AttestationRecord
	ByBuilder    []scheduler.AttestationRecord
	Outcomes     []lantern.Outcome
	Verdicts     []lantern.Verdict
	OfArtefact   []lantern.Verdict
	Dead         []scheduler.DeadLetter
	Builders     []scheduler.BuilderRecord
}

func take(t *testing.T, s *Store) snapshot {
	t.Helper()
	ctx := t.Context()
	var sn snapshot
	var errs []error
	must := func(err error) { errs = append(errs, err) }
	var err error
	sn.Claims, err = s.ClaimsOf(ctx, "tool", "v1")
	must(err)
	sn.Jobs, _, err = s.Jobs(ctx, "", scheduler.Page{})
	must(err)
	sn.Done, _, err = s.Jobs(ctx, scheduler.JobDone, scheduler.Page{})
	must(err)
	sn.Failed, _, err = s.Jobs(ctx, scheduler.JobFailed, scheduler.Page{})
	must(err)
	sn.Atts, _, err = s.AttestationsByArtefact(ctx, digest("out"), lantern.Digest{}, scheduler.Page{})
	must(err)
	sn.BySource, _, err = s.AttestationsBySource(ctx, "tool", "v1", scheduler.Page{})
	must(err)
	sn.ByBuilder, _, err = s.AttestationsByBuilder(ctx, digest("builder b"), scheduler.Page{})
	must(err)
	sn.Outcomes, err = s.Outcomes(ctx, lantern.JobID(source("tool", "v1"), "go", nil, nil, lantern.Digest{}), "bin")
	must(err)
	sn.Verdicts, err = s.Verdicts(ctx, "tool", "v1")
	must(err)
	sn.OfArtefact, err = s.VerdictsOfArtefact(ctx, digest("out"))
	must(err)
	sn.Dead, _, err = s.DeadLetters(ctx, scheduler.Page{})
	must(err)
	sn.Builders, err = s.Builders(ctx)
	must(err)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return sn
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lantern.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	want := fill(t, s)
	for name, n := range map[string]int{"claims": len(want.Claims), "jobs": len(want.Jobs), "done": len(want.Done), "failed": len(want.Failed),
		"attestations": len(want.Atts), "by source": len(want.BySource), "by builder": len(want.ByBuilder), "outcomes": len(want.Outcomes),
		"verdicts": len(want.Verdicts), "of artefact": len(want.OfArtefact), "dead letters": len(want.Dead), "builders": len(want.Builders)} {
		if n == 0 {
			t.Errorf("fill stored no %s", name)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if diff := cmp.Diff(want, take(t, s), opts); diff != "" {
		t.Errorf("after reopening (-want +got):\n%s", diff)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lantern.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = Open(path)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another lantern scheduler is using "+path) {
		t.Errorf("Open(locked) = %v, want ErrLocked saying another lantern scheduler is using %s", err, path)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open(locked) took %s, want about %s", d, lockTimeout)
	}
}

func TestOpenOtherLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lantern.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put([]byte("layout"), []byte("0")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "reindex") {
		t.Errorf("Open(layout 0) = %v, want an error saying to reindex", err)
	}
}

func TestReset(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	fill(t, s)
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snapshot{}, take(t, s), opts); diff != "" {
		t.Errorf("after Reset (-want +got):\n%s", diff)
	}
	// The emptied store takes everything again, and ids and duplicates
	// start over.
	want := fill(t, s)
	if diff := cmp.Diff(want, take(t, s), opts); diff != "" {
		t.Errorf("refilled after Reset (-want +got):\n%s", diff)
	}
	if len(want.Atts) != 1 || len(want.Outcomes) != 2 {
		t.Errorf("refilled: %d attestations of the artefact, %d outcomes; want 1 and 2", len(want.Atts), len(want.Outcomes))
	}
}

func TestCanceled(t *testing.T) {
	s := openStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.PutClaims(ctx, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("PutClaims(canceled) = %v, want context.Canceled", err)
	}
	if _, err := s.Claim(ctx, digest("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Claim(canceled) = %v, want context.Canceled", err)
	}
}
