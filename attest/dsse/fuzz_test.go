package dsse_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/claimtest"
)

// signedClaims returns a real envelope, as JSON, of a claim of every kind:
// what dsse.Unmarshal reads in production.
func signedClaims(tb testing.TB) [][]byte {
	tb.Helper()
	k, err := keys.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	claims := claimtest.Claims(k.ID())
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
