package verify_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/verify"
)

const (
	toolName = "example.org/tool"
	label    = "tool_linux_amd64"
)

// The parties of the tests: Lantern builders, authors and a stranger (all
// ECDSA), and rebuilderd instances (Ed25519).
type parties struct {
	a, b, c, stranger    ecKey // builders; stranger is in no policy
	author, author2      ecKey // authors of toolName (or example.org/...)
	otherAuthor          ecKey // an author of example.org/other only
	e1, e2, edStranger   edKey
	sample               verify.Key // the rebuilderd sample's instance key
	s1, s2               lantern.Source
	art, other, otherPkg lantern.Digest
}

func newParties(t *testing.T) *parties {
	t.Helper()
	sample, err := verify.ParseKey(readSample(t, sampleKey), sampleKey)
	if err != nil {
		t.Fatalf("ParseKey(%s) = %v", sampleKey, err)
	}
	return &parties{
		a: newECKey(t, "a.pub"), b: newECKey(t, "b.pub"), c: newECKey(t, "c.pub"), stranger: newECKey(t, "stranger.pub"),
		author: newECKey(t, "author.pub"), author2: newECKey(t, "author2.pub"), otherAuthor: newECKey(t, "other-author.pub"),
		e1: newEdKey(t, "e1.pub"), e2: newEdKey(t, "e2.pub"), edStranger: newEdKey(t, "ed-stranger.pub"),
		sample: sample,
		s1:     src(toolName, "1"), s2: src(toolName, "2"),
		art: out("the tool"), other: out("other bytes"), otherPkg: out("another package"),
	}
}

func policy(threshold int, builders ...verify.Key) verify.Policy {
	return verify.Policy{Builders: builders, Threshold: threshold}
}

func withAuthors(p verify.Policy, authors ...verify.Author) verify.Policy {
	p.Authors = authors
	return p
}

func withMaxAge(p verify.Policy, age time.Duration) verify.Policy {
	p.MaxAge = age
	return p
}

type decideCase struct {
	name     string
	policy   verify.Policy
	artefact lantern.Digest // the parties' art if zero
	pieces   []verify.Piece
	want     verify.Result
	reasons  []verify.Reason
	agreeing []verify.Key
	// contradiction, if set, must each be in one of the decision's
	// contradictions; why, by piece index, in that item's Why.
	contradiction []string
	why           map[int]string
}

// swapPayload returns env with the payload of from: a signature by one
// key over other bytes.
func swapPayload(t *testing.T, env, from verify.Piece) verify.Piece {
	t.Helper()
	var e, f map[string]any
	if err := json.Unmarshal(env.Raw, &e); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(from.Raw, &f); err != nil {
		t.Fatal(err)
	}
	e["payload"] = f["payload"]
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return verify.Piece{Origin: env.Origin, Raw: b}
}

// TestDecide weighs evidence under policies, each piece with its reason;
// most cases are attacks: evidence that must not count, or must not change
// the result, whatever it says.
func TestDecide(t *testing.T) {
	p := newParties(t)
	a, b, c, s := p.a, p.b, p.c, p.stranger
	au, au2, au3 := p.author, p.author2, p.otherAuthor
	toolAuthor := verify.Author{Name: toolName, Key: au.key}
	otherAuthor := verify.Author{Name: "example.org/other", Key: au3.key}

	// rb signs, as k, a rebuild of source to output that names builder as
	// its builder.
	rb := func(origin string, k ecKey, builder lantern.Digest, source lantern.Source, lbl string, output lantern.Digest) verify.Piece {
		return piece(t, origin, k.priv, rebuild(builder, source, lbl, output))
	}
	agrees := func(origin string, k ecKey) verify.Piece {
		return rb(origin, k, k.id(), p.s1, label, p.art)
	}
	sign := func(origin string, k ecKey, cl lantern.Claim) verify.Piece {
		return piece(t, origin, k.priv, cl)
	}
	aAgrees := agrees("a", a)
	later := rebuild(a.id(), p.s1, label, p.art)
	later.Finished = later.Finished.Add(time.Minute)
	aToOther := rb("a-other", a, a.id(), p.s1, label, p.other)
	old := rebuild(b.id(), p.s1, label, p.other)
	old.Started, old.Finished = finished.AddDate(0, 0, -10), finished.AddDate(0, 0, -10)
	edID := func(k verify.Key) lantern.Digest { return lantern.MustParseDigest(k.ID) }
	pkg := "tool-1.0-1-any.pkg.tar.zst"

	for _, tc := range []decideCase{
		// Thresholds.
		{name: "a trusted builder agrees", policy: policy(1, a.key), pieces: []verify.Piece{aAgrees},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "no evidence", policy: policy(1, a.key),
			want: verify.NotVerified},
		{name: "threshold 2, one builder", policy: policy(2, a.key, b.key), pieces: []verify.Piece{aAgrees},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "threshold 2, two builders", policy: policy(2, a.key, b.key), pieces: []verify.Piece{aAgrees, agrees("b", b)},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonAgrees}, agreeing: []verify.Key{a.key, b.key}},
		{name: "threshold 3, two of three builders", policy: policy(3, a.key, b.key, c.key), pieces: []verify.Piece{aAgrees, agrees("b", b)},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonAgrees}, agreeing: []verify.Key{a.key, b.key}},
		{name: "threshold 3, three builders", policy: policy(3, a.key, b.key, c.key), pieces: []verify.Piece{aAgrees, agrees("b", b), agrees("c", c)},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonAgrees, verify.ReasonAgrees}, agreeing: []verify.Key{a.key, b.key, c.key}},
		{name: "a key listed twice is one builder", policy: policy(2, a.key, a.key), pieces: []verify.Piece{aAgrees},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},

		// A builder counts once.
		{name: "the same builder through two envelopes", policy: policy(2, a.key, b.key), pieces: []verify.Piece{aAgrees, sign("a-again", a, later)},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonCounted}, agreeing: []verify.Key{a.key}},
		{name: "the same envelope from two farms", policy: policy(2, a.key, b.key),
			pieces: []verify.Piece{{Origin: "farm-1", Raw: aAgrees.Raw}, {Origin: "farm-2", Raw: aAgrees.Raw}},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonCounted}, agreeing: []verify.Key{a.key}},

		// Keys the policy does not name never count.
		{name: "an untrusted builder", policy: policy(1, a.key), pieces: []verify.Piece{agrees("s", s)},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonUntrusted}},
		{name: "an untrusted key claims a trusted builder's id", policy: policy(1, a.key), pieces: []verify.Piece{rb("s", s, a.id(), p.s1, label, p.art)},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonBadSignature}, why: map[int]string{0: "bad signature"}},
		{name: "a trusted builder's signature over other bytes", policy: policy(1, a.key), pieces: []verify.Piece{swapPayload(t, aToOther, aAgrees)},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonBadSignature}},
		{name: "a trusted builder's damaged signature", policy: policy(1, a.key),
			pieces: []verify.Piece{{Origin: "a", Raw: []byte(strings.Replace(string(aAgrees.Raw), `"sig":"M`, `"sig":"N`, 1))}},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonBadSignature}},
		{name: "an untrusted failure claims a trusted builder's id", policy: policy(1, a.key), pieces: []verify.Piece{sign("s", s, failure(a.id(), p.s1)), aAgrees},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonBadSignature, verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "an untrusted trust claim adds itself as a builder", policy: policy(1, a.key), pieces: []verify.Piece{sign("s-trust", s, trustBuilder(s.id())), agrees("s", s)},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonIgnored, verify.ReasonUntrusted}},
		{name: "a trusted builder vouches for another", policy: policy(1, a.key), pieces: []verify.Piece{sign("a-trust", a, trustBuilder(s.id())), agrees("s", s)},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonIgnored, verify.ReasonUntrusted}},
		{name: "an author vouches for a builder", policy: withAuthors(policy(1, a.key), otherAuthor), pieces: []verify.Piece{sign("au3-trust", au3, trustBuilder(s.id())), agrees("s", s)},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonIgnored, verify.ReasonUntrusted}},
		{name: "an untrusted contradiction changes nothing", policy: policy(1, a.key), pieces: []verify.Piece{aAgrees, rb("s", s, s.id(), p.s1, label, p.other)},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonUntrusted}, agreeing: []verify.Key{a.key}},
		{name: "a forged contradiction in a trusted builder's name changes nothing", policy: policy(1, a.key, b.key), pieces: []verify.Piece{aAgrees, rb("s", s, b.id(), p.s1, label, p.other)},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonBadSignature}, agreeing: []verify.Key{a.key}},
		{name: "an untrusted revocation changes nothing", policy: policy(1, a.key), pieces: []verify.Piece{sign("s-revoke", s, revokeBuilder(a.id())), aAgrees},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonUntrusted, verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "an untrusted yank changes nothing", policy: withAuthors(policy(1, a.key), toolAuthor),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), aAgrees, sign("s-yank", s, yank(p.s1))},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonAgrees, verify.ReasonUntrusted}, agreeing: []verify.Key{a.key}},
		{name: "an untrusted conflicting claim changes nothing", policy: withAuthors(policy(1, a.key), toolAuthor),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), aAgrees, sign("s-claim", s, claim(p.s2))},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonAgrees, verify.ReasonUntrusted}, agreeing: []verify.Key{a.key}},
		{name: "a builder's claim of a source is not an author's", policy: withAuthors(policy(1, a.key), toolAuthor),
			pieces: []verify.Piece{sign("a-claim", a, claim(p.s1)), aAgrees},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonUntrusted, verify.ReasonNotAuthored}},
		{name: "an ECDSA rebuild naming a rebuilderd key's id", policy: policy(1, p.e1.key), pieces: []verify.Piece{rb("s", s, edID(p.e1.key), p.s1, label, p.art)},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonUntrusted}},

		// Revocations.
		{name: "a builder revokes itself", policy: policy(1, a.key), pieces: []verify.Piece{sign("a-revoke", a, revokeBuilder(a.id())), aAgrees},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonRevoked}},
		{name: "a builder's revocation of itself after its rebuild", policy: policy(1, a.key), pieces: []verify.Piece{aAgrees, sign("a-revoke", a, revokeBuilder(a.id()))},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonRevoked, verify.ReasonRevocation}},
		{name: "a builder cannot revoke another", policy: policy(1, a.key, b.key), pieces: []verify.Piece{sign("b-revoke", b, revokeBuilder(a.id())), aAgrees},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonUntrusted, verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "an author revokes a builder", policy: withAuthors(policy(1, a.key, b.key), toolAuthor),
			pieces: []verify.Piece{sign("au-revoke", au, revokeBuilder(a.id())), sign("au-claim", au, claim(p.s1)), aAgrees, agrees("b", b)},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonClaim, verify.ReasonRevoked, verify.ReasonAgrees}, agreeing: []verify.Key{b.key},
			why: map[int]string{2: "revoked"}},
		// A revocation takes away only what a key adds: revoking a builder
		// (here by an author of another name, who might be an attacker
		// holding that key) cannot hide its contradiction.
		{name: "a revoked builder's contradiction still contradicts", policy: withAuthors(policy(1, a.key, b.key), otherAuthor),
			pieces: []verify.Piece{sign("au3-revoke", au3, revokeBuilder(b.id())), aAgrees, rb("b", b, b.id(), p.s1, label, p.other)},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonAgrees, verify.ReasonContradicts}, agreeing: []verify.Key{a.key},
			why: map[int]string{2: "which hides nothing"}},
		{name: "a builder's revocation of itself does not hide its contradiction", policy: policy(1, a.key, b.key),
			pieces: []verify.Piece{sign("b-revoke", b, revokeBuilder(b.id())), aAgrees, rb("b", b, b.id(), p.s1, label, p.other)},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonAgrees, verify.ReasonContradicts}, agreeing: []verify.Key{a.key}},
		{name: "a revoked author's conflicting claim still conflicts", policy: withAuthors(policy(1, a.key), toolAuthor, verify.Author{Name: toolName, Key: au2.key}),
			pieces: []verify.Piece{sign("au-revoke", au, revokeAuthor(au2.id(), toolName)), sign("au-claim", au, claim(p.s1)), aAgrees, sign("au2-claim", au2, claim(p.s2))},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonClaim, verify.ReasonAgrees, verify.ReasonRevoked}, agreeing: []verify.Key{a.key}},
		{name: "an author revokes another author", policy: withAuthors(policy(1, a.key), toolAuthor, verify.Author{Name: toolName, Key: au2.key}),
			pieces: []verify.Piece{sign("au-revoke", au, revokeAuthor(au2.id(), toolName)), sign("au2-claim", au2, claim(p.s1)), aAgrees},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonRevoked, verify.ReasonNotAuthored}},
		{name: "an author revokes another author of a prefix", policy: withAuthors(policy(1, a.key), verify.Author{Name: "example.org/...", Key: au.key}, verify.Author{Name: "example.org/...", Key: au2.key}),
			pieces: []verify.Piece{sign("au-revoke", au, revokeAuthor(au2.id(), "example.org/...")), sign("au2-claim", au2, claim(p.s1)), aAgrees},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonRevoked, verify.ReasonNotAuthored}},
		{name: "a revocation of an author of one name leaves the others", policy: withAuthors(policy(1, a.key), verify.Author{Name: "example.org/...", Key: au.key}, verify.Author{Name: "example.org/...", Key: au2.key}),
			pieces: []verify.Piece{sign("au-revoke", au, revokeAuthor(au2.id(), "example.org/other")), sign("au2-claim", au2, claim(p.s1)), aAgrees},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonClaim, verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "an author of one name cannot revoke an author of its prefix", policy: withAuthors(policy(1, a.key), toolAuthor, verify.Author{Name: "example.org/...", Key: au2.key}),
			pieces: []verify.Piece{sign("au-revoke", au, revokeAuthor(au2.id(), "example.org/...")), sign("au2-claim", au2, claim(p.s1)), aAgrees},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonUntrusted, verify.ReasonClaim, verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "an author of another name cannot revoke an author", policy: withAuthors(policy(1, a.key), toolAuthor, otherAuthor),
			pieces: []verify.Piece{sign("au3-revoke", au3, revokeAuthor(au.id(), toolName)), sign("au-claim", au, claim(p.s1)), aAgrees},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonUntrusted, verify.ReasonClaim, verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "an author revokes a rebuilderd key", policy: withAuthors(policy(1, p.e1.key), otherAuthor),
			pieces: []verify.Piece{sign("au3-revoke", au3, revokeBuilder(edID(p.e1.key))), link(t, "e1", map[string]lantern.Digest{pkg: p.art}, p.e1)},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonRevoked}},
		{name: "a revoked author's yank still contradicts", policy: withAuthors(policy(1, a.key), toolAuthor, verify.Author{Name: toolName, Key: au2.key}),
			pieces: []verify.Piece{sign("au-revoke", au, revokeAuthor(au2.id(), toolName)), sign("au-claim", au, claim(p.s1)), aAgrees, sign("au2-yank", au2, yank(p.s1))},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonRevocation, verify.ReasonClaim, verify.ReasonAgrees, verify.ReasonYanked}, agreeing: []verify.Key{a.key}},

		// Authors.
		{name: "a rebuild of an unclaimed source", policy: withAuthors(policy(1, a.key), toolAuthor), pieces: []verify.Piece{aAgrees},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonNotAuthored}, why: map[int]string{0: "no source claim"}},
		{name: "a rebuild of a claimed source", policy: withAuthors(policy(1, a.key), toolAuthor), pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), aAgrees},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "claimed by an author of the name's prefix", policy: withAuthors(policy(1, a.key), verify.Author{Name: "example.org/...", Key: au.key}),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), aAgrees},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "claimed by an author of another name", policy: withAuthors(policy(1, a.key), toolAuthor, otherAuthor),
			pieces: []verify.Piece{sign("au3-claim", au3, claim(p.s1)), aAgrees},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonUntrusted, verify.ReasonNotAuthored}},
		{name: "claimed by an author of a name that only starts the same", policy: withAuthors(policy(1, a.key), verify.Author{Name: "example.org/to/...", Key: au.key}, verify.Author{Name: "example.org/tool/...", Key: au2.key}),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), aAgrees},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonUntrusted, verify.ReasonNotAuthored}},
		{name: "a name without authors needs no claim", policy: withAuthors(policy(1, a.key), otherAuthor), pieces: []verify.Piece{aAgrees},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "two authors claim two sources", policy: withAuthors(policy(1, a.key), toolAuthor, verify.Author{Name: toolName, Key: au2.key}),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), sign("au2-claim", au2, claim(p.s2)), aAgrees},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonClaim, verify.ReasonAgrees}, agreeing: []verify.Key{a.key},
			contradiction: []string{"source conflict", "2 sources", p.s1.Digest.String(), p.s2.Digest.String()}},
		{name: "one author claims two sources", policy: withAuthors(policy(1, a.key), toolAuthor),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), sign("au-claim-2", au, claim(p.s2)), aAgrees},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonClaim, verify.ReasonAgrees}, agreeing: []verify.Key{a.key},
			contradiction: []string{"2 sources"}},
		{name: "rebuilt from a source the authors did not claim", policy: withAuthors(policy(1, a.key), toolAuthor),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s2)), aAgrees},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonConflict},
			contradiction: []string{"source conflict", p.s1.Digest.String()}},
		{name: "without authors, rebuilds from two sources conflict", policy: policy(1, a.key, b.key),
			pieces: []verify.Piece{aAgrees, rb("b", b, b.id(), p.s2, label, p.art)},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonAgrees}, agreeing: []verify.Key{a.key, b.key},
			contradiction: []string{"2 sources"}},
		{name: "an author's yank", policy: withAuthors(policy(1, a.key), toolAuthor),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), aAgrees, sign("au-yank", au, yank(p.s1))},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonAgrees, verify.ReasonYanked}, agreeing: []verify.Key{a.key},
			contradiction: []string{"yanked", au.key.ID, "au-yank"}},
		{name: "a yank of another source of the name", policy: withAuthors(policy(1, a.key), toolAuthor),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), aAgrees, sign("au-yank", au, yank(p.s2))},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonAgrees, verify.ReasonIgnored}, agreeing: []verify.Key{a.key}},
		{name: "a yank by an author of another name", policy: withAuthors(policy(1, a.key), toolAuthor, otherAuthor),
			pieces: []verify.Piece{sign("au-claim", au, claim(p.s1)), aAgrees, sign("au3-yank", au3, yank(p.s1))},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonClaim, verify.ReasonAgrees, verify.ReasonUntrusted}, agreeing: []verify.Key{a.key}},

		// Contradictions by trusted builders.
		{name: "a trusted builder got other bytes", policy: policy(1, a.key, b.key), pieces: []verify.Piece{aAgrees, rb("farm-b", b, b.id(), p.s1, label, p.other)},
			want: verify.Contradicted, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonContradicts}, agreeing: []verify.Key{a.key},
			contradiction: []string{"farm-b", b.key.ID, p.other.String()}},
		{name: "a contradiction with the threshold met", policy: policy(2, a.key, b.key, c.key), pieces: []verify.Piece{aAgrees, agrees("b", b), rb("c", c, c.id(), p.s1, label, p.other)},
			want: verify.Contradicted, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonAgrees, verify.ReasonContradicts}, agreeing: []verify.Key{a.key, b.key}},
		{name: "a builder contradicts itself", policy: policy(1, a.key), pieces: []verify.Piece{aAgrees, aToOther},
			want: verify.Contradicted, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonContradicts}, agreeing: []verify.Key{a.key}},
		{name: "another label's other bytes", policy: policy(1, a.key, b.key), pieces: []verify.Piece{aAgrees, rb("b", b, b.id(), p.s1, "tool_linux_arm64", p.other)},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonOtherArtefact}, agreeing: []verify.Key{a.key}},
		{name: "another source's other bytes", policy: policy(1, a.key, b.key), pieces: []verify.Piece{aAgrees, rb("b", b, b.id(), p.s2, label, p.other)},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonOtherArtefact}, agreeing: []verify.Key{a.key}},
		{name: "only another artefact", policy: policy(1, a.key), pieces: []verify.Piece{aToOther},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonOtherArtefact}},

		// Age, failures, the unreadable.
		{name: "too old", policy: withMaxAge(policy(1, a.key), 24*time.Hour), pieces: []verify.Piece{aAgrees},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonTooOld}, why: map[int]string{0: "too old"}},
		{name: "exactly the maximum age", policy: withMaxAge(policy(1, a.key), now.Sub(finished)), pieces: []verify.Piece{aAgrees},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},
		{name: "a second past the maximum age", policy: withMaxAge(policy(1, a.key), now.Sub(finished)-time.Second), pieces: []verify.Piece{aAgrees},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonTooOld}},
		{name: "a too-old contradiction does not contradict", policy: withMaxAge(policy(1, a.key, b.key), 7*24*time.Hour), pieces: []verify.Piece{aAgrees, sign("b", b, old)},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonTooOld}, agreeing: []verify.Key{a.key}},
		{name: "a failed rebuild", policy: policy(1, a.key), pieces: []verify.Piece{sign("a", a, failure(a.id(), p.s1))},
			want: verify.NotVerified, reasons: []verify.Reason{verify.ReasonFailed}},
		{name: "a failed rebuild does not contradict", policy: policy(1, a.key, b.key), pieces: []verify.Piece{aAgrees, sign("b", b, failure(b.id(), p.s1))},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonFailed}, agreeing: []verify.Key{a.key}},
		{name: "unreadable pieces", policy: policy(1, a.key),
			pieces: []verify.Piece{{Origin: "empty"}, {Origin: "text", Raw: []byte("hello")}, {Origin: "object", Raw: []byte("{}")},
				{Origin: "not a statement", Raw: []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"aGVsbG8=","signatures":[{"sig":"aGVsbG8="}]}`)}, aAgrees},
			want: verify.Verified, reasons: []verify.Reason{verify.ReasonUnreadable, verify.ReasonUnreadable, verify.ReasonUnreadable, verify.ReasonUnreadable, verify.ReasonAgrees}, agreeing: []verify.Key{a.key}},

		// rebuilderd's in-toto links.
		{name: "the rebuilderd sample, its key trusted", policy: policy(1, p.sample), artefact: lantern.DigestOf(readSample(t, samplePkg)),
			pieces: []verify.Piece{{Origin: sampleLink, Raw: readSample(t, sampleLink)}},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees}, agreeing: []verify.Key{p.sample}},
		{name: "the rebuilderd sample, broken", policy: policy(1, p.sample), artefact: lantern.DigestOf(readSample(t, samplePkg)),
			pieces: []verify.Piece{{Origin: sampleInvalid, Raw: readSample(t, sampleInvalid)}},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonBadSignature}, why: map[int]string{0: "signature does not verify"}},
		{name: "the rebuilderd sample, its key not trusted", policy: policy(1, p.e1.key, a.key), artefact: lantern.DigestOf(readSample(t, samplePkg)),
			pieces: []verify.Piece{{Origin: sampleLink, Raw: readSample(t, sampleLink)}},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonUntrusted}},
		{name: "the rebuilderd sample, another artefact", policy: policy(1, p.sample),
			pieces: []verify.Piece{{Origin: sampleLink, Raw: readSample(t, sampleLink)}},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonOtherArtefact}},
		{name: "the rebuilderd sample, too old by any maximum age", policy: withMaxAge(policy(1, p.sample), 100000*24*time.Hour), artefact: lantern.DigestOf(readSample(t, samplePkg)),
			pieces: []verify.Piece{{Origin: sampleLink, Raw: readSample(t, sampleLink)}},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonTooOld}},
		{name: "two rebuilders' links", policy: policy(2, p.e1.key, p.e2.key),
			pieces: []verify.Piece{link(t, "e1", map[string]lantern.Digest{pkg: p.art}, p.e1), link(t, "e2", map[string]lantern.Digest{pkg: p.art}, p.e2)},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonAgrees}, agreeing: []verify.Key{p.e1.key, p.e2.key}},
		{name: "one link signed by two trusted keys counts once", policy: policy(2, p.e1.key, p.e2.key),
			pieces: []verify.Piece{link(t, "e1+e2", map[string]lantern.Digest{pkg: p.art}, p.e1, p.e2)},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonAgrees}, agreeing: []verify.Key{p.e1.key}},
		{name: "one rebuilder's two links count once", policy: policy(2, p.e1.key, p.e2.key),
			pieces: []verify.Piece{link(t, "e1", map[string]lantern.Digest{pkg: p.art}, p.e1), link(t, "e1-again", map[string]lantern.Digest{pkg: p.art, "debug.pkg": p.otherPkg}, p.e1)},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonCounted}, agreeing: []verify.Key{p.e1.key}},
		{name: "a link signed by a trusted and an untrusted key", policy: policy(1, p.e1.key),
			pieces: []verify.Piece{link(t, "e1+s", map[string]lantern.Digest{pkg: p.art}, p.edStranger, p.e1)},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees}, agreeing: []verify.Key{p.e1.key}},
		{name: "an untrusted link", policy: policy(1, p.e1.key),
			pieces: []verify.Piece{link(t, "s", map[string]lantern.Digest{pkg: p.art}, p.edStranger)},
			want:   verify.NotVerified, reasons: []verify.Reason{verify.ReasonUntrusted}},
		{name: "a trusted link contradicts", policy: policy(1, p.e1.key, p.e2.key),
			pieces: []verify.Piece{link(t, "e1", map[string]lantern.Digest{pkg: p.art}, p.e1), link(t, "e2", map[string]lantern.Digest{pkg: p.other}, p.e2)},
			want:   verify.Contradicted, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonContradicts}, agreeing: []verify.Key{p.e1.key},
			contradiction: []string{"e2", p.e2.key.ID, "product " + pkg}},
		{name: "an untrusted link contradicts nothing", policy: policy(1, p.e1.key),
			pieces: []verify.Piece{link(t, "e1", map[string]lantern.Digest{pkg: p.art}, p.e1), link(t, "s", map[string]lantern.Digest{pkg: p.other}, p.edStranger)},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonUntrusted}, agreeing: []verify.Key{p.e1.key}},
		{name: "a link of another product", policy: policy(1, p.e1.key, p.e2.key),
			pieces: []verify.Piece{link(t, "e1", map[string]lantern.Digest{pkg: p.art}, p.e1), link(t, "e2", map[string]lantern.Digest{"other.pkg": p.other}, p.e2)},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonOtherArtefact}, agreeing: []verify.Key{p.e1.key}},
		{name: "a Lantern builder and a rebuilder together", policy: policy(2, a.key, p.e1.key),
			pieces: []verify.Piece{aAgrees, link(t, "e1", map[string]lantern.Digest{pkg: p.art}, p.e1)},
			want:   verify.Verified, reasons: []verify.Reason{verify.ReasonAgrees, verify.ReasonAgrees}, agreeing: []verify.Key{a.key, p.e1.key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			art := tc.artefact
			if art.IsZero() {
				art = p.art
			}
			d := verify.Decide(&tc.policy, art, tc.pieces, now)
			checkDecision(t, &tc.policy, d)
			if d.Result != tc.want {
				t.Errorf("Decide().Result = %s, want %s\n%s", d.Result, tc.want, explain(d))
			}
			if diff := cmp.Diff(tc.reasons, reasons(d)); diff != "" {
				t.Errorf("Decide() reasons (-want +got):\n%s\n%s", diff, explain(d))
			}
			var want []string
			for _, k := range tc.agreeing {
				want = append(want, k.ID)
			}
			slices.Sort(want)
			if diff := cmp.Diff(want, d.Agreeing, cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })); diff != "" {
				t.Errorf("Decide().Agreeing (-want +got):\n%s", diff)
			}
			all := strings.Join(d.Contradictions, "\n")
			for _, w := range tc.contradiction {
				if !strings.Contains(all, w) {
					t.Errorf("Decide().Contradictions = %q, want one with %q", d.Contradictions, w)
				}
			}
			for i, w := range tc.why {
				if !strings.Contains(d.Evidence[i].Why, w) {
					t.Errorf("Decide().Evidence[%d].Why = %q, want %q in it", i, d.Evidence[i].Why, w)
				}
			}
		})
	}
}

// checkDecision checks what must hold of every decision: each piece is
// listed, in order, with a reason and why; only agreeing pieces count, each
// by a key the policy trusts as a builder, once; the result follows.
func checkDecision(t *testing.T, p *verify.Policy, d *verify.Decision) {
	t.Helper()
	trusted := map[string]bool{}
	for _, k := range p.Builders {
		trusted[k.ID] = true
	}
	var counted []string
	for i, it := range d.Evidence {
		if it.Reason == "" || it.Why == "" {
			t.Errorf("Evidence[%d] = %+v: no reason or why", i, it)
		}
		if it.Counts != (it.Reason == verify.ReasonAgrees) {
			t.Errorf("Evidence[%d]: counts %v with reason %s", i, it.Counts, it.Reason)
		}
		if it.Counts {
			if !trusted[it.Signer] {
				t.Errorf("Evidence[%d] counts, signed by %q, not a builder of the policy", i, it.Signer)
			}
			counted = append(counted, it.Signer)
		}
	}
	slices.Sort(counted)
	if !slices.Equal(counted, d.Agreeing) || len(slices.Compact(slices.Clone(counted))) != len(counted) {
		t.Errorf("counted %q, Agreeing %q: want each agreeing builder counted once", counted, d.Agreeing)
	}
	want := verify.NotVerified
	switch {
	case len(d.Contradictions) > 0:
		want = verify.Contradicted
	case p.Threshold >= 1 && len(d.Agreeing) >= p.Threshold:
		want = verify.Verified
	}
	if d.Result != want {
		t.Errorf("Result %s with %d agreeing of %d and %d contradictions, want %s", d.Result, len(d.Agreeing), p.Threshold, len(d.Contradictions), want)
	}
	if d.Policy != p.Digest() || d.Threshold != p.Threshold || !d.Time.Equal(now) {
		t.Errorf("Decision names policy %s, threshold %d, time %s; want %s, %d, %s", d.Policy, d.Threshold, d.Time, p.Digest(), p.Threshold, now)
	}
}

func explain(d *verify.Decision) string {
	var b strings.Builder
	for _, it := range d.Evidence {
		b.WriteString("  " + it.Origin + ": " + string(it.Reason) + ": " + it.Why + "\n")
	}
	for _, c := range d.Contradictions {
		b.WriteString("  contradiction: " + c + "\n")
	}
	return b.String()
}

// TestSourcesOfUnauthoredRebuilds: where the policy names authors, the
// evidence about an artefact (its rebuilds) holds no source claims yet, so
// its rebuilds are not authored; Sources must still name their source, or a
// reader of a farm never asks for the claims that would author them.
func TestSourcesOfUnauthoredRebuilds(t *testing.T) {
	p := newParties(t)
	pol := withAuthors(policy(1, p.a.key), verify.Author{Name: toolName, Key: p.author.key})
	rebuilt := piece(t, "a", p.a.priv, rebuild(p.a.id(), p.s1, label, p.art))
	d := verify.Decide(&pol, p.art, []verify.Piece{rebuilt}, now)
	if d.Result != verify.NotVerified {
		t.Fatalf("Decide(a rebuild, no claim).Result = %s, want %s", d.Result, verify.NotVerified)
	}
	if diff := cmp.Diff([]string{p.s1.String()}, d.Sources()); diff != "" {
		t.Fatalf("Sources() (-want +got):\n%s", diff)
	}
	// What a reader then fetches about the source authors the rebuild.
	d = verify.Decide(&pol, p.art, []verify.Piece{rebuilt, piece(t, "au", p.author.priv, claim(p.s1))}, now)
	if d.Result != verify.Verified {
		t.Errorf("Decide(a rebuild, its claim).Result = %s, want %s\n%s", d.Result, verify.Verified, explain(d))
	}
	// A rebuild of another artefact, or by an untrusted builder, names no
	// source to ask about.
	d = verify.Decide(&pol, p.art, []verify.Piece{
		piece(t, "a", p.a.priv, rebuild(p.a.id(), src("example.org/elsewhere", "1"), label, p.other)),
		piece(t, "s", p.stranger.priv, rebuild(p.stranger.id(), src("example.org/stranger", "1"), label, p.art)),
	}, now)
	if len(d.Sources()) != 0 {
		t.Errorf("Sources() = %q, want none", d.Sources())
	}
}

// TestDecideInvalidPolicy: Decide is given a policy no one validated; a
// threshold below 1 must not verify an artefact with no evidence at all.
func TestDecideInvalidPolicy(t *testing.T) {
	p := newParties(t)
	for _, threshold := range []int{0, -1} {
		pol := policy(threshold, p.a.key)
		if d := verify.Decide(&pol, p.art, nil, now); d.Result != verify.NotVerified {
			t.Errorf("Decide(threshold %d, no evidence).Result = %s, want %s", threshold, d.Result, verify.NotVerified)
		}
		pol = policy(threshold)
		if d := verify.Decide(&pol, p.art, []verify.Piece{piece(t, "a", p.a.priv, rebuild(p.a.id(), p.s1, label, p.art))}, now); d.Result != verify.NotVerified {
			t.Errorf("Decide(threshold %d, no builders).Result = %s, want %s", threshold, d.Result, verify.NotVerified)
		}
	}
}

// TestCheckedDecidesAgain: evidence checked once and decided on, then added
// to and decided on again, decides as all of it at once does; the first
// decision's marks do not carry into the second.
func TestCheckedDecidesAgain(t *testing.T) {
	p := newParties(t)
	pol := withAuthors(policy(2, p.a.key, p.b.key), verify.Author{Name: toolName, Key: p.author.key})
	first := []verify.Piece{
		piece(t, "a", p.a.priv, rebuild(p.a.id(), p.s1, label, p.art)),
		piece(t, "b", p.b.priv, rebuild(p.b.id(), p.s1, label, p.art)),
		piece(t, "s", p.stranger.priv, rebuild(p.stranger.id(), p.s1, label, p.art)),
	}
	more := []verify.Piece{piece(t, "au", p.author.priv, claim(p.s1))}
	c := verify.Check(&pol, first)
	if d := c.Decide(p.art, now); d.Result != verify.NotVerified || len(d.Agreeing) != 0 {
		t.Fatalf("first Decide = %s with %d agreeing, want not-verified (no author's claim yet)\n%s", d.Result, len(d.Agreeing), explain(d))
	}
	c.Add(more)
	got := c.Decide(p.art, now)
	want := verify.Decide(&pol, p.art, append(first, more...), now)
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(verify.Item{}, verify.Decision{})); diff != "" {
		t.Errorf("Checked.Decide after Add (-all at once +got):\n%s", diff)
	}
	if got.Result != verify.Verified {
		t.Errorf("after the claim: %s, want verified\n%s", got.Result, explain(got))
	}
	// Deciding for another artefact from the same checked evidence.
	if d := c.Decide(p.other, now); d.Result != verify.NotVerified || len(d.Agreeing) != 0 {
		t.Errorf("Decide(another artefact) = %s with %d agreeing, want not-verified, none", d.Result, len(d.Agreeing))
	}
}
