package vsa_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/attest/vsa"
	"github.com/lanternfarm/lantern/verify"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var (
	artefact = lantern.DigestOf([]byte("the artefact"))
	verifier = lantern.DigestOf([]byte("the verifier's public key"))
	builderA = lantern.DigestOf([]byte("builder a")).String()
	builderB = lantern.DigestOf([]byte("builder b")).String()
	when     = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
)

func item(origin string, counts bool, reason verify.Reason, signer string) verify.Item {
	return verify.Item{Origin: origin, Digest: lantern.DigestOf([]byte(origin)), Kind: "rebuild", Signer: signer, Counts: counts, Reason: reason, Why: string(reason)}
}

// decisions are the decisions of the golden files, one per result.
var decisions = map[string]*verify.Decision{
	"verified": {
		Artefact: artefact, Policy: lantern.DigestOf([]byte("policy")), Threshold: 2, Result: verify.Verified,
		Agreeing: []string{builderA, builderB},
		Evidence: []verify.Item{
			item("ev/a.json", true, verify.ReasonAgrees, builderA),
			item("http://127.0.0.1:8080/api/v1/evidence?artefact=x page-1:2", true, verify.ReasonAgrees, builderB),
			item("ev/a-again.json", false, verify.ReasonCounted, builderA),
			item("ev/claim.json", false, verify.ReasonClaim, builderA),
			item("ev/stranger.json", false, verify.ReasonUntrusted, ""),
			item("ev/forged.json", false, verify.ReasonBadSignature, ""),
			item("ev/other.json", false, verify.ReasonOtherArtefact, builderB),
		},
		Time: when,
	},
	"not-verified": {
		Artefact: artefact, Policy: lantern.DigestOf([]byte("policy")), Threshold: 3, Result: verify.NotVerified,
		Agreeing: []string{builderA},
		Evidence: []verify.Item{
			item("ev/a.json", true, verify.ReasonAgrees, builderA),
			item("ev/old.json", false, verify.ReasonTooOld, builderB),
		},
		Time: when,
	},
	"contradicted": {
		Artefact: artefact, Policy: lantern.DigestOf([]byte("policy")), Threshold: 1, Result: verify.Contradicted,
		Agreeing:       []string{builderA},
		Contradictions: []string{"ev/b-other.json: trusted builder " + builderB + " rebuilt example.org/tool@v1 to sha256:..."},
		Evidence: []verify.Item{
			item("ev/a.json", true, verify.ReasonAgrees, builderA),
			item("ev/b-other.json", false, verify.ReasonContradicts, builderB),
			item("ev/yank.json", false, verify.ReasonYanked, builderA),
		},
		Time: when,
	},
}

// TestGolden: the VSA statement of each kind of decision, as written.
func TestGolden(t *testing.T) {
	for name, d := range decisions {
		t.Run(name, func(t *testing.T) {
			st, err := vsa.New(d, vsa.Options{Name: "tool", Verifier: verifier})
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("vsa.New(%s) differs from %s (-want +got):\n%s", name, golden, diff)
			}
		})
	}
}

// statement is a VSA as a reader outside Lantern decodes it: the spec's
// field names, nothing of Lantern's types.
type statement struct {
	Type    string `json:"_type"`
	Subject []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	PredicateType string `json:"predicateType"`
	Predicate     struct {
		Verifier struct {
			ID string `json:"id"`
		} `json:"verifier"`
		TimeVerified string `json:"timeVerified"`
		ResourceURI  string `json:"resourceUri"`
		Policy       struct {
			URI    string            `json:"uri"`
			Digest map[string]string `json:"digest"`
		} `json:"policy"`
		InputAttestations []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"inputAttestations"`
		VerificationResult string          `json:"verificationResult"`
		VerifiedLevels     []string        `json:"verifiedLevels"`
		SLSAVersion        string          `json:"slsaVersion"`
		Lantern            json.RawMessage `json:"https://lanternfarm.github.io/lantern/verify/v1"`
	} `json:"predicate"`
}

func decode(t *testing.T, b []byte) statement {
	t.Helper()
	var s statement
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func inputNames(s statement) []string {
	out := []string{}
	for _, in := range s.Predicate.InputAttestations {
		out = append(out, in.Name)
	}
	return out
}

// TestFields: each result's fields, read by the spec's names.
func TestFields(t *testing.T) {
	tests := []struct {
		name   string
		result string
		levels []string
		inputs []string
	}{
		{"verified", vsa.Passed, []string{"LANTERN_REPRODUCED_2"}, []string{"ev/a.json", "http://127.0.0.1:8080/api/v1/evidence?artefact=x page-1:2", "ev/claim.json"}},
		{"not-verified", vsa.Failed, []string{"FAILED"}, []string{"ev/a.json"}},
		{"contradicted", vsa.Failed, []string{"FAILED"}, []string{"ev/a.json", "ev/b-other.json", "ev/yank.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decisions[tt.name]
			st, err := vsa.New(d, vsa.Options{Name: "tool", ResourceURI: "pkg:golang/example.org/tool@v1", Verifier: verifier})
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			s := decode(t, b)
			if s.Type != attest.StatementType || s.PredicateType != "https://slsa.dev/verification_summary/v1" {
				t.Errorf("_type %q, predicateType %q", s.Type, s.PredicateType)
			}
			if len(s.Subject) != 1 || s.Subject[0].Name != "tool" || s.Subject[0].Digest["sha256"] != artefact.Hex() {
				t.Errorf("subject = %+v, want tool with sha256 %s", s.Subject, artefact.Hex())
			}
			p := s.Predicate
			if p.Verifier.ID != verifier.String() || p.ResourceURI != "pkg:golang/example.org/tool@v1" || p.TimeVerified != "2025-03-14T15:09:26Z" || p.SLSAVersion != "1.0" {
				t.Errorf("verifier %q, resourceUri %q, timeVerified %q, slsaVersion %q", p.Verifier.ID, p.ResourceURI, p.TimeVerified, p.SLSAVersion)
			}
			if p.Policy.URI != vsa.PolicyURI || p.Policy.Digest["sha256"] != d.Policy.Hex() {
				t.Errorf("policy = %+v, want %s with sha256 %s", p.Policy, vsa.PolicyURI, d.Policy.Hex())
			}
			if p.VerificationResult != tt.result {
				t.Errorf("verificationResult = %q, want %q", p.VerificationResult, tt.result)
			}
			if diff := cmp.Diff(tt.levels, p.VerifiedLevels); diff != "" {
				t.Errorf("verifiedLevels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.inputs, inputNames(s)); diff != "" {
				t.Errorf("inputAttestations (-want +got):\n%s", diff)
			}
			for i, in := range p.InputAttestations {
				if want := lantern.DigestOf([]byte(in.Name)).Hex(); in.Digest["sha256"] != want {
					t.Errorf("inputAttestations[%d] %s has sha256 %s, want %s", i, in.Name, in.Digest["sha256"], want)
				}
			}
			var sum vsa.Summary
			if err := json.Unmarshal(p.Lantern, &sum); err != nil {
				t.Fatalf("extension field %s: %v", vsa.ExtensionField, err)
			}
			if sum.Result != d.Result || sum.Threshold != d.Threshold {
				t.Errorf("extension = %+v, want result %s, threshold %d", sum, d.Result, d.Threshold)
			}
		})
	}
}

// TestExtensionField: the predicate's extension is under ExtensionField (the
// struct tag spells it out, so this keeps the two equal).
func TestExtensionField(t *testing.T) {
	st, err := vsa.New(decisions["verified"], vsa.Options{Name: "tool", Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(st.Predicate, &p); err != nil {
		t.Fatal(err)
	}
	if _, ok := p[vsa.ExtensionField]; !ok {
		t.Errorf("predicate has no field %q: %s", vsa.ExtensionField, st.Predicate)
	}
}

// TestRefuses: a VSA is never written for a decision that does not hold
// together, such as "verified" with fewer agreeing builders than the
// threshold.
func TestRefuses(t *testing.T) {
	ok := *decisions["verified"]
	tests := []struct {
		name string
		edit func(d *verify.Decision, o *vsa.Options)
	}{
		{"verified below the threshold", func(d *verify.Decision, o *vsa.Options) { d.Threshold = 3 }},
		{"verified with nobody agreeing", func(d *verify.Decision, o *vsa.Options) { d.Agreeing, d.Threshold = nil, 0 }},
		{"an unknown result", func(d *verify.Decision, o *vsa.Options) { d.Result = "probably" }},
		{"no artefact", func(d *verify.Decision, o *vsa.Options) { d.Artefact = lantern.Digest{} }},
		{"no policy", func(d *verify.Decision, o *vsa.Options) { d.Policy = lantern.Digest{} }},
		{"no time", func(d *verify.Decision, o *vsa.Options) { d.Time = time.Time{} }},
		{"no name", func(d *verify.Decision, o *vsa.Options) { o.Name = "" }},
		{"no verifier", func(d *verify.Decision, o *vsa.Options) { o.Verifier = lantern.Digest{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, o := ok, vsa.Options{Name: "tool", Verifier: verifier}
			tt.edit(&d, &o)
			if _, err := vsa.New(&d, o); !errors.Is(err, vsa.ErrDecision) {
				t.Errorf("vsa.New = %v, want %v", err, vsa.ErrDecision)
			}
		})
	}
}

// TestSignedFromDecide: from a real decision over real signed rebuilds, the
// signed VSA verifies with the verifier's key only, names the verifier by
// its key id, and lists as inputs exactly the agreeing rebuilds — not the
// stranger's, whatever it says. Lantern's reader of claims refuses it: a
// VSA is no builder's evidence.
func TestSignedFromDecide(t *testing.T) {
	gen := func() *keys.Private {
		k, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b, stranger, verifierKey := gen(), gen(), gen(), gen()
	var pol verify.Policy
	for _, k := range []*keys.Private{a, b} {
		key, err := verify.ParseKey(k.Public().MarshalPEM(), "")
		if err != nil {
			t.Fatal(err)
		}
		pol.Builders = append(pol.Builders, key)
	}
	src := lantern.Source{Name: "example.org/tool", Version: "v1", Digest: lantern.DigestOf([]byte("src"))}
	var pieces []verify.Piece
	raw := map[string][]byte{}
	want := []string{}
	for _, s := range []struct {
		name string
		k    *keys.Private
	}{{"a", a}, {"stranger", stranger}, {"b", b}} {
		env, err := attest.Sign(&lantern.Rebuild{
			Source: src, Label: "tool", Output: artefact, Builder: s.k.ID(), Finished: when,
			Recipe: lantern.Recipe{BuildType: attest.BuildTypeMaintainer},
		}, s.k)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, verify.Piece{Origin: s.name + ".json", Raw: b})
		raw[s.name+".json"] = b
		if s.k != stranger {
			want = append(want, s.name+".json")
		}
	}
	for _, threshold := range []int{2, 3} {
		pol.Threshold = threshold
		d := verify.Decide(&pol, artefact, pieces, when)
		env, err := vsa.Sign(d, vsa.Options{Name: "tool"}, verifierKey)
		if err != nil {
			t.Fatal(err)
		}
		payload, err := env.Verify(attest.PayloadType, verifierKey.Public())
		if err != nil {
			t.Fatalf("the VSA does not verify with the verifier's key: %v", err)
		}
		if _, err := env.Verify(attest.PayloadType, a.Public()); err == nil {
			t.Errorf("the VSA verifies with a builder's key")
		}
		s := decode(t, payload)
		if s.Predicate.Verifier.ID != verifierKey.ID().String() {
			t.Errorf("verifier.id = %q, want the key id %s", s.Predicate.Verifier.ID, verifierKey.ID())
		}
		if s.Predicate.Policy.Digest["sha256"] != pol.Digest().Hex() {
			t.Errorf("policy digest = %v, want %s", s.Predicate.Policy.Digest, pol.Digest().Hex())
		}
		if diff := cmp.Diff(want, inputNames(s)); diff != "" {
			t.Errorf("threshold %d: inputAttestations (-want +got):\n%s", threshold, diff)
		}
		for i, in := range s.Predicate.InputAttestations {
			if got, want := in.Digest["sha256"], lantern.DigestOf(raw[in.Name]).Hex(); got != want {
				t.Errorf("inputAttestations[%d] sha256 %s, want %s (the envelope's bytes)", i, got, want)
			}
		}
		wantResult := map[int]string{2: vsa.Passed, 3: vsa.Failed}[threshold]
		if s.Predicate.VerificationResult != wantResult {
			t.Errorf("threshold %d: verificationResult = %q, want %q", threshold, s.Predicate.VerificationResult, wantResult)
		}
		if _, err := attest.Verify(env, verifierKey.Public()); !errors.Is(err, attest.ErrPredicateType) {
			t.Errorf("attest.Verify of a VSA = %v, want %v", err, attest.ErrPredicateType)
		}
	}
}
