package attest

import (
	"encoding/json"
	"fmt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
)

// NewStatement returns the in-toto statement that carries c. It validates c
// first: Lantern never signs a claim it would refuse to read.
func NewStatement(c lantern.Claim) (*Statement, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s claim: %w: %w", c.Kind(), ErrInvalidClaim, err)
	}
	predType, predicate := "", any(c)
	switch c := c.(type) {
	case *lantern.Rebuild:
		predType, predicate = PredicateSLSAProvenance, rebuildProvenance(c)
	case *lantern.SourceClaim:
		predType = PredicateSourceClaim
	case *lantern.RebuildFailure:
		predType = PredicateRebuildFailure
	case *lantern.Trust:
		predType = PredicateTrust
	case *lantern.Yank:
		predType = PredicateYank
	default:
		return nil, fmt.Errorf("%w: claim type %T", ErrPredicateType, c)
	}
	raw, err := json.Marshal(predicate)
	if err != nil {
		return nil, fmt.Errorf("marshal %s predicate: %w", c.Kind(), err)
	}
	name, d := about(c)
	return &Statement{Type: StatementType, Subject: []Subject{descriptor(name, "", d)}, PredicateType: predType, Predicate: raw}, nil
}

// Claim parses the statement's predicate strictly, by its predicateType,
// checks that the subject agrees with it, and validates the claim.
func (s *Statement) Claim() (lantern.Claim, error) {
	if len(s.Subject) != 1 {
		return nil, fmt.Errorf("%w: %d subjects, a Lantern claim has exactly 1", ErrSubject, len(s.Subject))
	}
	sub := s.Subject[0]
	pred := s.parsed
	if pred == nil {
		err := decodeTop(s.Predicate, func(d *decoder) (err error) {
			pred, err = decodePredicate(d, s.PredicateType)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	var c lantern.Claim
	switch p := pred.(type) {
	case *rebuildDraft:
		r, err := p.rebuild(sub)
		if err != nil {
			return nil, fmt.Errorf("provenance predicate: %w", err)
		}
		c = r
	case lantern.Claim:
		d, err := sub.SHA256()
		if err != nil {
			return nil, err
		}
		if name, digest := about(p); d != digest || sub.Name != name {
			return nil, fmt.Errorf("%s predicate: %w: subject %q %s, but the predicate is about %q %s", p.Kind(), ErrSubject, sub.Name, d, name, digest)
		}
		c = p
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s claim: %w: %w", c.Kind(), ErrInvalidClaim, err)
	}
	return c, nil
}

// about returns the subject name and digest of a Lantern-typed claim.
func about(c lantern.Claim) (string, lantern.Digest) {
	switch c := c.(type) {
	case *lantern.SourceClaim:
		return c.Source.String(), c.Source.Digest
	case *lantern.RebuildFailure:
		return c.Source.String(), c.Source.Digest
	case *lantern.Yank:
		return c.Source.String(), c.Source.Digest
	case *lantern.Trust:
		return c.Key.String(), c.Key
	case *lantern.Rebuild:
		return c.Label, c.Output
	}
	return "", lantern.Digest{}
}

// Verified is an envelope whose signature checked out, with its parsed claim.
type Verified struct {
	Statement *Statement
	Claim     lantern.Claim
	// Signer is the key id of the key that verified the signature.
	Signer lantern.Digest
}

// Sign validates c and signs it with k as an in-toto statement in a DSSE
// envelope.
func Sign(c lantern.Claim, k *keys.Private) (*dsse.Envelope, error) {
	st, err := NewStatement(c)
	if err != nil {
		return nil, err
	}
	return SignStatement(st, k)
}

// SignStatement signs an already built statement.
func SignStatement(st *Statement, k *keys.Private) (*dsse.Envelope, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("marshal statement: %w", err)
	}
	return dsse.Sign(PayloadType, payload, k)
}

// Verify checks env's signature with pub, parses its statement and claim
// strictly, and checks that a rebuild or failed rebuild names the signer as
// its builder.
func Verify(env *dsse.Envelope, pub *keys.Public) (*Verified, error) {
	payload, err := env.Verify(PayloadType, pub)
	if err != nil {
		return nil, err
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	c, err := st.Claim()
	if err != nil {
		return nil, err
	}
	var builder lantern.Digest
	switch c := c.(type) {
	case *lantern.Rebuild:
		builder = c.Builder
	case *lantern.RebuildFailure:
		builder = c.Builder
	}
	if !builder.IsZero() && builder != pub.ID() {
		return nil, fmt.Errorf("%s claim: %w: names builder %s, signed by %s", c.Kind(), ErrBuilderMismatch, builder, pub.ID())
	}
	return &Verified{Statement: st, Claim: c, Signer: pub.ID()}, nil
}
