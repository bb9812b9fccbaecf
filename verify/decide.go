package verify

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/rebuilderd"
)

// Piece is one piece of evidence as it was read, and where it came from (a
// file, a line of a file, a farm's answer).
type Piece struct {
	Origin string
	Raw    []byte
}

// Reason says why a piece of evidence counted or did not.
type Reason string

// The reasons a piece of evidence counts or not.
const (
	ReasonAgrees        Reason = "agrees"           // a trusted builder rebuilt exactly the artefact
	ReasonCounted       Reason = "already-counted"  // agrees, but its builder is counted already
	ReasonUntrusted     Reason = "untrusted-key"    // signed by no key the policy trusts for it
	ReasonBadSignature  Reason = "bad-signature"    // names a trusted key, whose signature does not verify
	ReasonOtherArtefact Reason = "another-artefact" // a trusted rebuild of something else
	ReasonContradicts   Reason = "contradicts"      // a trusted builder got other bytes for the same thing
	ReasonRevoked       Reason = "revoked"          // its key was revoked
	ReasonTooOld        Reason = "too-old"          // older than the policy's maximum age
	ReasonUnreadable    Reason = "unreadable"       // not evidence Lantern reads
	ReasonFailed        Reason = "failed-rebuild"   // a trusted builder's signed failure
	ReasonNotAuthored   Reason = "not-authored"     // rebuilt from a source no trusted author claimed
	ReasonConflict      Reason = "conflict"         // two sources for one name@version
	ReasonYanked        Reason = "yanked"           // a trusted author's yank of the rebuilt source
	ReasonClaim         Reason = "source-claim"     // a trusted author's source claim
	ReasonRevocation    Reason = "revocation"       // a revocation the policy honours
	ReasonIgnored       Reason = "ignored"          // signed, but says nothing this decision uses
)

// Result is the decision.
type Result string

// The results of a decision.
const (
	Verified     Result = "verified"     // enough trusted builders agree, nothing contradicts
	NotVerified  Result = "not-verified" // too few trusted builders agree
	Contradicted Result = "contradicted" // a trusted builder got other bytes, a yank, a conflict
)

// Item is one piece of evidence and what it came to.
type Item struct {
	Origin string `json:"origin"`
	// Digest is the sha256 of the piece's bytes as read.
	Digest lantern.Digest `json:"digest"`
	// Kind is what the piece is: rebuild, rebuild-failure, source, yank,
	// trust, in-toto-link; empty when unreadable.
	Kind string `json:"kind,omitempty"`
	// Signer is the trusted key that verified it, if one did.
	Signer string `json:"signer,omitempty"`
	// Counts reports whether it is one of the agreeing builders' rebuilds.
	Counts bool   `json:"counts"`
	Reason Reason `json:"reason"`
	Why    string `json:"why"`

	// What was rebuilt: "name@version (source) label" or "product NAME".
	subject  string
	source   lantern.Source
	output   lantern.Digest
	finished time.Time
	claim    lantern.Claim
	products map[string]lantern.Digest // an in-toto link's
	// cosigners are the trusted keys whose signatures on an in-toto link
	// verify: the keys of one rebuilder (its worker's, its instance's).
	cosigners []string
	trusted   bool // verified by a key the policy trusts for it
	// revoked, if not empty, says which revocation of its signer applies:
	// it then adds nothing (no agreement, no claim that authors a source)
	// but still takes away (a contradiction, a yank, a conflict).
	revoked string
}

// Decision is verify's answer, with every piece of evidence and why it
// counted or not. The CLI, its JSON and the VSA all render it.
type Decision struct {
	Artefact  lantern.Digest `json:"artefact"`
	Policy    lantern.Digest `json:"policy"`
	Threshold int            `json:"threshold"`
	Result    Result         `json:"result"`
	// Agreeing are the key ids of the distinct trusted builders that
	// rebuilt exactly the artefact.
	Agreeing []string `json:"agreeing"`
	// Contradictions say what contradicted, one line each.
	Contradictions []string  `json:"contradictions,omitempty"`
	Evidence       []Item    `json:"evidence"`
	Time           time.Time `json:"time"`

	sources []string
}

// Decide weighs the evidence under p for artefact, at time now, and says
// why each piece counted or not. It does no I/O.
func Decide(p *Policy, artefact lantern.Digest, pieces []Piece, now time.Time) *Decision {
	return Check(p, pieces).Decide(artefact, now)
}

// Checked is evidence read and its signatures checked under one policy. It
// can be decided on again, with more evidence added, without checking any
// signature twice: a reader of farms decides once on what they serve about
// the artefact, asks about the sources that decision names, and decides
// again on all of it.
type Checked struct {
	p        *Policy
	builders map[string]Key
	edKeys   []Key
	items    []Item
}

// Check reads pieces and checks their signatures under p.
func Check(p *Policy, pieces []Piece) *Checked {
	c := &Checked{p: p, builders: map[string]Key{}}
	for _, k := range p.Builders {
		c.builders[k.ID] = k
		if k.ed != nil {
			c.edKeys = append(c.edKeys, k)
		}
	}
	c.Add(pieces)
	return c
}

// Add reads more pieces and checks their signatures.
func (c *Checked) Add(pieces []Piece) {
	c.items = slices.Grow(c.items, len(pieces))
	for _, pc := range pieces {
		c.items = append(c.items, weigh(c.p, c.builders, c.edKeys, pc))
	}
}

// Decide weighs the checked evidence for artefact, at time now, and says
// why each piece counted or not. It does no I/O.
func (c *Checked) Decide(artefact lantern.Digest, now time.Time) *Decision {
	d := &Decision{Artefact: artefact, Policy: c.p.Digest(), Threshold: c.p.Threshold, Agreeing: []string{}, Time: now.UTC()}
	if len(c.items) > 0 {
		// A copy: deciding marks the items, and the next decision starts
		// from what the signatures alone say.
		d.Evidence = slices.Clone(c.items)
	}
	w := &weighing{p: c.p, d: d, artefact: artefact, now: now}
	w.revocations()
	w.rebuilds()
	w.authored()
	w.contradictions()
	w.count()
	return d
}

// Sources returns the sources (name@version) that trusted builders rebuilt
// to the artefact: a reader of a farm fetches the evidence about them (other
// builders' outputs, claims) and decides again.
func (d *Decision) Sources() []string { return d.sources }

// weigh reads one piece and checks its signature against the keys the
// policy trusts for what it says.
func weigh(p *Policy, builders map[string]Key, edKeys []Key, pc Piece) Item {
	it := Item{Origin: pc.Origin, Digest: lantern.DigestOf(pc.Raw)}
	// Envelopes first: they are most of the evidence, and no piece is
	// both (each parser refuses the other's fields).
	env, err := attest.ReadEnvelope(pc.Raw) // a DSSE envelope, or a Sigstore bundle of one
	if err != nil {
		if link, lerr := rebuilderd.Read(pc.Raw); lerr == nil {
			it.Kind = "in-toto-link"
			return weighLink(it, link, edKeys)
		}
		it.Reason, it.Why = ReasonUnreadable, "neither a signed attestation (DSSE envelope, Sigstore bundle) nor a rebuilderd in-toto link: "+err.Error()
		return it
	}
	// The payload is parsed before its signature is checked, to know which
	// key to check it with; nothing it says is used unless that key verifies
	// the signature over these same bytes.
	st, err := attest.ParseStatement(env.Payload)
	if err != nil {
		it.Reason, it.Why = ReasonUnreadable, "not a Lantern attestation: "+err.Error()
		return it
	}
	c, err := st.Claim()
	if err != nil {
		it.Reason, it.Why = ReasonUnreadable, "not a Lantern attestation: "+err.Error()
		return it
	}
	it.Kind, it.claim = string(c.Kind()), c
	var candidates []Key
	var want string
	switch c := c.(type) {
	case *lantern.Rebuild, *lantern.RebuildFailure:
		var id lantern.Digest
		if r, ok := c.(*lantern.Rebuild); ok {
			id = r.Builder
			it.source, it.output, it.finished = r.Source, r.Output, r.Finished
			it.subject = r.Source.String() + " (" + r.Source.Digest.String() + ") " + r.Label
		} else {
			f := c.(*lantern.RebuildFailure)
			id, it.source, it.finished = f.Builder, f.Source, f.Finished
		}
		k, ok := builders[id.String()]
		if !ok || k.ecdsa == nil {
			it.Reason, it.Why = ReasonUntrusted, fmt.Sprintf("untrusted key: builder %s is not in the policy", id)
			return it
		}
		if _, err := env.Verify(attest.PayloadType, k.ecdsa); err != nil {
			it.Reason, it.Why = ReasonBadSignature, fmt.Sprintf("bad signature: says it is by trusted builder %s, whose key does not verify it: %v", k, err)
			return it
		}
		it.Signer, it.trusted = k.ID, true
		return it
	case *lantern.SourceClaim:
		candidates, want = authorKeys(p, c.Source.Name), "an author of "+c.Source.Name
		it.source = c.Source
	case *lantern.Yank:
		candidates, want = authorKeys(p, c.Source.Name), "an author of "+c.Source.Name
		it.source = c.Source
	case *lantern.Trust:
		if !c.Revoked {
			it.Reason, it.Why = ReasonIgnored, "a trust claim: whom to trust is the policy's to say, never the evidence's"
			return it
		}
		// A key may always revoke itself; authors in the policy may revoke
		// builders, and authors of a name an author of it.
		want = "the revoked key itself or an author in the policy"
		for _, k := range p.Builders {
			if k.ID == c.Key.String() {
				candidates = append(candidates, k)
			}
		}
		for _, a := range p.Authors {
			if a.Key.ID == c.Key.String() || c.Relation == lantern.RelationTrustedBuilder || a.authors(c.Name) {
				candidates = append(candidates, a.Key)
			}
		}
	}
	for _, k := range candidates {
		if k.ecdsa == nil {
			continue
		}
		if _, err := env.Verify(attest.PayloadType, k.ecdsa); err == nil {
			it.Signer, it.trusted = k.ID, true
			return it
		}
	}
	it.Reason, it.Why = ReasonUntrusted, fmt.Sprintf("untrusted key: a %s claim not signed by %s", c.Kind(), want)
	return it
}

func authorKeys(p *Policy, name string) []Key {
	var ks []Key
	for _, a := range p.Authors {
		if a.authors(name) {
			ks = append(ks, a.Key)
		}
	}
	return ks
}

func weighLink(it Item, link *rebuilderd.Link, edKeys []Key) Item {
	pubs := make([]ed25519.PublicKey, 0, len(edKeys))
	for _, k := range edKeys {
		pubs = append(pubs, k.ed)
	}
	verified, err := link.Verify(pubs...)
	switch {
	case errors.Is(err, rebuilderd.ErrNotTrusted):
		it.Reason, it.Why = ReasonUntrusted, "untrusted key: "+err.Error()
		return it
	case err != nil:
		it.Reason, it.Why = ReasonBadSignature, "bad signature: "+err.Error()
		return it
	}
	// A link counts once, for the first trusted key that signed it: the
	// keys of one rebuilder (its worker's, its instance's) are one builder,
	// across links too (see count).
	for _, k := range verified {
		it.cosigners = append(it.cosigners, lantern.DigestPrefix+rebuilderd.KeyID(k))
	}
	it.Signer, it.trusted = it.cosigners[0], true
	it.products = link.Products()
	return it
}
