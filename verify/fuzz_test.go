package verify_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/verify"
	"github.com/lanternfarm/lantern/verify/evidence"
)

// FuzzParseFile reads policy files, which people write and copy around:
// ParseFile must never panic, every error is ErrPolicy, and what it
// accepts is a policy Validate accepts, which reads back the same once
// written out again.
func FuzzParseFile(f *testing.F) {
	for _, s := range []string{
		`{"threshold": 2, "builders": ["keys/builder-1.pub", "keys/reproducible-archlinux.pub"], "authors": {"golang.org/x/tools/...": ["keys/go-release.pub"]}, "maxAge": "2160h"}`,
		`{"threshold":1,"builders":["-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"],"maxAge":"90d"}`,
		`{}`, `{"threshold":1e1}`, `{"threshold":"1"}`, `{"authors":{"a":[],"a":[]}}`, `{"authors":{"a/.../b":[]}}`,
		`{"maxAge":"-1h"}`, `{"builders":["\u00e9\ud83d\ude00"]}`, `{"threshold":1} x`, `[1]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := verify.ParseFile(b)
		if err != nil {
			if !errors.Is(err, verify.ErrPolicy) {
				t.Fatalf("ParseFile() = %v, want %v", err, verify.ErrPolicy)
			}
			return
		}
		if pf.Threshold < 0 || pf.MaxAge < 0 {
			t.Fatalf("ParseFile() = %+v: a negative threshold or age", pf)
		}
		p := verify.Policy{Builders: []verify.Key{{ID: "sha256:0"}}, Threshold: max(pf.Threshold, 1), MaxAge: pf.MaxAge}
		for name := range pf.Authors {
			p.Authors = append(p.Authors, verify.Author{Name: name})
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParseFile() = %+v, which Validate refuses: %v", pf, err)
		}
		again := map[string]any{}
		if pf.Threshold != 0 {
			again["threshold"] = pf.Threshold
		}
		if pf.Builders != nil {
			again["builders"] = pf.Builders
		}
		if pf.Authors != nil {
			again["authors"] = pf.Authors
		}
		if pf.MaxAge != 0 {
			again["maxAge"] = pf.MaxAge.String()
		}
		out, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		pf2, err := verify.ParseFile(out)
		if err != nil {
			t.Fatalf("ParseFile(%s), written out from %q = %v", out, b, err)
		}
		if diff := cmp.Diff(pf, pf2); diff != "" {
			t.Fatalf("ParseFile() written out and read again (-first +again):\n%s", diff)
		}
	})
}

// FuzzDecide weighs arbitrary bytes, as one piece and split as JSON Lines,
// next to evidence that verifies an artefact: Decide must never panic, and
// nothing the fuzzer makes, with no trusted key to sign it, may count,
// contradict, revoke or yank anything: the decision stays the same.
func FuzzDecide(f *testing.F) {
	a, stranger, author := newECKey(f, "a.pub"), newECKey(f, "stranger.pub"), newECKey(f, "author.pub")
	e1, edStranger := newEdKey(f, "e1.pub"), newEdKey(f, "ed-stranger.pub")
	s1, s2 := src(toolName, "1"), src(toolName, "2")
	art := out("the tool")
	pkg := "tool-1.0-1-any.pkg.tar.zst"
	p := &verify.Policy{Builders: []verify.Key{a.key, e1.key}, Threshold: 2,
		Authors: []verify.Author{{Name: "example.org/...", Key: author.key}}}
	base := []verify.Piece{
		piece(f, "claim", author.priv, claim(s1)),
		piece(f, "a", a.priv, rebuild(a.id(), s1, label, art)),
		link(f, "e1", map[string]lantern.Digest{pkg: art}, e1),
	}
	want := verify.Decide(p, art, base, now)
	if want.Result != verify.Verified || len(want.Agreeing) != 2 {
		f.Fatalf("Decide(the base evidence) = %s, %q; want verified by 2", want.Result, want.Agreeing)
	}

	// Seeds: what a stranger signs, meaning harm, and a bundle of them.
	var bundle [][]byte
	for _, pc := range []verify.Piece{
		piece(f, "", stranger.priv, rebuild(a.id(), s1, label, out("other"))),
		piece(f, "", stranger.priv, rebuild(stranger.id(), s1, label, art)),
		piece(f, "", stranger.priv, failure(a.id(), s1)),
		piece(f, "", stranger.priv, trustBuilder(stranger.id())),
		piece(f, "", stranger.priv, revokeBuilder(a.id())),
		piece(f, "", stranger.priv, revokeAuthor(author.id(), "example.org/...")),
		piece(f, "", stranger.priv, yank(s1)),
		piece(f, "", stranger.priv, claim(s2)),
		link(f, "", map[string]lantern.Digest{pkg: out("other")}, edStranger),
		{Raw: readSample(f, sampleLink)},
		{Raw: readSample(f, sampleInvalid)},
	} {
		f.Add(pc.Raw)
		bundle = append(bundle, pc.Raw)
	}
	f.Add(bytes.Join(bundle, []byte("\r\n\n")))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="}]}`))
	f.Add([]byte("{}\n[]\nnull\n"))

	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzed := append(evidence.Split("fuzz", b), verify.Piece{Origin: "fuzz-raw", Raw: b})
		d := verify.Decide(p, art, append(slices.Clip(base), fuzzed...), now)
		if d.Result != want.Result || !slices.Equal(d.Agreeing, want.Agreeing) || len(d.Contradictions) != 0 {
			t.Fatalf("Decide() with fuzzed evidence = %s, %q, %q; want %s, %q and no contradiction\n%s", d.Result, d.Agreeing, d.Contradictions, want.Result, want.Agreeing, explain(d))
		}
		for i, it := range d.Evidence {
			if i < len(base) {
				if it.Reason != want.Evidence[i].Reason {
					t.Fatalf("the base evidence's %s became %s with fuzzed evidence\n%s", it.Origin, it.Reason, explain(d))
				}
				continue
			}
			switch it.Reason {
			case verify.ReasonUntrusted, verify.ReasonBadSignature, verify.ReasonUnreadable, verify.ReasonIgnored:
			default:
				t.Fatalf("fuzzed evidence %s: %s: %s", it.Origin, it.Reason, it.Why)
			}
			if it.Counts || it.Signer != "" {
				t.Fatalf("fuzzed evidence %s counts, or is signed by trusted key %q", it.Origin, it.Signer)
			}
		}
	})
}
