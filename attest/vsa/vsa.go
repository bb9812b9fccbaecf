// Package vsa writes a decision of package verify as a SLSA Verification
// Summary Attestation v1 (https://slsa.dev/spec/v1.0/verification_summary):
// an in-toto Statement about the artefact, signed by the verifier's key, that
// says which policy it was checked against, which signed evidence the
// decision rests on, and whether it passed. Whoever trusts the verifier's
// key can then take its word for the decision without the evidence, and
// check the VSA with `cosign verify-blob-attestation --type
// https://slsa.dev/verification_summary/v1`.
//
// What the fields hold:
//   - subject: the artefact's sha256, under the name it was verified by (its
//     file's name, or its digest).
//   - verifier.id: the verifier's key id, sha256 of its public key's DER, as
//     runDetails.builder.id is a builder's key id in Lantern's provenance.
//   - policy: uri PolicyURI, which names the form of the policy (trusted
//     builder key ids, threshold, authors, maximum age), and the sha256 of
//     that policy in its canonical form (verify.Policy.Digest), so two
//     verifiers that trust the same keys with the same threshold write the
//     same digest however their policies were given.
//   - inputAttestations: the signed pieces the decision rests on, each by the
//     sha256 of its bytes as read (a whole file's sha256; a line of a
//     JSON Lines file without its newline) and named
//     by where it was read (a file, file:line, a farm's page): the agreeing
//     rebuilds that counted, trusted authors' source claims, the revocations
//     applied and, for a contradicted decision, what contradicted. Evidence
//     that did not bear on the result (untrusted keys, bad signatures,
//     another artefact, a builder counted already) is not an input.
//   - verificationResult: PASSED when verified, FAILED otherwise.
//   - verifiedLevels: SLSA's levels are about how a build ran, which a
//     rebuild does not verify, so Lantern claims none of them. The spec
//     allows custom values that do not start with "SLSA_": a verified
//     artefact is at LevelReproduced followed by how many distinct trusted
//     builders rebuilt exactly its bytes ("LANTERN_REPRODUCED_2"); a failed
//     one is at "FAILED", as the spec says.
//   - the extension field ExtensionField (the spec lets producers add fields
//     named by URIs) keeps what PASSED/FAILED cannot say: Lantern's result
//     (verified, not-verified, contradicted), the threshold, the agreeing
//     builders and the contradictions.
//
// Lantern's own readers of attestations (attest.Verify, lantern verify) do
// not read VSAs: a VSA is the verifier's word, never a rebuild, and counts as
// no builder's evidence.
package vsa

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/verify"
)

// Identifiers of the format.
const (
	PredicateType = "https://slsa.dev/verification_summary/v1"
	// SLSAVersion is the version of the SLSA specification followed.
	SLSAVersion = "1.0"
	// PolicyURI names the form of policy whose digest a VSA carries.
	PolicyURI = attest.URIBase + "verify-policy/v1"
	// ExtensionField is the name of the predicate's field that holds
	// Lantern's Summary of the decision.
	ExtensionField = attest.URIBase + "verify/v1"

	// Passed and Failed are the verification results.
	Passed = "PASSED"
	Failed = "FAILED"

	// LevelReproduced, followed by a number N, is the level of an artefact
	// that N distinct trusted builders rebuilt to exactly its bytes.
	LevelReproduced = "LANTERN_REPRODUCED_"
	// LevelFailed is the level of an artefact that failed the policy.
	LevelFailed = "FAILED"
)

// ErrDecision reports a decision that cannot be summarised.
var ErrDecision = errors.New("cannot summarise decision")

// Predicate is the SLSA Verification Summary v1 predicate, as Lantern
// writes it.
type Predicate struct {
	Verifier           Verifier                    `json:"verifier"`
	TimeVerified       time.Time                   `json:"timeVerified"`
	ResourceURI        string                      `json:"resourceUri"`
	Policy             attest.ResourceDescriptor   `json:"policy"`
	InputAttestations  []attest.ResourceDescriptor `json:"inputAttestations"`
	VerificationResult string                      `json:"verificationResult"`
	VerifiedLevels     []string                    `json:"verifiedLevels"`
	SLSAVersion        string                      `json:"slsaVersion"`
	// Lantern is the extension field ExtensionField.
	Lantern Summary `json:"https://lanternfarm.github.io/lantern/verify/v1"`
}

// Verifier is SLSA's verifier; its id is the verifier's key id.
type Verifier struct {
	ID string `json:"id"`
}

// Summary is what a VSA says of the decision beyond PASSED or FAILED.
type Summary struct {
	Result    verify.Result `json:"result"`
	Threshold int           `json:"threshold"`
	// Agreeing are the key ids of the distinct trusted builders that rebuilt
	// exactly the artefact.
	Agreeing       []string `json:"agreeing"`
	Contradictions []string `json:"contradictions,omitempty"`
}

// Input is the annotation of an input attestation: who signed it, and what
// it came to in the decision.
type Input struct {
	Signer string        `json:"signer"`
	Reason verify.Reason `json:"reason"`
}

// Options say what a decision does not: the artefact's name, the URI of the
// resource verified, and the verifier.
type Options struct {
	// Name names the subject: the artefact's file name, or its digest.
	Name string
	// ResourceURI is the resourceUri; it defaults to Name.
	ResourceURI string
	// Verifier is the verifier's key id.
	Verifier lantern.Digest
}

// inputReasons are the reasons a piece of evidence has when the decision
// rests on it.
var inputReasons = map[verify.Reason]bool{
	verify.ReasonAgrees:      true,
	verify.ReasonContradicts: true,
	verify.ReasonYanked:      true,
	verify.ReasonConflict:    true,
	verify.ReasonClaim:       true,
	verify.ReasonRevocation:  true,
}

// New makes the VSA statement of d.
func New(d *verify.Decision, o Options) (*attest.Statement, error) {
	p, err := newPredicate(d, o)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("marshal verification summary: %w", err)
	}
	return &attest.Statement{
		Type:          attest.StatementType,
		Subject:       []attest.Subject{{Name: o.Name, Digest: map[string]string{"sha256": d.Artefact.Hex()}}},
		PredicateType: PredicateType,
		Predicate:     raw,
	}, nil
}

func newPredicate(d *verify.Decision, o Options) (*Predicate, error) {
	switch {
	case d.Artefact.IsZero():
		return nil, fmt.Errorf("%w: no artefact digest", ErrDecision)
	case d.Policy.IsZero():
		return nil, fmt.Errorf("%w: no policy digest", ErrDecision)
	case d.Time.IsZero():
		return nil, fmt.Errorf("%w: no time of verification", ErrDecision)
	case o.Name == "":
		return nil, fmt.Errorf("%w: the artefact has no name", ErrDecision)
	case o.Verifier.IsZero():
		return nil, fmt.Errorf("%w: no verifier key id", ErrDecision)
	}
	p := &Predicate{
		Verifier:          Verifier{ID: o.Verifier.String()},
		TimeVerified:      d.Time.UTC(),
		ResourceURI:       o.ResourceURI,
		Policy:            attest.ResourceDescriptor{URI: PolicyURI, Digest: map[string]string{"sha256": d.Policy.Hex()}},
		InputAttestations: []attest.ResourceDescriptor{},
		SLSAVersion:       SLSAVersion,
		Lantern: Summary{
			Result:         d.Result,
			Threshold:      d.Threshold,
			Agreeing:       d.Agreeing,
			Contradictions: d.Contradictions,
		},
	}
	if p.ResourceURI == "" {
		p.ResourceURI = o.Name
	}
	if p.Lantern.Agreeing == nil {
		p.Lantern.Agreeing = []string{}
	}
	switch d.Result {
	case verify.Verified:
		if len(d.Agreeing) == 0 || len(d.Agreeing) < d.Threshold {
			return nil, fmt.Errorf("%w: verified with %d of %d trusted builders agreeing", ErrDecision, len(d.Agreeing), d.Threshold)
		}
		p.VerificationResult = Passed
		p.VerifiedLevels = []string{LevelReproduced + strconv.Itoa(len(d.Agreeing))}
	case verify.NotVerified, verify.Contradicted:
		p.VerificationResult = Failed
		p.VerifiedLevels = []string{LevelFailed}
	default:
		return nil, fmt.Errorf("%w: unknown result %q", ErrDecision, d.Result)
	}
	for _, it := range d.Evidence {
		if !it.Counts && !inputReasons[it.Reason] {
			continue
		}
		ann, err := json.Marshal(Input{Signer: it.Signer, Reason: it.Reason})
		if err != nil {
			return nil, err
		}
		p.InputAttestations = append(p.InputAttestations, attest.ResourceDescriptor{
			Name:        it.Origin,
			Digest:      map[string]string{"sha256": it.Digest.Hex()},
			Annotations: ann,
		})
	}
	return p, nil
}

// Sign makes the VSA of d and signs it with the verifier's key k, whose key
// id is the verifier's id.
func Sign(d *verify.Decision, o Options, k *keys.Private) (*dsse.Envelope, error) {
	o.Verifier = k.ID()
	st, err := New(d, o)
	if err != nil {
		return nil, err
	}
	return attest.SignStatement(st, k)
}
