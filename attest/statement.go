// Package attest turns Lantern's claims into signed in-toto statements and
// back. Every claim travels as an in-toto Statement v1 in a DSSE envelope
// signed with a cosign-format key, so anyone can check it offline — with
// Lantern, or with `cosign verify-blob-attestation`.
//
// A rebuild is a SLSA Provenance v1 predicate, as OSS Rebuild writes it: the
// subject is the output artefact, externalParameters the source claim,
// resolvedDependencies the inputs by digest, runDetails.builder.id the
// builder's key id. The other claims (source claims, failed rebuilds, trust
// claims and yanks) have Lantern predicate types whose predicate is the
// claim's own JSON.
//
// Parsing is strict, since envelopes come from anywhere: unknown fields,
// unknown predicate types, subjects that disagree with their predicate and
// claims that fail validation are all errors, and each names its check.
package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/strictjson"
)

// Identifiers of the formats.
const (
	PayloadType   = "application/vnd.in-toto+json"
	StatementType = "https://in-toto.io/Statement/v1"

	// StatementTypeV01 is the _type of an in-toto Statement v0.1, which
	// cosign (v2 and v3) writes for 'attest-blob --predicate'. Lantern reads
	// it, never writes it: v1 only added fields to v0.1's subject, so a v0.1
	// statement whose subjects have just name and digest means what the
	// same statement says as v1.
	StatementTypeV01 = "https://in-toto.io/Statement/v0.1"

	// URIBase prefixes Lantern's own predicate and build types.
	URIBase = "https://lanternfarm.github.io/lantern/"

	PredicateSLSAProvenance = "https://slsa.dev/provenance/v1"
	PredicateSourceClaim    = URIBase + "source-claim/v1"
	PredicateRebuildFailure = URIBase + "rebuild-failure/v1"
	PredicateTrust          = URIBase + "trust/v1"
	PredicateYank           = URIBase + "yank/v1"

	// BuildTypeMaintainer is the buildType of a rebuild attestation that a
	// maintainer's own CI signs for its release build (lantern attest sign).
	BuildTypeMaintainer = URIBase + "builds/maintainer/v1"
)

// The checks of statement parsing; errors wrap one of these.
var (
	ErrMalformed       = errors.New("malformed statement")
	ErrUnknownField    = strictjson.ErrUnknownField
	ErrStatementType   = errors.New("wrong statement _type")
	ErrPredicateType   = errors.New("unknown predicateType")
	ErrSubject         = errors.New("bad subject")
	ErrInvalidClaim    = errors.New("invalid claim")
	ErrBuilderMismatch = errors.New("builder is not the signer")
	ErrNotSubject      = errors.New("artefact is not a subject")
)

// Statement is an in-toto Statement v1 with only its standard fields.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`

	// parsed is the predicate, when decodeStatement could read it in passing.
	parsed any
}

// Subject is an in-toto ResourceDescriptor naming something a statement is
// about. Lantern writes name and digest; the other standard fields are read.
type Subject = ResourceDescriptor

// ParseStatement parses an in-toto Statement v1 strictly: only the standard
// fields, the v1 _type (or v0.1's, whose subjects have name and digest
// only), at least one subject, each with a sha256 digest.
func ParseStatement(b []byte) (*Statement, error) {
	s, err := decodeStatement(b)
	if err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	if s.Type != StatementType && s.Type != StatementTypeV01 {
		return nil, fmt.Errorf("statement: %w: %q, want %q", ErrStatementType, truncate(s.Type), StatementType)
	}
	if len(s.Subject) == 0 {
		return nil, fmt.Errorf("statement: %w: no subject", ErrSubject)
	}
	for i, sub := range s.Subject {
		if _, err := sub.SHA256(); err != nil {
			return nil, fmt.Errorf("statement: subject[%d]: %w", i, err)
		}
		if s.Type == StatementTypeV01 {
			if f := v1OnlyField(sub); f != "" {
				return nil, fmt.Errorf("statement: subject[%d]: %w: %q in a Statement/v0.1 subject, which has name and digest only", i, ErrSubject, f)
			}
		}
	}
	if s.PredicateType == "" {
		return nil, fmt.Errorf("statement: %w: missing", ErrPredicateType)
	}
	if len(s.Predicate) == 0 || bytes.Equal(s.Predicate, []byte("null")) {
		return nil, fmt.Errorf("statement: %w: no predicate", ErrMalformed)
	}
	return s, nil
}

// v1OnlyField names a field of rd that a v0.1 subject cannot have, or
// returns "".
func v1OnlyField(rd ResourceDescriptor) string {
	switch {
	case rd.URI != "":
		return "uri"
	case rd.DownloadLocation != "":
		return "downloadLocation"
	case rd.MediaType != "":
		return "mediaType"
	case rd.Annotations != nil:
		return "annotations"
	}
	return ""
}

// HasSubject reports whether d is the sha256 of one of the statement's
// subjects.
func (s *Statement) HasSubject(d lantern.Digest) bool {
	for _, sub := range s.Subject {
		if got, err := sub.SHA256(); err == nil && got == d {
			return true
		}
	}
	return false
}

func truncate(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "..."
}
