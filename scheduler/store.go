package scheduler

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
)

// Store keeps what the scheduler has accepted: claims, jobs and their state
// per builder, attestations, verdicts, dead letters and builders. It is
// rebuildable from the streams (lantern scheduler --reindex). Every Put is
// idempotent: putting what is already there changes nothing and reports
// false, so that a redelivered message is never counted twice.
type Store interface {
	// PutClaims stores claims and the jobs they made, in one transaction;
	// added[i] reports whether claims[i] was new.
	PutClaims(ctx context.Context, claims []ClaimRecord, jobs []lantern.Job) (added []bool, err error)
	Claim(ctx context.Context, envelope lantern.Digest) (*ClaimRecord, error)
	// ClaimsOf returns the claims about a source name and version.
	ClaimsOf(ctx context.Context, name, version string) ([]ClaimRecord, error)

	Job(ctx context.Context, id string) (*JobRecord, error)
	// Jobs pages through jobs, newest first; state filters by the state of
	// any builder ("" for all).
	Jobs(ctx context.Context, state JobState, page Page) ([]JobRecord, string, error)
	// SetJobState records where builder is with job; a later state never
	// goes back to an earlier one (done and failed and dead are final).
	SetJobState(ctx context.Context, jobID string, builder lantern.Digest, st BuilderJob) error

	// PutAttestation stores a verified attestation and the verdicts it led
	// to (those of its job and label, which replace the ones stored), in
	// one transaction. It reports ErrDuplicate, storing nothing, when the
	// same envelope is there already or the builder already answered the
	// job for that label.
	PutAttestation(ctx context.Context, a AttestationRecord, vs []lantern.Verdict) error
	// PutVerdicts replaces the verdicts of one job and label with vs (all
	// of one job and label, at least one).
	PutVerdicts(ctx context.Context, vs []lantern.Verdict) error
	Attestation(ctx context.Context, envelope lantern.Digest) (*AttestationRecord, error)
	// Outcomes returns every builder's outcome for a job's label, in the
	// order they were stored.
	Outcomes(ctx context.Context, job, label string) ([]lantern.Outcome, error)
	// OutcomeLabels returns the labels of a job that have outcomes.
	OutcomeLabels(ctx context.Context, job string) ([]string, error)
	// AttestationsByArtefact pages through the attestations whose output is
	// artefact, oldest first; a zero builder means all builders.
	AttestationsByArtefact(ctx context.Context, artefact lantern.Digest, builder lantern.Digest, page Page) ([]AttestationRecord, string, error)
	// AttestationsBySource returns the attestations about name@version.
	AttestationsBySource(ctx context.Context, name, version string, page Page) ([]AttestationRecord, string, error)
	// AttestationsByBuilder pages through a builder's attestations, newest first.
	AttestationsByBuilder(ctx context.Context, builder lantern.Digest, page Page) ([]AttestationRecord, string, error)

	// Verdicts returns the verdicts on every label of name@version.
	Verdicts(ctx context.Context, name, version string) ([]lantern.Verdict, error)
	// VerdictsOfArtefact returns the verdicts of the (source, label)s that
	// some builder's output, or the published artefact, is artefact.
	VerdictsOfArtefact(ctx context.Context, artefact lantern.Digest) ([]lantern.Verdict, error)

	// Sources pages through the sources (name@version) that a claim or an
	// attestation is about, newest first, each with its verdicts.
	Sources(ctx context.Context, page Page) ([]SourceRecord, string, error)
	// SearchSources pages through the sources that q selects, ordered by
	// name and version, each with its verdicts.
	SearchSources(ctx context.Context, q SourceQuery, page Page) ([]SourceRecord, string, error)

	PutDeadLetter(ctx context.Context, d DeadLetter) (bool, error)
	DeadLetters(ctx context.Context, page Page) ([]DeadLetter, string, error)

	PutBuilder(ctx context.Context, b BuilderRecord) error
	Builders(ctx context.Context) ([]BuilderRecord, error)

	// Diff returns the difference report on outputs a and b, in either
	// order. PutAttestation adds a pending one for every pair of outputs
	// that DiffsWanted of its verdict names, and puts a failed one back to
	// pending (an output it could not read may be there now).
	Diff(ctx context.Context, a, b lantern.Digest) (*DiffRecord, error)
	// PendingDiffs returns at most count pending difference reports, in no
	// particular order.
	PendingDiffs(ctx context.Context, count int) ([]DiffRecord, error)
	// PutDiff stores a difference report over the one on its pair.
	PutDiff(ctx context.Context, d DiffRecord) error

	// Reset empties the store, before a reindex.
	Reset(ctx context.Context) error
	Close() error
}

// Errors stores return.
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("already recorded")
	ErrBadCursor = errors.New("bad cursor")
)

// Page asks for at most Count items after Cursor ("" for the first page).
// Cursors are opaque strings a store hands out with a page.
type Page struct {
	Count  int
	Cursor string
}

// ClaimRecord is a verified source claim as stored.
type ClaimRecord struct {
	// Envelope is the digest of the envelope's JSON: the claim's id.
	Envelope lantern.Digest      `json:"envelope"`
	Raw      []byte              `json:"-"` // the envelope's JSON, as received; stores keep it beside the record
	Claim    lantern.SourceClaim `json:"claim"`
	Signer   lantern.Digest      `json:"signer"`
	Jobs     []string            `json:"jobs"`
	Received time.Time           `json:"received"`
}

// JobState is where one builder is with one job.
type JobState string

// The states of a job for a builder.
const (
	JobQueued JobState = "queued"
	JobDone   JobState = "done"   // a rebuild attestation came back
	JobFailed JobState = "failed" // a signed failed-rebuild attestation came back
	JobDead   JobState = "dead"   // the builder's consumer gave up after the last delivery
)

// BuilderJob is one builder's state of one job.
type BuilderJob struct {
	State JobState `json:"state"`
	// Attestations are the envelopes that answered it, one per label.
	Attestations []lantern.Digest `json:"attestations,omitempty"`
	Reason       string           `json:"reason,omitempty"`
	Updated      time.Time        `json:"updated"`
}

// JobRecord is a job with its state per builder.
type JobRecord struct {
	Job      lantern.Job                   `json:"job"`
	Builders map[lantern.Digest]BuilderJob `json:"builders"`
}

// AttestationRecord is a verified rebuild or failed-rebuild attestation.
type AttestationRecord struct {
	Envelope lantern.Digest `json:"envelope"`
	Raw      []byte         `json:"-"`    // the envelope's JSON, as received; stores keep it beside the record
	Kind     lantern.Kind   `json:"kind"` // KindRebuild or KindRebuildFailure
	Builder  lantern.Digest `json:"builder"`
	JobID    string         `json:"jobId"`
	Source   lantern.Source `json:"source"`
	Label    string         `json:"label"`
	// Output is the rebuilt artefact's digest; zero for a failure.
	Output lantern.Digest `json:"output,omitzero"`
	Recipe lantern.Recipe `json:"recipe"`
	// Claim is the source claim the attestation answers; Build the build
	// spec it followed (generic recipe).
	Claim    lantern.Digest `json:"claim,omitzero"`
	Build    lantern.Digest `json:"build,omitzero"`
	Stage    string         `json:"stage,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Started  time.Time      `json:"started,omitzero"`
	Finished time.Time      `json:"finished"`
	Log      lantern.Digest `json:"log,omitzero"`
	Received time.Time      `json:"received"`
}

// Outcome returns the record as one builder's outcome.
func (a AttestationRecord) Outcome() lantern.Outcome {
	return lantern.Outcome{Builder: a.Builder, Output: a.Output, Stage: a.Stage, Reason: a.Reason, Attestation: a.Envelope, Finished: a.Finished}
}

// DeadLetter records a job that a builder's consumer gave up on after its
// last delivery.
type DeadLetter = lantern.DeadLetter

// BuilderRecord is a builder the farm sends jobs to: an identity, a key.
type BuilderRecord struct {
	ID        lantern.Digest `json:"id"`
	PublicKey []byte         `json:"publicKey"` // PEM
	Name      string         `json:"name,omitempty"`
	Added     time.Time      `json:"added"`
	// Revoked is when the builder was removed from the farm (zero while
	// it is a builder): its results from then on are refused, its earlier
	// attestations stay as signed history.
	Revoked time.Time `json:"revoked,omitzero"`
}

// DiffState is where a difference report is.
type DiffState string

// The states of a difference report.
const (
	DiffPending DiffState = "pending" // asked for, not made yet
	DiffDone    DiffState = "done"    // Report is in the object store
	DiffFailed  DiffState = "failed"  // Reason says why there is none
)

// DiffRecord is diffoscope's report on two outputs that builders got for
// one (source, label): what a maintainer reads to learn why they differ.
type DiffRecord struct {
	Source lantern.Source `json:"source"`
	Label  string         `json:"label"`
	// A is the output of the verdict's first group when the report was
	// asked for (the largest), B the other one.
	A     lantern.Digest `json:"a"`
	B     lantern.Digest `json:"b"`
	State DiffState      `json:"state"`
	// Report is the digest of the plain-text report in the farm's object
	// store, once done.
	Report lantern.Digest `json:"report,omitzero"`
	// Reason says why a report failed.
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// DiffsWanted returns the difference reports that verdict v calls for, as
// pending records: the output of its first group (the largest) against the
// output of each other group.
func DiffsWanted(v lantern.Verdict, now time.Time) []DiffRecord {
	var out []DiffRecord
	for _, g := range v.Groups[min(1, len(v.Groups)):] {
		out = append(out, DiffRecord{Source: v.Source, Label: v.Label, A: v.Groups[0].Output, B: g.Output, State: DiffPending, Updated: now})
	}
	return out
}

// SourceRecord is one source name and version as Sources lists it: the
// source archives claimed or attested for it and the verdicts on its labels.
type SourceRecord struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Digests are the source archives named for name@version, in the order
	// they were first seen; more than one means that claims disagree.
	Digests []lantern.Digest `json:"digests"`
	// Added is when the first claim or attestation of it was stored.
	Added time.Time `json:"added"`
	// Verdicts are the verdicts on its labels, as Verdicts returns them.
	Verdicts []lantern.Verdict `json:"verdicts"`
}

// SourceQuery selects sources for SearchSources: by text in their name and
// version, or by a digest. ParseSourceQuery reads one from what a person
// types into a search box.
type SourceQuery struct {
	// Text selects the sources whose "name@version" contains it, ignoring
	// case.
	Text string
	// DigestHex, 8 to 64 lower-case hex digits, selects the sources whose
	// source archive, some builder's output or published artefact has a
	// SHA-256 that starts with them.
	DigestHex string
}

// Digest prefixes shorter than this are searched for as text: fewer hex
// digits select too much to be meant as a digest.
const minDigestQuery = 8

// ParseSourceQuery reads a search: "sha256:" and at least 8 hex digits, or
// 12 to 64 hex digits alone (what a digest's Short form shows), is a digest
// prefix; anything else is text.
func ParseSourceQuery(s string) SourceQuery {
	s = strings.TrimSpace(s)
	lower := strings.ToLower(s)
	h, prefixed := strings.CutPrefix(lower, lantern.DigestPrefix)
	isHex := len(h) <= 64 && strings.Trim(h, "0123456789abcdef") == ""
	switch {
	case isHex && prefixed && len(h) >= minDigestQuery:
		return SourceQuery{DigestHex: h}
	case isHex && !prefixed && len(h) >= 12:
		return SourceQuery{DigestHex: h}
	}
	return SourceQuery{Text: s}
}
