package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// ErrLocked reports that another process holds the store's file lock.
var ErrLocked = errors.New("store file is locked")

// layout is the version of the bucket layout described in the package doc.
// Files of other versions are rebuilt from the streams (ErrLayout).
const layout = "3"

// ErrLayout reports a store file of another layout version: the store is
// to be rebuilt from the streams (lantern scheduler --reindex).
var ErrLayout = errors.New("store file of another layout")

// lockTimeout is how long Open waits for another process to let go of the
// file before it gives up.
const lockTimeout = time.Second

// Bucket names.
var (
	bClaims           = []byte("claims")
	bClaimsSource     = []byte("claims.source")
	bJobs             = []byte("jobs")
	bJobsTime         = []byte("jobs.time")
	bJobsState        = []byte("jobs.state")
	bAtts             = []byte("atts")
	bAttsArtefact     = []byte("atts.artefact")
	bAttsArtBuilder   = []byte("atts.artefact.builder")
	bAttsSource       = []byte("atts.source")
	bAttsBuilder      = []byte("atts.builder")
	bAttsAnswer       = []byte("atts.answer")
	bOutcomes         = []byte("outcomes")
	bVerdicts         = []byte("verdicts")
	bVerdictsArtefact = []byte("verdicts.artefact")
	bDead             = []byte("dead")
	bDeadTime         = []byte("dead.time")
	bBuilders         = []byte("builders")
	bSources          = []byte("sources")
	bSourcesSeq       = []byte("sources.seq")
	bSourcesDigest    = []byte("sources.digest")
	bDiffs            = []byte("diffs")
	bDiffsPending     = []byte("diffs.pending")
	bMeta             = []byte("meta")
)

// dataBuckets are the buckets Reset empties: all but meta.
var dataBuckets = [][]byte{
	bClaims, bClaimsSource,
	bJobs, bJobsTime, bJobsState,
	bAtts, bAttsArtefact, bAttsArtBuilder, bAttsSource, bAttsBuilder, bAttsAnswer,
	bOutcomes, bVerdicts, bVerdictsArtefact,
	bDead, bDeadTime,
	bBuilders,
	bSources, bSourcesSeq, bSourcesDigest,
	bDiffs, bDiffsPending,
}

// Store is a [scheduler.Store] in one bbolt file. Its methods may be called
// from many goroutines; bbolt runs one write transaction at a time and any
// number of reads beside it.
type Store struct {
	db *bolt.DB
}

var _ scheduler.Store = (*Store)(nil)

// Open opens the store at path, creating the file and its buckets if they
// are not there. It waits a second for the file lock and then fails with
// [ErrLocked]: only one scheduler may use a store.
func Open(path string) (*Store, error) {
	return open(path, lockTimeout)
}

func open(path string, timeout time.Duration) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		// The hashmap freelist stays fast when the file is large and
		// fragmented; the array one degrades.
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open store: another lantern scheduler is using %s: stop it, or give this one another data dir: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		v := meta.Get([]byte("layout"))
		switch {
		case v == nil:
			if err := meta.Put([]byte("layout"), []byte(layout)); err != nil {
				return err
			}
		case string(v) != layout:
			return fmt.Errorf("%w: the file has layout version %q, this lantern reads %q: rebuild it from the streams with lantern scheduler --reindex", ErrLayout, v, layout)
		}
		for _, name := range dataBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// CheckUnlocked reports ErrLocked when another process holds the file at
// path (a running scheduler), and nil otherwise: when the file is free,
// missing, or too damaged to open.
func CheckUnlocked(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("another lantern scheduler is using %s: stop it first: %w", path, ErrLocked)
	}
	if err == nil {
		db.Close()
	}
	return nil
}

// Close closes the file and lets go of its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Reset empties every bucket, before a reindex.
func (s *Store) Reset(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range dataBuckets {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reset store: %w", err)
	}
	return nil
}

// Claims and jobs.

// PutClaims stores the claims that are new and the jobs that are new, in one
// transaction; added[i] reports whether claims[i] was new. A job that is
// there already keeps its record and state.
func (s *Store) PutClaims(ctx context.Context, claims []scheduler.ClaimRecord, jobs []lantern.Job) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Encode before the write transaction, which holds the writer lock.
	claimJSON := make([][]byte, len(claims))
	for i, c := range claims {
		if c.Envelope.IsZero() {
			return nil, fmt.Errorf("put claims: claims[%d]: envelope: missing digest", i)
		}
		if err := errors.Join(checkText("name", c.Claim.Source.Name), checkText("version", c.Claim.Source.Version)); err != nil {
			return nil, fmt.Errorf("put claims: claims[%d]: %w", i, err)
		}
		c.Raw = nil // kept verbatim beside the record
		b, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("put claims: claims[%d]: %w", i, err)
		}
		claimJSON[i] = b
	}
	jobJSON := make([][]byte, len(jobs))
	for i, j := range jobs {
		if j.ID == "" {
			return nil, fmt.Errorf("put claims: jobs[%d]: id: missing", i)
		}
		if err := checkText("id", j.ID); err != nil {
			return nil, fmt.Errorf("put claims: jobs[%d]: %w", i, err)
		}
		b, err := json.Marshal(scheduler.JobRecord{Job: j, Builders: map[lantern.Digest]scheduler.BuilderJob{}})
		if err != nil {
			return nil, fmt.Errorf("put claims: jobs[%d]: %w", i, err)
		}
		jobJSON[i] = b
	}

	added := make([]bool, len(claims))
	err := s.db.Update(func(tx *bolt.Tx) error {
		cb, cs := tx.Bucket(bClaims), tx.Bucket(bClaimsSource)
		var key []byte
		for i, c := range claims {
			env := appendDigest(nil, c.Envelope)
			if cb.Get(env) != nil {
				continue
			}
			if err := cb.Put(env, claimJSON[i]); err != nil {
				return err
			}
			if err := cb.Put(rawKey(env), c.Raw); err != nil {
				return err
			}
			seq, err := cb.NextSequence()
			if err != nil {
				return err
			}
			key = appendText(key[:0], c.Claim.Source.Name)
			key = appendText(key, c.Claim.Source.Version)
			key = appendSeq(key, seq)
			if err := cs.Put(key, env); err != nil {
				return err
			}
			if err := noteSource(tx, c.Claim.Source, c.Received); err != nil {
				return err
			}
			added[i] = true
		}
		jb := tx.Bucket(bJobs)
		for i, j := range jobs {
			if jb.Get([]byte(j.ID)) != nil {
				continue
			}
			if err := jb.Put([]byte(j.ID), jobJSON[i]); err != nil {
				return err
			}
			if err := indexJob(tx, j, nil, []scheduler.JobState{scheduler.JobQueued}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("put claims: %w", err)
	}
	return added, nil
}

// Claim returns the claim whose envelope has digest envelope.
func (s *Store) Claim(ctx context.Context, envelope lantern.Digest) (*scheduler.ClaimRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var c scheduler.ClaimRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return getClaim(tx, appendDigest(nil, envelope), &c)
	})
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", envelope, err)
	}
	return &c, nil
}

// ClaimsOf returns the claims about name@version, in the order they were
// stored.
func (s *Store) ClaimsOf(ctx context.Context, name, version string) ([]scheduler.ClaimRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	claims := []scheduler.ClaimRecord{}
	if checkText("name", name) != nil || checkText("version", version) != nil {
		return claims, nil
	}
	prefix := appendText(appendText(nil, name), version)
	err := s.db.View(func(tx *bolt.Tx) error {
		return each(tx.Bucket(bClaimsSource), prefix, func(_, env []byte) error {
			var c scheduler.ClaimRecord
			if err := getClaim(tx, env, &c); err != nil {
				return err
			}
			claims = append(claims, c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("claims of %s@%s: %w", name, version, err)
	}
	return claims, nil
}

// Job returns the job with id and its state per builder.
func (s *Store) Job(ctx context.Context, id string) (*scheduler.JobRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var r scheduler.JobRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return get(tx.Bucket(bJobs), []byte(id), &r)
	})
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	return &r, nil
}

// Jobs pages through jobs, newest first (by the job's Created time). A
// non-empty state selects the jobs where some builder is in that state; a
// job no builder has reported on yet counts as queued.
func (s *Store) Jobs(ctx context.Context, state scheduler.JobState, page scheduler.Page) ([]scheduler.JobRecord, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	bucket, prefix := bJobsTime, []byte(nil)
	if state != "" {
		if _, ok := rank[state]; !ok {
			return nil, "", fmt.Errorf("jobs: state %q: want %q, %q, %q, %q or none", state, scheduler.JobQueued, scheduler.JobDone, scheduler.JobFailed, scheduler.JobDead)
		}
		bucket, prefix = bJobsState, appendText(nil, string(state))
	}
	jobs := []scheduler.JobRecord{}
	var next string
	err := s.db.View(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bJobs)
		var err error
		next, err = scan(tx.Bucket(bucket), prefix, page, true, func(_, id []byte) error {
			var r scheduler.JobRecord
			if err := get(jb, id, &r); err != nil {
				return err
			}
			jobs = append(jobs, r)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("jobs: %w", err)
	}
	return jobs, next, nil
}

// rank orders a builder's states of a job: a state only ever moves to one of
// a higher rank. Dead ranks below done and failed so that an attestation that
// arrives after the consumer gave up still counts; failed ranks above done
// so that a job with several labels that failed one of them shows as
// failed, whichever came first.
var rank = map[scheduler.JobState]int{
	scheduler.JobQueued: 0,
	scheduler.JobDead:   1,
	scheduler.JobDone:   2,
	scheduler.JobFailed: 3,
}

// SetJobState records where builder is with job jobID. A state of a lower
// rank than the recorded one (see the package doc) changes only the list
// of attestations; that is not an error, since messages arrive out of order.
func (s *Store) SetJobState(ctx context.Context, jobID string, builder lantern.Digest, st scheduler.BuilderJob) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if builder.IsZero() {
		return fmt.Errorf("set job %s state: builder: missing key id", jobID)
	}
	if _, ok := rank[st.State]; !ok {
		return fmt.Errorf("set job %s state: state %q: want %q, %q, %q or %q", jobID, st.State, scheduler.JobQueued, scheduler.JobDone, scheduler.JobFailed, scheduler.JobDead)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return setJobState(tx, jobID, builder, st)
	})
	if err != nil {
		return fmt.Errorf("set job %s state: %w", jobID, err)
	}
	return nil
}

// setJobState merges st into builder's state of job jobID and updates the
// state index.
func setJobState(tx *bolt.Tx, jobID string, builder lantern.Digest, st scheduler.BuilderJob) error {
	jb := tx.Bucket(bJobs)
	var r scheduler.JobRecord
	if err := get(jb, []byte(jobID), &r); err != nil {
		return err
	}
	before := jobStates(r)
	cur, ok := r.Builders[builder]
	merged := merge(cur, ok, st)
	if ok && sameBuilderJob(cur, merged) {
		return nil
	}
	if r.Builders == nil {
		r.Builders = map[lantern.Digest]scheduler.BuilderJob{}
	}
	r.Builders[builder] = merged
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := jb.Put([]byte(jobID), b); err != nil {
		return err
	}
	return indexJob(tx, r.Job, before, jobStates(r))
}

// merge returns cur (present if ok) moved on by next: the state of the
// higher rank, the attestations of both.
func merge(cur scheduler.BuilderJob, ok bool, next scheduler.BuilderJob) scheduler.BuilderJob {
	if !ok {
		next.Attestations = dedupe(next.Attestations)
		return next
	}
	m := cur
	m.Attestations = slices.Clone(cur.Attestations)
	for _, d := range next.Attestations {
		if !slices.Contains(m.Attestations, d) {
			m.Attestations = append(m.Attestations, d)
		}
	}
	switch {
	case rank[next.State] > rank[cur.State]:
		m.State, m.Reason = next.State, next.Reason
	case next.State == cur.State && m.Reason == "":
		m.Reason = next.Reason
	}
	if next.Updated.After(m.Updated) {
		m.Updated = next.Updated
	}
	return m
}

func dedupe(ds []lantern.Digest) []lantern.Digest {
	var out []lantern.Digest
	for _, d := range ds {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func sameBuilderJob(a, b scheduler.BuilderJob) bool {
	return a.State == b.State && a.Reason == b.Reason && a.Updated.Equal(b.Updated) && slices.Equal(a.Attestations, b.Attestations)
}

// jobStates returns the distinct states of r's builders, in rank order, or
// queued for a job no builder has reported on.
func jobStates(r scheduler.JobRecord) []scheduler.JobState {
	var states []scheduler.JobState
	for _, bj := range r.Builders {
		if !slices.Contains(states, bj.State) {
			states = append(states, bj.State)
		}
	}
	if len(states) == 0 {
		return []scheduler.JobState{scheduler.JobQueued}
	}
	slices.SortFunc(states, func(a, b scheduler.JobState) int { return rank[a] - rank[b] })
	return states
}

// indexJob writes j's entries in jobs.time (when it is new, before == nil)
// and moves its entries in jobs.state from the states before to after.
func indexJob(tx *bolt.Tx, j lantern.Job, before, after []scheduler.JobState) error {
	id := []byte(j.ID)
	suffix := append(appendTime(nil, j.Created), id...)
	if before == nil {
		if err := tx.Bucket(bJobsTime).Put(suffix, id); err != nil {
			return err
		}
	}
	js := tx.Bucket(bJobsState)
	for _, st := range before {
		if !slices.Contains(after, st) {
			if err := js.Delete(append(appendText(nil, string(st)), suffix...)); err != nil {
				return err
			}
		}
	}
	for _, st := range after {
		if !slices.Contains(before, st) {
			if err := js.Put(append(appendText(nil, string(st)), suffix...), id); err != nil {
				return err
			}
		}
	}
	return nil
}

// Attestations, outcomes and verdicts.

// PutAttestation stores a verified attestation, its index entries and the
// verdicts vs it led to (those of its job and label, replacing the ones
// stored), and moves its builder's state of its job to done (a rebuild) or
// failed (a failed rebuild), all in one transaction. It returns an error
// wrapping [scheduler.ErrDuplicate], and stores nothing, when the envelope
// is there already or the builder already answered the job for a.Label.
// No vs stores no verdict. An attestation whose job is not in the store
// (no job id, or a job from another farm) is stored all the same; it
// updates no job.
func (s *Store) PutAttestation(ctx context.Context, a scheduler.AttestationRecord, vs []lantern.Verdict) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	attJSON, outcomeJSON, err := encodeAttestation(a)
	if err != nil {
		return fmt.Errorf("put attestation %s: %w", a.Envelope, err)
	}
	verdicts, err := encodeVerdicts(vs)
	if err == nil && len(vs) > 0 && (vs[0].Job != a.JobID || vs[0].Label != a.Label || vs[0].Source != a.Source) {
		err = fmt.Errorf("verdicts are on job %s %s label %q, the attestation on job %s %s label %q", vs[0].Job, vs[0].Source, vs[0].Label, a.JobID, a.Source, a.Label)
	}
	if err != nil {
		return fmt.Errorf("put attestation %s: %w", a.Envelope, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := putAttestation(tx, a, attJSON, outcomeJSON); err != nil {
			return err
		}
		return putVerdicts(tx, vs, verdicts, a)
	})
	if err != nil {
		return fmt.Errorf("put attestation %s: %w", a.Envelope, err)
	}
	return nil
}

// PutVerdicts replaces the verdicts of one job and label with vs.
func (s *Store) PutVerdicts(ctx context.Context, vs []lantern.Verdict) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(vs) == 0 {
		return errors.New("put verdicts: none")
	}
	verdicts, err := encodeVerdicts(vs)
	if err != nil {
		return fmt.Errorf("put verdicts of job %s label %q: %w", vs[0].Job, vs[0].Label, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return putVerdicts(tx, vs, verdicts, scheduler.AttestationRecord{})
	})
	if err != nil {
		return fmt.Errorf("put verdicts of job %s label %q: %w", vs[0].Job, vs[0].Label, err)
	}
	return nil
}

// encodeAttestation checks a and returns the JSON of a and of a's outcome.
func encodeAttestation(a scheduler.AttestationRecord) (att, outcome []byte, err error) {
	switch {
	case a.Envelope.IsZero():
		return nil, nil, errors.New("envelope: missing digest")
	case a.Builder.IsZero():
		return nil, nil, errors.New("builder: missing key id")
	case a.Kind == lantern.KindRebuild && a.Output.IsZero():
		return nil, nil, errors.New("output: a rebuild needs an output digest")
	case a.Kind != lantern.KindRebuild && a.Kind != lantern.KindRebuildFailure:
		return nil, nil, fmt.Errorf("kind %q: want %q or %q", a.Kind, lantern.KindRebuild, lantern.KindRebuildFailure)
	}
	if err := errors.Join(checkText("source.name", a.Source.Name), checkText("source.version", a.Source.Version), checkText("label", a.Label), checkText("jobId", a.JobID)); err != nil {
		return nil, nil, err
	}
	a.Raw = nil // kept verbatim beside the record
	if att, err = json.Marshal(a); err != nil {
		return nil, nil, err
	}
	if outcome, err = json.Marshal(a.Outcome()); err != nil {
		return nil, nil, err
	}
	return att, outcome, nil
}

// encodeVerdicts checks that vs are verdicts of one job and label, each on
// its own published artefact, and returns their JSON.
func encodeVerdicts(vs []lantern.Verdict) ([][]byte, error) {
	out := make([][]byte, 0, len(vs))
	seen := map[lantern.Digest]bool{}
	for _, v := range vs {
		switch {
		case v.Status == "":
			return nil, errors.New("verdict: no status")
		case v.Job == "":
			return nil, errors.New("verdict: no job")
		case v.Job != vs[0].Job || v.Label != vs[0].Label || v.Source != vs[0].Source:
			return nil, fmt.Errorf("verdicts of job %s label %q and job %s label %q together", vs[0].Job, vs[0].Label, v.Job, v.Label)
		case seen[v.Published]:
			return nil, fmt.Errorf("two verdicts on published artefact %s", v.Published)
		}
		seen[v.Published] = true
		if err := errors.Join(checkText("verdict label", v.Label), checkText("verdict job", v.Job), checkText("source.name", v.Source.Name), checkText("source.version", v.Source.Version)); err != nil {
			return nil, err
		}
		v.Conflicts = nil // read from the source's record, never kept
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func putAttestation(tx *bolt.Tx, a scheduler.AttestationRecord, attJSON, outcomeJSON []byte) error {
	ab := tx.Bucket(bAtts)
	env := appendDigest(nil, a.Envelope)
	if ab.Get(env) != nil {
		return fmt.Errorf("envelope already recorded: %w", scheduler.ErrDuplicate)
	}
	answers := tx.Bucket(bAttsAnswer)
	var answer []byte
	if a.JobID != "" {
		answer = append(appendDigest(appendText(nil, a.JobID), a.Builder), a.Label...)
		if prev := answers.Get(answer); prev != nil {
			return fmt.Errorf("builder %s already answered job %s for label %q (envelope %s): %w",
				a.Builder, a.JobID, a.Label, digestFromKey(prev), scheduler.ErrDuplicate)
		}
		if err := answers.Put(answer, env); err != nil {
			return err
		}
	}
	if err := ab.Put(env, attJSON); err != nil {
		return err
	}
	if err := ab.Put(rawKey(env), a.Raw); err != nil {
		return err
	}
	seq, err := ab.NextSequence()
	if err != nil {
		return err
	}
	source := appendText(appendText(nil, a.Source.Name), a.Source.Version)
	if err := tx.Bucket(bAttsSource).Put(appendSeq(bytes.Clone(source), seq), env); err != nil {
		return err
	}
	seen := a.Received
	if seen.IsZero() {
		seen = a.Finished
	}
	if err := noteSource(tx, a.Source, seen); err != nil {
		return err
	}
	if err := tx.Bucket(bAttsBuilder).Put(appendSeq(appendDigest(nil, a.Builder), seq), env); err != nil {
		return err
	}
	if !a.Output.IsZero() {
		out := appendDigest(nil, a.Output)
		if err := tx.Bucket(bAttsArtefact).Put(appendSeq(bytes.Clone(out), seq), env); err != nil {
			return err
		}
		if err := tx.Bucket(bAttsArtBuilder).Put(appendSeq(appendDigest(out, a.Builder), seq), env); err != nil {
			return err
		}
	}

	if a.JobID != "" {
		ob := tx.Bucket(bOutcomes)
		oseq, err := ob.NextSequence()
		if err != nil {
			return err
		}
		if err := ob.Put(appendSeq(outcomeKey(a.JobID, a.Label), oseq), outcomeJSON); err != nil {
			return err
		}
	}

	if a.JobID == "" || tx.Bucket(bJobs).Get([]byte(a.JobID)) == nil {
		return nil
	}
	st := scheduler.BuilderJob{State: scheduler.JobDone, Attestations: []lantern.Digest{a.Envelope}, Updated: a.Received}
	if st.Updated.IsZero() {
		st.Updated = a.Finished
	}
	if a.Kind == lantern.KindRebuildFailure {
		st.State, st.Reason = scheduler.JobFailed, a.Reason
	}
	return setJobState(tx, a.JobID, a.Builder, st)
}

// putVerdicts replaces the verdicts of vs's job and label with vs (JSON in
// verdicts), indexes their artefacts (and a's output) and asks for the
// difference reports they call for.
func putVerdicts(tx *bolt.Tx, vs []lantern.Verdict, verdicts [][]byte, a scheduler.AttestationRecord) error {
	if len(vs) == 0 {
		return nil
	}
	vb := tx.Bucket(bVerdicts)
	prefix := verdictsPrefix(vs[0])
	var stale [][]byte
	if err := each(vb, prefix, func(k, _ []byte) error {
		stale = append(stale, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range stale {
		if err := vb.Delete(k); err != nil {
			return err
		}
	}
	va := tx.Bucket(bVerdictsArtefact)
	for i, v := range vs {
		vkey := appendDigest(bytes.Clone(prefix), v.Published)
		if err := vb.Put(vkey, verdicts[i]); err != nil {
			return err
		}
		index := func(d lantern.Digest) error {
			if d.IsZero() {
				return nil
			}
			k := append(appendDigest(nil, d), vkey...)
			if has(va, k) {
				return nil // not dirtying a page for nothing
			}
			return va.Put(k, nil)
		}
		if err := index(v.Published); err != nil {
			return err
		}
		if err := index(a.Output); err != nil {
			return err
		}
		for _, g := range v.Groups {
			if err := index(g.Output); err != nil {
				return err
			}
		}
		if err := wantDiffs(tx, v, a); err != nil {
			return err
		}
	}
	return nil
}

// verdictsPrefix is the key prefix of the verdicts of v's job and label:
// name\0 version\0 label\0 D(source) job\0; each verdict's key adds
// D(published).
func verdictsPrefix(v lantern.Verdict) []byte {
	k := appendText(appendText(appendText(nil, v.Source.Name), v.Source.Version), v.Label)
	return appendText(appendDigest(k, v.Source.Digest), v.Job)
}

// outcomeKey is the key prefix of the outcomes of a job's label.
func outcomeKey(job, label string) []byte {
	return appendText(appendText(nil, job), label)
}

// Attestation returns the attestation whose envelope has digest envelope.
func (s *Store) Attestation(ctx context.Context, envelope lantern.Digest) (*scheduler.AttestationRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var a scheduler.AttestationRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return getAttestation(tx, appendDigest(nil, envelope), &a)
	})
	if err != nil {
		return nil, fmt.Errorf("attestation %s: %w", envelope, err)
	}
	return &a, nil
}

// Outcomes returns every outcome reported for a job's label, in the order
// they were stored.
func (s *Store) Outcomes(ctx context.Context, job, label string) ([]lantern.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	outcomes := []lantern.Outcome{}
	if checkText("job", job) != nil || checkText("label", label) != nil {
		return outcomes, nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return each(tx.Bucket(bOutcomes), outcomeKey(job, label), func(_, v []byte) error {
			var o lantern.Outcome
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			outcomes = append(outcomes, o)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("outcomes of job %s label %q: %w", job, label, err)
	}
	return outcomes, nil
}

// OutcomeLabels returns the labels of a job that have outcomes, sorted.
func (s *Store) OutcomeLabels(ctx context.Context, job string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	labels := []string{}
	if checkText("job", job) != nil {
		return labels, nil
	}
	prefix := appendText(nil, job)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bOutcomes).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
			rest := k[len(prefix):]
			i := bytes.IndexByte(rest, 0)
			if i < 0 {
				return fmt.Errorf("outcome key %x: no label", k)
			}
			labels = append(labels, string(rest[:i]))
			k, _ = c.Seek(prefixEnd(k[:len(prefix)+i+1]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outcome labels of job %s: %w", job, err)
	}
	return labels, nil
}

// AttestationsByArtefact pages through the attestations whose output is
// artefact, oldest first; a non-zero builder selects that builder's only.
func (s *Store) AttestationsByArtefact(ctx context.Context, artefact, builder lantern.Digest, page scheduler.Page) ([]scheduler.AttestationRecord, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if artefact.IsZero() {
		return nil, "", errors.New("attestations by artefact: artefact: missing digest")
	}
	bucket, prefix := bAttsArtefact, appendDigest(nil, artefact)
	if !builder.IsZero() {
		bucket, prefix = bAttsArtBuilder, appendDigest(prefix, builder)
	}
	atts, next, err := s.attestations(bucket, prefix, page, false)
	if err != nil {
		return nil, "", fmt.Errorf("attestations by artefact %s: %w", artefact, err)
	}
	return atts, next, nil
}

// AttestationsBySource pages through the attestations about name@version,
// oldest first.
func (s *Store) AttestationsBySource(ctx context.Context, name, version string, page scheduler.Page) ([]scheduler.AttestationRecord, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if checkText("name", name) != nil || checkText("version", version) != nil {
		return []scheduler.AttestationRecord{}, "", nil
	}
	atts, next, err := s.attestations(bAttsSource, appendText(appendText(nil, name), version), page, false)
	if err != nil {
		return nil, "", fmt.Errorf("attestations of %s@%s: %w", name, version, err)
	}
	return atts, next, nil
}

// AttestationsByBuilder pages through builder's attestations, newest first.
func (s *Store) AttestationsByBuilder(ctx context.Context, builder lantern.Digest, page scheduler.Page) ([]scheduler.AttestationRecord, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if builder.IsZero() {
		return nil, "", errors.New("attestations by builder: builder: missing key id")
	}
	atts, next, err := s.attestations(bAttsBuilder, appendDigest(nil, builder), page, true)
	if err != nil {
		return nil, "", fmt.Errorf("attestations by builder %s: %w", builder, err)
	}
	return atts, next, nil
}

// attestations reads a page of an index of atts.
func (s *Store) attestations(index, prefix []byte, page scheduler.Page, desc bool) ([]scheduler.AttestationRecord, string, error) {
	atts := make([]scheduler.AttestationRecord, 0, min(pageCount(page.Count), 64))
	var next string
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		next, err = scan(tx.Bucket(index), prefix, page, desc, func(_, env []byte) error {
			var a scheduler.AttestationRecord
			if err := getAttestation(tx, env, &a); err != nil {
				return err
			}
			atts = append(atts, a)
			return nil
		})
		return err
	})
	return atts, next, err
}

// Verdicts returns the verdicts on every label of name@version, by label,
// source digest and job. Where claims give name@version more than one
// source, every verdict is a conflict.
func (s *Store) Verdicts(ctx context.Context, name, version string) ([]lantern.Verdict, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	verdicts := []lantern.Verdict{}
	if checkText("name", name) != nil || checkText("version", version) != nil {
		return verdicts, nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		var rec scheduler.SourceRecord
		err := getSource(tx, appendText(appendText(nil, name), version), &rec)
		if errors.Is(err, scheduler.ErrNotFound) {
			return nil
		}
		verdicts = rec.Verdicts
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("verdicts of %s@%s: %w", name, version, err)
	}
	return verdicts, nil
}

// VerdictsOfArtefact returns the verdicts where artefact is the published
// artefact or the output of a builder that counts, ordered by name, version
// and label.
func (s *Store) VerdictsOfArtefact(ctx context.Context, artefact lantern.Digest) ([]lantern.Verdict, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	verdicts := []lantern.Verdict{}
	if artefact.IsZero() {
		return verdicts, nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		vb, sb := tx.Bucket(bVerdicts), tx.Bucket(bSources)
		sources := map[string]*scheduler.SourceRecord{}
		return each(tx.Bucket(bVerdictsArtefact), appendDigest(nil, artefact), func(k, _ []byte) error {
			vkey := k[digestLen:]
			var v lantern.Verdict
			switch err := get(vb, vkey, &v); {
			case errors.Is(err, scheduler.ErrNotFound):
				return nil // a verdict since replaced (another claim's comparison)
			case err != nil:
				return err
			}
			if !onArtefact(v, artefact) {
				// It was an output here once: a revoked builder's, or
				// one its builder answered anew since. Its verdict is
				// on other bytes.
				return nil
			}
			name, version, _ := splitSourceKey(vkey)
			skey := string(appendText(appendText(nil, name), version))
			rec, ok := sources[skey]
			if !ok {
				rec = &scheduler.SourceRecord{}
				if err := get(sb, []byte(skey), rec); err != nil && !errors.Is(err, scheduler.ErrNotFound) {
					return err
				}
				sources[skey] = rec
			}
			markConflicts(&v, rec.Digests)
			verdicts = append(verdicts, v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("verdicts of artefact %s: %w", artefact, err)
	}
	return verdicts, nil
}

// onArtefact reports whether v is a verdict on artefact: its published
// artefact, or the output of one of its groups (of builders that count).
func onArtefact(v lantern.Verdict, artefact lantern.Digest) bool {
	if v.Published == artefact {
		return true
	}
	for _, g := range v.Groups {
		if g.Output == artefact {
			return true
		}
	}
	return false
}

// markConflicts makes v a conflict when digests, the source archives claims
// give v's name@version, hold another one than v's.
func markConflicts(v *lantern.Verdict, digests []lantern.Digest) {
	v.Conflicts = nil
	for _, d := range digests {
		if d != v.Source.Digest {
			v.Conflicts = append(v.Conflicts, d)
		}
	}
	if len(v.Conflicts) > 0 {
		v.Status = lantern.StatusConflict
	}
}

// Dead letters and builders.

// PutDeadLetter records that builder's consumer gave up on job d.JobID; it
// reports false if that was recorded already.
func (s *Store) PutDeadLetter(ctx context.Context, d scheduler.DeadLetter) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	switch {
	case d.JobID == "":
		return false, errors.New("put dead letter: jobId: missing")
	case d.Builder.IsZero():
		return false, fmt.Errorf("put dead letter %s: builder: missing key id", d.JobID)
	}
	if err := checkText("jobId", d.JobID); err != nil {
		return false, fmt.Errorf("put dead letter: %w", err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return false, fmt.Errorf("put dead letter %s: %w", d.JobID, err)
	}
	added := false
	err = s.db.Update(func(tx *bolt.Tx) error {
		dl := tx.Bucket(bDead)
		key := appendDigest(appendText(nil, d.JobID), d.Builder)
		if dl.Get(key) != nil {
			return nil
		}
		if err := dl.Put(key, b); err != nil {
			return err
		}
		added = true
		return tx.Bucket(bDeadTime).Put(append(appendTime(nil, d.Time), key...), key)
	})
	if err != nil {
		return false, fmt.Errorf("put dead letter %s: %w", d.JobID, err)
	}
	return added, nil
}

// DeadLetters pages through the dead letters, newest first.
func (s *Store) DeadLetters(ctx context.Context, page scheduler.Page) ([]scheduler.DeadLetter, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	dead := []scheduler.DeadLetter{}
	var next string
	err := s.db.View(func(tx *bolt.Tx) error {
		dl := tx.Bucket(bDead)
		var err error
		next, err = scan(tx.Bucket(bDeadTime), nil, page, true, func(_, key []byte) error {
			var d scheduler.DeadLetter
			if err := get(dl, key, &d); err != nil {
				return err
			}
			dead = append(dead, d)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("dead letters: %w", err)
	}
	return dead, next, nil
}

// PutBuilder records a builder, or updates its key and name; the first
// Added time stands.
func (s *Store) PutBuilder(ctx context.Context, b scheduler.BuilderRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.ID.IsZero() {
		return errors.New("put builder: id: missing key id")
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bBuilders)
		key := appendDigest(nil, b.ID)
		var prev scheduler.BuilderRecord
		switch err := get(bb, key, &prev); {
		case err == nil:
			if !prev.Added.IsZero() {
				b.Added = prev.Added
			}
		case !errors.Is(err, scheduler.ErrNotFound):
			return err
		}
		v, err := json.Marshal(b)
		if err != nil {
			return err
		}
		return bb.Put(key, v)
	})
	if err != nil {
		return fmt.Errorf("put builder %s: %w", b.ID, err)
	}
	return nil
}

// Builders returns every builder, ordered by key id.
func (s *Store) Builders(ctx context.Context) ([]scheduler.BuilderRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	builders := []scheduler.BuilderRecord{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bBuilders).ForEach(func(_, v []byte) error {
			var b scheduler.BuilderRecord
			if err := json.Unmarshal(v, &b); err != nil {
				return err
			}
			builders = append(builders, b)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("builders: %w", err)
	}
	return builders, nil
}

// get decodes the JSON value of key in b into v, or returns ErrNotFound.
func get(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return scheduler.ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode record %x: %w", key, err)
	}
	return nil
}

// rawKey is where the claims and atts buckets keep the envelope of the
// record at key env: right after the record, so that both are on one page
// and storing a claim writes one page, not two.
func rawKey(env []byte) []byte {
	return append(append(make([]byte, 0, len(env)+len(rawSuffix)), env...), rawSuffix...)
}

const rawSuffix = "raw"

// getClaim reads the claim with envelope digest env and its envelope.
func getClaim(tx *bolt.Tx, env []byte, c *scheduler.ClaimRecord) error {
	if err := get(tx.Bucket(bClaims), env, c); err != nil {
		return err
	}
	c.Raw = bytes.Clone(tx.Bucket(bClaims).Get(rawKey(env)))
	return nil
}

// getAttestation reads the attestation with envelope digest env and its
// envelope.
func getAttestation(tx *bolt.Tx, env []byte, a *scheduler.AttestationRecord) error {
	if err := get(tx.Bucket(bAtts), env, a); err != nil {
		return err
	}
	a.Raw = bytes.Clone(tx.Bucket(bAtts).Get(rawKey(env)))
	return nil
}
