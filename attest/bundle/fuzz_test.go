package bundle_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/bundle"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/claimtest"
)

// FuzzParse: whatever Parse accepts is one JSON object that IsBundle
// recognises, and New writes it back to a bundle that parses to the same
// envelope and hint; attest.ReadEnvelope reads it the same way.
func FuzzParse(f *testing.F) {
	k, err := keys.Generate()
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range claimtest.Claims(k.ID()) {
		env, err := attest.Sign(c, k)
		if err != nil {
			f.Fatal(err)
		}
		b, err := bundle.New(env, bundle.KeyHint(k.ID()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(readTestdata(f, "cosign-v3.1.3-attest-blob.json"))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.3","verificationMaterial":{"publicKey":{},` +
		`"tlogEntries":[{"logIndex":"1","kindVersion":{"kind":"dsse","version":"0.0.1"}}],"timestampVerificationData":{"rfc3161Timestamps":[]}},` +
		`"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA==","keyid":"k"}]}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},` +
		`"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AA=="}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"MIIC"}},"dsseEnvelope":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, hint, err := bundle.Parse(b)
		if err != nil {
			if env != nil || hint != "" {
				t.Fatalf("Parse returned %v, %q with its error %v", env, hint, err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("Parse accepted %q, which is not one JSON value", b)
		}
		if !bundle.IsBundle(b) {
			t.Fatalf("Parse accepted %q, which IsBundle does not recognise", b)
		}
		read, err := attest.ReadEnvelope(b)
		if err != nil {
			t.Fatalf("ReadEnvelope(%q) = %v, but Parse accepted it", b, err)
		}
		if diff := cmp.Diff(env, read, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("ReadEnvelope and Parse read different envelopes:\n%s", diff)
		}
		if len(env.Signatures) == 0 {
			return // New refuses an unsigned envelope
		}
		out, err := bundle.New(env, string(hint))
		if err != nil {
			t.Fatalf("New(Parse(%q)) = %v", b, err)
		}
		again, hint2, err := bundle.Parse(out)
		if err != nil {
			t.Fatalf("Parse(New(...)) = %v; read from %q, written as %s", err, b, out)
		}
		if hint2 != hint {
			t.Fatalf("hint %q became %q in a round trip", hint, hint2)
		}
		if diff := cmp.Diff(env, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("envelope changed in a round trip (-read +re-read):\n%s", diff)
		}
	})
}
