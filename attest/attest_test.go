package attest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/claimtest"
)

func digest(s string) lantern.Digest { return lantern.DigestOf([]byte(s)) }

var (
	started  = claimtest.Started
	finished = claimtest.Finished
	stringer = claimtest.Stringer
)

func claims(builder lantern.Digest) []claimtest.Example { return claimtest.Examples(builder) }

func claim(builder lantern.Digest, name string) lantern.Claim { return claimtest.Get(builder, name) }

func newKey(t testing.TB) *keys.Private {
	t.Helper()
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	k := newKey(t)
	for _, ex := range claims(k.ID()) {
		c := ex.Claim
		t.Run(ex.Name, func(t *testing.T) {
			env, err := attest.Sign(c, k)
			if err != nil {
				t.Fatalf("Sign() = %v", err)
			}
			wire, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := dsse.Unmarshal(wire)
			if err != nil {
				t.Fatalf("Unmarshal(%s) = %v", wire, err)
			}
			v, err := attest.Verify(parsed, k.Public())
			if err != nil {
				t.Fatalf("Verify() = %v", err)
			}
			if diff := cmp.Diff(c, v.Claim); diff != "" {
				t.Errorf("claim after round trip differs (-signed +verified):\n%s", diff)
			}
			if v.Signer != k.ID() {
				t.Errorf("Signer = %s, want %s", v.Signer, k.ID())
			}
			if got := v.Statement.Type; got != attest.StatementType {
				t.Errorf("_type = %q, want %q", got, attest.StatementType)
			}
			if len(parsed.Signatures) != 1 || parsed.Signatures[0].KeyID != "" {
				t.Errorf("signatures = %+v, want one with an empty keyid", parsed.Signatures)
			}
		})
	}
}

// TestRebuildWireFormat pins the parts of the rebuild attestation that other
// tools read: SLSA field names and where Lantern puts what.
func TestRebuildWireFormat(t *testing.T) {
	k := newKey(t)
	c := claim(k.ID(), "rebuild").(*lantern.Rebuild)
	st, err := attest.NewStatement(c)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type          string `json:"_type"`
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		Predicate struct {
			BuildDefinition struct {
				BuildType          string `json:"buildType"`
				ExternalParameters struct {
					Source struct {
						Name, Version, Digest string
					} `json:"source"`
					Label  string `json:"label"`
					Recipe string `json:"recipe"`
				} `json:"externalParameters"`
				ResolvedDependencies []struct {
					Name   string            `json:"name"`
					Digest map[string]string `json:"digest"`
				} `json:"resolvedDependencies"`
			} `json:"buildDefinition"`
			RunDetails struct {
				Builder  struct{ ID string } `json:"builder"`
				Metadata struct {
					InvocationID string `json:"invocationId"`
					StartedOn    string `json:"startedOn"`
					FinishedOn   string `json:"finishedOn"`
				} `json:"metadata"`
				Byproducts []struct {
					Name   string            `json:"name"`
					Digest map[string]string `json:"digest"`
				} `json:"byproducts"`
			} `json:"runDetails"`
		} `json:"predicate"`
	}
	b, _ := json.Marshal(st)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ field, got, want string }{
		{"_type", got.Type, "https://in-toto.io/Statement/v1"},
		{"predicateType", got.PredicateType, "https://slsa.dev/provenance/v1"},
		{"subject[0].name", got.Subject[0].Name, c.Label},
		{"subject[0].digest.sha256", got.Subject[0].Digest["sha256"], c.Output.Hex()},
		{"buildType", got.Predicate.BuildDefinition.BuildType, c.Recipe.BuildType},
		{"externalParameters.source.name", got.Predicate.BuildDefinition.ExternalParameters.Source.Name, c.Source.Name},
		{"externalParameters.source.digest", got.Predicate.BuildDefinition.ExternalParameters.Source.Digest, c.Source.Digest.String()},
		{"externalParameters.label", got.Predicate.BuildDefinition.ExternalParameters.Label, c.Label},
		{"externalParameters.recipe", got.Predicate.BuildDefinition.ExternalParameters.Recipe, c.Recipe.Digest.String()},
		{"resolvedDependencies[0].name", got.Predicate.BuildDefinition.ResolvedDependencies[0].Name, "source"},
		{"resolvedDependencies[1].name", got.Predicate.BuildDefinition.ResolvedDependencies[1].Name, "toolchain"},
		{"runDetails.builder.id", got.Predicate.RunDetails.Builder.ID, k.ID().String()},
		{"metadata.invocationId", got.Predicate.RunDetails.Metadata.InvocationID, "job-42"},
		{"metadata.startedOn", got.Predicate.RunDetails.Metadata.StartedOn, "2026-11-25T10:00:00Z"},
		{"metadata.finishedOn", got.Predicate.RunDetails.Metadata.FinishedOn, "2026-11-25T10:01:33Z"},
		{"byproducts[0].name", got.Predicate.RunDetails.Byproducts[0].Name, "log"},
		{"byproducts[0].digest.sha256", got.Predicate.RunDetails.Byproducts[0].Digest["sha256"], c.Log.Hex()},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.field, ch.got, ch.want)
		}
	}
}

// TestTamper changes one byte at every position of the payload and of the
// signature, and checks that verification fails at the signature check.
func TestTamper(t *testing.T) {
	k := newKey(t)
	for _, ex := range claims(k.ID()) {
		c := ex.Claim
		t.Run(ex.Name, func(t *testing.T) {
			env, err := attest.Sign(c, k)
			if err != nil {
				t.Fatal(err)
			}
			try := func(what string, i int, e *dsse.Envelope) {
				t.Helper()
				_, err := attest.Verify(e, k.Public())
				if !errors.Is(err, dsse.ErrSignature) {
					t.Fatalf("%s byte %d changed: Verify() = %v, want %v", what, i, err, dsse.ErrSignature)
				}
				if !strings.Contains(err.Error(), "signature does not verify") {
					t.Fatalf("%s byte %d changed: error %q does not name the signature check", what, i, err)
				}
			}
			for i := range env.Payload {
				e := clone(env)
				e.Payload[i] ^= 0x01
				try("payload", i, e)
			}
			for i := range env.Signatures[0].Sig {
				e := clone(env)
				e.Signatures[0].Sig[i] ^= 0x01
				try("signature", i, e)
			}
			e := clone(env)
			e.Payload = append(e.Payload, ' ')
			try("payload (appended)", len(env.Payload), e)
		})
	}
}

// TestTamperWire changes one character of the payload's and the signature's
// base64 text in the serialised envelope: each is refused, by the base64 or
// by the signature check.
func TestTamperWire(t *testing.T) {
	k := newKey(t)
	env, err := attest.Sign(claim(k.ID(), "rebuild"), k)
	if err != nil {
		t.Fatal(err)
	}
	wire, _ := json.Marshal(env)
	var raw struct {
		Payload    string `json:"payload"`
		Signatures []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(wire, &raw); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{raw.Payload, raw.Signatures[0].Sig} {
		start := strings.Index(string(wire), field)
		for i := start; i < start+len(field); i++ {
			if wire[i] == '=' {
				continue // padding: changing it to another character breaks base64 trivially
			}
			b := append([]byte(nil), wire...)
			b[i] = otherBase64Char(b[i])
			e, err := dsse.Unmarshal(b)
			if err == nil {
				_, err = attest.Verify(e, k.Public())
			}
			if !errors.Is(err, dsse.ErrSignature) && !errors.Is(err, dsse.ErrBase64) {
				t.Fatalf("byte %d %q→%q: err = %v, want a signature or base64 error", i, wire[i], b[i], err)
			}
		}
	}
}

func otherBase64Char(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}

func clone(e *dsse.Envelope) *dsse.Envelope {
	c := *e
	c.Payload = append([]byte(nil), e.Payload...)
	c.Signatures = []dsse.Signature{{KeyID: e.Signatures[0].KeyID, Sig: append([]byte(nil), e.Signatures[0].Sig...)}}
	return &c
}

func TestVerifyWrongKey(t *testing.T) {
	k, other := newKey(t), newKey(t)
	env, err := attest.Sign(claim(k.ID(), "source"), k)
	if err != nil {
		t.Fatal(err)
	}
	_, err = attest.Verify(env, other.Public())
	if !errors.Is(err, dsse.ErrSignature) || !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("Verify(other key) = %v, want %v", err, dsse.ErrSignature)
	}
	if !strings.Contains(err.Error(), other.ID().String()) {
		t.Errorf("error %q does not name the key tried", err)
	}
}

// TestBuilderMustSign: a rebuild attestation that names one builder but is
// signed by another key is refused, even though the signature is good.
func TestBuilderMustSign(t *testing.T) {
	k, other := newKey(t), newKey(t)
	for _, name := range []string{"rebuild", "rebuild-failure"} {
		t.Run(name, func(t *testing.T) {
			env, err := attest.Sign(claim(other.ID(), name), k)
			if err != nil {
				t.Fatal(err)
			}
			_, err = attest.Verify(env, k.Public())
			if !errors.Is(err, attest.ErrBuilderMismatch) {
				t.Fatalf("Verify() = %v, want %v", err, attest.ErrBuilderMismatch)
			}
		})
	}
}

// TestSignRefusesInvalid: Lantern never signs what it would not read back.
func TestSignRefusesInvalid(t *testing.T) {
	k := newKey(t)
	tests := []struct {
		name  string
		claim lantern.Claim
		want  string
	}{
		{"no source digest", &lantern.SourceClaim{Source: lantern.Source{Name: "a", Version: "1"}, Time: started}, "source.digest: missing"},
		{"space in name", &lantern.SourceClaim{Source: lantern.Source{Name: "a b", Version: "1", Digest: digest("x")}, Time: started}, `source.name "a b"`},
		{"bad goSum", &lantern.SourceClaim{Source: lantern.Source{Name: "a", Version: "1", Digest: digest("x"), GoSum: "sha1:abc"}, Time: started}, "goSum"},
		{"relative fetch", &lantern.SourceClaim{Source: stringer, Fetch: "src.tar.gz", Time: started}, "fetch"},
		{"no time", &lantern.SourceClaim{Source: stringer}, "time: missing"},
		{"no output", &lantern.Rebuild{Source: stringer, Label: "x", Recipe: lantern.Recipe{BuildType: attest.BuildTypeMaintainer}, Builder: k.ID(), Finished: finished}, "output: missing"},
		{"finished before started", &lantern.Rebuild{Source: stringer, Label: "x", Output: digest("o"), Recipe: lantern.Recipe{BuildType: attest.BuildTypeMaintainer}, Builder: k.ID(), Started: finished, Finished: started}, "is before started"},
		{"unknown relation", &lantern.Trust{Key: k.ID(), Relation: "friend", Time: started}, `relation "friend"`},
		{"author without name", &lantern.Trust{Key: k.ID(), Relation: lantern.RelationAuthor, Time: started}, "name: missing"},
		{"failure without reason", &lantern.RebuildFailure{Source: stringer, Recipe: lantern.Recipe{BuildType: attest.BuildTypeMaintainer}, Builder: k.ID(), Stage: "build", Finished: finished}, "reason: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := attest.Sign(tt.claim, k)
			if !errors.Is(err, attest.ErrInvalidClaim) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sign() = %v, want %v mentioning %q", err, attest.ErrInvalidClaim, tt.want)
			}
		})
	}
}

// TestTimesThatCannotBeWrittenBack: time.Parse takes some times that
// encoding/json cannot write again; a claim holding one is refused on read.
func TestTimesThatCannotBeWrittenBack(t *testing.T) {
	k := newKey(t)
	for _, tt := range []struct{ claim, field, bad string }{
		{"rebuild", `"finishedOn":"2026-11-25T10:01:33Z"`, `"finishedOn":"9999-12-31T23:00:00-02:00"`},
		{"rebuild", `"startedOn":"2026-11-25T10:00:00Z"`, `"startedOn":"0000-01-01T00:30:00+01:00"`},
		{"source", `"time":"2026-11-25T10:00:00Z"`, `"time":"2026-11-25T10:00:00+24:00"`},
	} {
		t.Run(tt.bad, func(t *testing.T) {
			st, err := attest.NewStatement(claim(k.ID(), tt.claim))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(st.Predicate), tt.field) {
				t.Fatalf("predicate has no %s: %s", tt.field, st.Predicate)
			}
			st.Predicate = []byte(strings.Replace(string(st.Predicate), tt.field, tt.bad, 1))
			env, err := attest.SignStatement(st, k)
			if err != nil {
				t.Fatal(err)
			}
			_, err = attest.Verify(env, k.Public())
			if !errors.Is(err, attest.ErrMalformed) || !strings.Contains(err.Error(), "want RFC 3339 in years 0000–9999") {
				t.Fatalf("Verify() = %v, want %v about the time", err, attest.ErrMalformed)
			}
		})
	}
}

// TestStatementV01: a Statement/v0.1, as cosign writes for 'attest-blob
// --predicate', verifies to the same claim as the v1 statement it copies;
// the _type is signed, so nobody can change it on the way.
func TestStatementV01(t *testing.T) {
	k := newKey(t)
	for _, ex := range claims(k.ID()) {
		t.Run(ex.Name, func(t *testing.T) {
			st, err := attest.NewStatement(ex.Claim)
			if err != nil {
				t.Fatal(err)
			}
			st.Type = attest.StatementTypeV01
			env, err := attest.SignStatement(st, k)
			if err != nil {
				t.Fatal(err)
			}
			v, err := attest.Verify(env, k.Public())
			if err != nil {
				t.Fatalf("Verify(v0.1) = %v", err)
			}
			if diff := cmp.Diff(ex.Claim, v.Claim); diff != "" {
				t.Errorf("claim changed (-signed +verified):\n%s", diff)
			}
			if v.Statement.Type != attest.StatementTypeV01 {
				t.Errorf("_type = %q, want %q", v.Statement.Type, attest.StatementTypeV01)
			}
			env.Payload = bytes.Replace(env.Payload, []byte(attest.StatementTypeV01), []byte(attest.StatementType), 1)
			if _, err := attest.Verify(env, k.Public()); !errors.Is(err, dsse.ErrSignature) {
				t.Errorf("Verify(_type changed to v1 after signing) = %v, want dsse.ErrSignature", err)
			}
		})
	}
}
