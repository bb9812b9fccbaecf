package dsse_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
)

// signedClaims returns a real envelope, as JSON, of a claim of every kind:
// what dsse.Unmarshal reads in production.
func signedClaims(tb testing.TB) [][]byte {
	tb.Helper()
	k, err := keys.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	src := lantern.Source{Name: "example.org/hello", Version: "v1.2.3", Digest: lantern.DigestOf([]byte("source"))}
	recipe := lantern.Recipe{BuildType: attest.URIBase + "builds/go/v1"}
	claims := []lantern.Claim{
		&lantern.SourceClaim{Source: src, Recipe: "go", Time: at},
		&lantern.Rebuild{Source: src, Label: "hello", Output: lantern.DigestOf([]byte("binary")), Recipe: recipe, Builder: k.ID(), Finished: at},
		&lantern.RebuildFailure{Source: src, Recipe: recipe, Builder: k.ID(), Stage: "build", Reason: "exit status 1", Finished: at},
		&lantern.Trust{Key: k.ID(), Relation: lantern.RelationTrustedBuilder, Time: at},
		&lantern.Trust{Key: k.ID(), Relation: lantern.RelationAuthor, Name: src.Name, Time: at},
		&lantern.Trust{Key: k.ID(), Relation: lantern.RelationTrustedBuilder, Revoked: true, Time: at},
		&lantern.Yank{Source: src, Reason: "moved tag", Time: at},
	}
	var out [][]byte
	for _, c := range claims {
		env, err := attest.Sign(c, k)
		if err != nil {
			tb.Fatalf("Sign(%s) = %v", c.Kind(), err)
		}
		b, err := json.Marshal(env)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzUnmarshal(f *testing.F) {
	for _, b := range signedClaims(f) {
		f.Add(b)
	}
	// The other base64 forms DSSE allows, and an envelope with no signatures.
	f.Add([]byte(`{"payloadType":"text/plain","payload":"aGk_","signatures":[{"keyid":"k","sig":"AA"}]}`))
	f.Add([]byte(`{"payloadType":"text/plain","payload":"","signatures":[]}`))
	// The corpus of bad inputs shared with package attest.
	bad, err := filepath.Glob(filepath.Join("..", "..", "testdata", "bad", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range bad {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := dsse.Unmarshal(b)
		if err != nil {
			return
		}
		// Unmarshal reads "one JSON object": anything else is refused, so
		// that Lantern and other DSSE readers agree on what an envelope is.
		if !json.Valid(b) {
			t.Fatalf("Unmarshal accepted %q, which is not one JSON value", b)
		}
		out, err := json.Marshal(env)
		if err != nil {
			t.Fatalf("Marshal(%#v) = %v", env, err)
		}
		again, err := dsse.Unmarshal(out)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(env)) = %v; env was read from %q, re-marshalled as %s", err, b, out)
		}
		if diff := cmp.Diff(env, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("envelope changed in a round trip (-read +re-read):\n%s", diff)
		}
	})
}
