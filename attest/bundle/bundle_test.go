package bundle_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/bundle"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/claimtest"
	"github.com/lanternfarm/lantern/internal/strictjson"
)

func newKey(t testing.TB) *keys.Private {
	t.Helper()
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRoundTrip: every kind of Lantern claim, signed and bundled, comes back
// out of its bundle as the same envelope, with its key's hint, and verifies.
func TestRoundTrip(t *testing.T) {
	k := newKey(t)
	for _, ex := range claimtest.Examples(k.ID()) {
		t.Run(ex.Name, func(t *testing.T) {
			env, err := attest.Sign(ex.Claim, k)
			if err != nil {
				t.Fatal(err)
			}
			b, err := bundle.New(env, bundle.KeyHint(k.ID()))
			if err != nil {
				t.Fatalf("New() = %v", err)
			}
			if !bundle.IsBundle(b) {
				t.Errorf("IsBundle(New()) = false")
			}
			got, hint, err := bundle.Parse(b)
			if err != nil {
				t.Fatalf("Parse(%s) = %v", b, err)
			}
			if diff := cmp.Diff(env, got); diff != "" {
				t.Errorf("envelope changed in the bundle (-signed +parsed):\n%s", diff)
			}
			if id, ok := hint.KeyID(); !ok || id != k.ID() {
				t.Errorf("hint %q KeyID() = %s, %v; want %s", hint, id, ok, k.ID())
			}
			v, err := attest.Verify(got, k.Public())
			if err != nil {
				t.Fatalf("Verify() = %v", err)
			}
			if diff := cmp.Diff(ex.Claim, v.Claim); diff != "" {
				t.Errorf("claim changed (-signed +verified):\n%s", diff)
			}
			// attest.ReadEnvelope takes the bundle and the bare envelope alike.
			bare, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			for what, in := range map[string][]byte{"bundle": b, "bare envelope": bare} {
				got, err := attest.ReadEnvelope(in)
				if err != nil {
					t.Fatalf("ReadEnvelope(%s) = %v", what, err)
				}
				if diff := cmp.Diff(env, got); diff != "" {
					t.Errorf("ReadEnvelope(%s) changed the envelope:\n%s", what, diff)
				}
			}
		})
	}
}

// TestNewIsCosignsForm: New writes, byte for byte, the bundle cosign v3
// writes for the same envelope and key — the fixture that cosign v3.1.3 made.
func TestNewIsCosignsForm(t *testing.T) {
	want := readTestdata(t, "cosign-v3.1.3-attest-blob.json")
	env, hint, err := bundle.Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bundle.New(env, string(hint))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("New() =\n%s\ncosign v3 wrote\n%s", got, want)
	}
	pub := readPublic(t)
	if hint != bundle.Hint(bundle.KeyHint(pub.ID())) {
		t.Errorf("cosign's hint %q, KeyHint(%s) = %q", hint, pub.ID(), bundle.KeyHint(pub.ID()))
	}
}

// TestCosignV3Bundle: the bundle cosign v3.1.3's attest-blob made from a
// Lantern predicate verifies to the Rebuild that predicate states, about the
// artefact it was made for.
func TestCosignV3Bundle(t *testing.T) {
	env, err := attest.ReadEnvelope(readTestdata(t, "cosign-v3.1.3-attest-blob.json"))
	if err != nil {
		t.Fatal(err)
	}
	pub := readPublic(t)
	v, err := attest.Verify(env, pub)
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	if v.Statement.Type != attest.StatementTypeV01 {
		t.Errorf("_type = %q; cosign v3 writes %q for --predicate (the fixture changed?)", v.Statement.Type, attest.StatementTypeV01)
	}
	r, ok := v.Claim.(*lantern.Rebuild)
	if !ok {
		t.Fatalf("claim is a %T, want a *lantern.Rebuild", v.Claim)
	}
	artefact := lantern.DigestOf(readTestdata(t, "hello-linux-amd64"))
	if r.Output != artefact || r.Label != "hello-linux-amd64" || r.Builder != pub.ID() {
		t.Errorf("rebuild of %s %s by %s; want hello-linux-amd64 %s by %s", r.Label, r.Output, r.Builder, artefact, pub.ID())
	}
	if !v.Statement.HasSubject(artefact) || v.Statement.HasSubject(lantern.DigestOf([]byte("another artefact\n"))) {
		t.Errorf("HasSubject: the statement is about %v", v.Statement.Subject)
	}
	if _, err := attest.Verify(env, newKey(t).Public()); !errors.Is(err, dsse.ErrSignature) {
		t.Errorf("Verify(another key) = %v, want dsse.ErrSignature", err)
	}
}

// TestHintNeverDecides: a bundle whose hint names another key (a trusted
// one, say) verifies with the key that signed it and with no other; changing
// the hint of a good bundle changes nothing about its envelope.
func TestHintNeverDecides(t *testing.T) {
	signer, trusted := newKey(t), newKey(t)
	env, err := attest.Sign(claimtest.Claims(signer.ID())[0], signer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.New(env, bundle.KeyHint(trusted.ID()))
	if err != nil {
		t.Fatal(err)
	}
	got, hint, err := bundle.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := hint.KeyID(); id != trusted.ID() {
		t.Fatalf("hint names %s, want the lie %s", id, trusted.ID())
	}
	if _, err := attest.Verify(got, trusted.Public()); !errors.Is(err, dsse.ErrSignature) {
		t.Errorf("Verify(the key the hint names) = %v, want dsse.ErrSignature", err)
	}
	if _, err := attest.Verify(got, signer.Public()); err != nil {
		t.Errorf("Verify(the signer's key) = %v", err)
	}
	for _, h := range []string{"", "not base64!", bundle.KeyHint(signer.ID()), strings.Repeat("A", 44)} {
		b, err := bundle.New(env, h)
		if err != nil {
			t.Fatal(err)
		}
		got, hint, err := bundle.Parse(b)
		if err != nil {
			t.Fatalf("Parse(hint %q) = %v", h, err)
		}
		if string(hint) != h || !cmp.Equal(got, env) {
			t.Errorf("Parse(hint %q) = %q and another envelope", h, hint)
		}
	}
}

func TestHintKeyID(t *testing.T) {
	id := lantern.DigestOf([]byte("a key"))
	sum := id.Sum()
	for _, tt := range []struct {
		hint string
		ok   bool
	}{
		{bundle.KeyHint(id), true},
		{base64.StdEncoding.EncodeToString(sum[:]), true},
		{"", false},
		{id.String(), false}, // Lantern's form is not cosign's
		{base64.RawStdEncoding.EncodeToString(sum[:]), false},         // unpadded
		{base64.URLEncoding.EncodeToString(sum[:]) + "_", false},      // another alphabet
		{strings.Repeat("A", 44), false},                              // 44 characters, 33 bytes
		{base64.StdEncoding.EncodeToString(sum[:31]) + "AAAA", false}, // 35 bytes
	} {
		got, ok := bundle.Hint(tt.hint).KeyID()
		if ok != tt.ok || ok && got != id {
			t.Errorf("Hint(%q).KeyID() = %s, %v; want ok %v", tt.hint, got, ok, tt.ok)
		}
	}
	if bundle.KeyHint(lantern.Digest{}) != "" {
		t.Errorf("KeyHint(zero) = %q, want empty", bundle.KeyHint(lantern.Digest{}))
	}
}

// TestParseAcceptsCosignsExtras: what cosign adds when it uploads to a log
// or asks a timestamp authority is read past (not trusted, not needed).
func TestParseAcceptsCosignsExtras(t *testing.T) {
	k := newKey(t)
	env, err := attest.Sign(claimtest.Claims(k.ID())[0], k)
	if err != nil {
		t.Fatal(err)
	}
	b := mutate(t, mustNew(t, env, bundle.KeyHint(k.ID())), func(m map[string]any) {
		vm := m["verificationMaterial"].(map[string]any)
		vm["tlogEntries"] = []any{map[string]any{
			"logIndex": "25915956", "logId": map[string]any{"keyId": "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="},
			"kindVersion":       map[string]any{"kind": "dsse", "version": "0.0.1"},
			"integratedTime":    "1712085549",
			"inclusionPromise":  map[string]any{"signedEntryTimestamp": "MEUCIQ=="},
			"inclusionProof":    map[string]any{"logIndex": "4011694", "rootHash": "AA==", "treeSize": "4011695", "hashes": []any{"AA=="}, "checkpoint": map[string]any{"envelope": "rekor.sigstore.dev - 1\n"}},
			"canonicalizedBody": "eyJ9",
		}}
		vm["timestampVerificationData"] = map[string]any{"rfc3161Timestamps": []any{map[string]any{"signedTimestamp": "MIIC"}}}
	})
	got, _, err := bundle.Parse(b)
	if err != nil {
		t.Fatalf("Parse(with tlog entries and timestamps) = %v", err)
	}
	if !cmp.Equal(got, env) {
		t.Error("the envelope changed")
	}
	// The other spelling of v0.3's media type.
	b = mutate(t, b, func(m map[string]any) { m["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.3" })
	if _, _, err := bundle.Parse(b); err != nil {
		t.Errorf("Parse(mediaType ...+json;version=0.3) = %v", err)
	}
}

// TestParseRefuses tries what an attacker or a careless tool might hand
// Lantern as a bundle; each is refused with an error that names it.
func TestParseRefuses(t *testing.T) {
	k := newKey(t)
	env, err := attest.Sign(claimtest.Claims(k.ID())[0], k)
	if err != nil {
		t.Fatal(err)
	}
	good := mustNew(t, env, bundle.KeyHint(k.ID()))
	envJSON := string(mustJSON(t, func(m map[string]any) any { return m["dsseEnvelope"] }, good))
	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"two envelopes", []byte(strings.Replace(string(good), `"dsseEnvelope":`, `"dsseEnvelope":`+envJSON+`,"dsseEnvelope":`, 1)), strictjson.ErrDuplicate, `"dsseEnvelope"`},
		{"an envelope and a message signature", mutate(t, good, func(m map[string]any) {
			m["messageSignature"] = map[string]any{"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": "AA=="}, "signature": "AA=="}
		}), bundle.ErrMalformed, "both"},
		{"a message signature instead of DSSE", mutate(t, good, func(m map[string]any) {
			delete(m, "dsseEnvelope")
			m["messageSignature"] = map[string]any{"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": "AA=="}, "signature": "AA=="}
		}), bundle.ErrNotDSSE, "messageSignature"},
		{"no content", mutate(t, good, func(m map[string]any) { delete(m, "dsseEnvelope") }), bundle.ErrMalformed, "no dsseEnvelope"},
		{"wrong mediaType", mutate(t, good, func(m map[string]any) { m["mediaType"] = "application/vnd.in-toto+json" }), bundle.ErrMediaType, `"application/vnd.in-toto+json"`},
		{"bundle v0.1", mutate(t, good, func(m map[string]any) { m["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1" }), bundle.ErrMediaType, "version=0.1"},
		{"bundle v0.4", mutate(t, good, func(m map[string]any) { m["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.4+json" }), bundle.ErrMediaType, "v0.4"},
		{"mediaType in another case", mutate(t, good, func(m map[string]any) { m["mediaType"] = strings.ToUpper(bundle.MediaType) }), bundle.ErrMediaType, "APPLICATION"},
		{"no mediaType", mutate(t, good, func(m map[string]any) { delete(m, "mediaType") }), bundle.ErrMalformed, "no mediaType"},
		{"mediaType not a string", mutate(t, good, func(m map[string]any) { m["mediaType"] = 3 }), bundle.ErrMalformed, "want a string"},
		{"proto field name", []byte(strings.Replace(string(good), `"dsseEnvelope"`, `"dsse_envelope"`, 1)), strictjson.ErrUnknownField, `"dsse_envelope"`},
		{"unknown top-level field", mutate(t, good, func(m map[string]any) { m["comment"] = "hi" }), strictjson.ErrUnknownField, `"comment"`},
		{"unknown verificationMaterial field", mutate(t, good, func(m map[string]any) {
			m["verificationMaterial"].(map[string]any)["trustedKey"] = "PEM"
		}), strictjson.ErrUnknownField, `"trustedKey"`},
		{"a key inside publicKey", mutate(t, good, func(m map[string]any) {
			m["verificationMaterial"].(map[string]any)["publicKey"].(map[string]any)["rawBytes"] = "MFkw"
		}), strictjson.ErrUnknownField, `"rawBytes"`},
		{"no verificationMaterial", mutate(t, good, func(m map[string]any) { delete(m, "verificationMaterial") }), bundle.ErrMalformed, "no verificationMaterial"},
		{"no publicKey", mutate(t, good, func(m map[string]any) { m["verificationMaterial"] = map[string]any{} }), bundle.ErrNoPublicKey, "no publicKey"},
		{"a certificate", mutate(t, good, func(m map[string]any) {
			m["verificationMaterial"] = map[string]any{"certificate": map[string]any{"rawBytes": "MIIC"}}
		}), bundle.ErrNoPublicKey, "certificate"},
		{"a key and a certificate", mutate(t, good, func(m map[string]any) {
			m["verificationMaterial"].(map[string]any)["certificate"] = map[string]any{"rawBytes": "MIIC"}
		}), bundle.ErrMalformed, "want one"},
		{"hint not a string", mutate(t, good, func(m map[string]any) {
			m["verificationMaterial"].(map[string]any)["publicKey"] = map[string]any{"hint": []any{"a", "b"}}
		}), bundle.ErrMalformed, "want a string"},
		{"tlogEntries not a list of objects", mutate(t, good, func(m map[string]any) {
			m["verificationMaterial"].(map[string]any)["tlogEntries"] = []any{"entry"}
		}), bundle.ErrMalformed, "want an object"},
		{"unknown timestamp field", mutate(t, good, func(m map[string]any) {
			m["verificationMaterial"].(map[string]any)["timestampVerificationData"] = map[string]any{"trustedTime": "now"}
		}), strictjson.ErrUnknownField, `"trustedTime"`},
		{"envelope with an unknown field", mutate(t, good, func(m map[string]any) { m["dsseEnvelope"].(map[string]any)["comment"] = "hi" }), dsse.ErrMalformed, "dsseEnvelope"},
		{"envelope payload not base64", mutate(t, good, func(m map[string]any) { m["dsseEnvelope"].(map[string]any)["payload"] = "*" }), dsse.ErrBase64, "payload"},
		{"envelope not an object", mutate(t, good, func(m map[string]any) { m["dsseEnvelope"] = "e30=" }), dsse.ErrMalformed, "want an object"},
		{"data after the bundle", append(bytes.Clone(good), " {}"...), bundle.ErrMalformed, "data after"},
		{"truncated", good[:len(good)/2], bundle.ErrMalformed, "offset"},
		{"a list", []byte("[" + string(good) + "]"), bundle.ErrMalformed, "want an object"},
		{"null", []byte("null"), bundle.ErrMalformed, "want an object"},
		{"empty", nil, bundle.ErrMalformed, "end of the input"},
		{"oversized", oversized(good), bundle.ErrTooLarge, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, hint, err := bundle.Parse(tt.in)
			t.Log(err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse() = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Parse() = %q, want it to name %q", err, tt.msg)
			}
			if env != nil || hint != "" {
				t.Errorf("Parse() returned %v, %q with its error", env, hint)
			}
			// Through attest.ReadEnvelope, a refused bundle never falls back
			// to being read as something else.
			if bundle.IsBundle(tt.in) {
				if _, err := attest.ReadEnvelope(tt.in); !errors.Is(err, tt.want) {
					t.Errorf("ReadEnvelope() = %v, want %v", err, tt.want)
				}
			}
		})
	}
}

func TestIsBundle(t *testing.T) {
	k := newKey(t)
	env, err := attest.Sign(claimtest.Claims(k.ID())[0], k)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	good := mustNew(t, env, "")
	for _, tt := range []struct {
		name string
		in   []byte
		want bool
	}{
		{"lantern's bundle", good, true},
		{"cosign v3's bundle", readTestdata(t, "cosign-v3.1.3-attest-blob.json"), true},
		{"mediaType last", []byte(`{"dsseEnvelope":{"a":[1,2,{"b":null}]},"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`), true},
		{"another bundle version", []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1"}`), true},
		{"a bare envelope", bare, false},
		{"another mediaType", []byte(`{"mediaType":"application/json"}`), false},
		{"mediaType nested", []byte(`{"x":{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}}`), false},
		{"mediaType not a string", []byte(`{"mediaType":["application/vnd.dev.sigstore.bundle.v0.3+json"]}`), false},
		{"not JSON", []byte("application/vnd.dev.sigstore.bundle.v0.3+json"), false},
		{"a list", []byte(`[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]`), false},
		{"empty", nil, false},
	} {
		if got := bundle.IsBundle(tt.in); got != tt.want {
			t.Errorf("IsBundle(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := bundle.New(nil, ""); err == nil {
		t.Error("New(nil) = nil error")
	}
	if _, err := bundle.New(&dsse.Envelope{PayloadType: attest.PayloadType, Payload: []byte("{}")}, ""); !errors.Is(err, dsse.ErrNoSignature) {
		t.Errorf("New(unsigned) = %v, want dsse.ErrNoSignature", err)
	}
}

func mustNew(t *testing.T, env *dsse.Envelope, hint string) []byte {
	t.Helper()
	b, err := bundle.New(env, hint)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutate decodes b, lets fn change it, and encodes it again.
func mutate(t *testing.T, b []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, pick func(m map[string]any) any, b []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(pick(m))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// oversized is good padded with white space past MaxSize: still valid JSON.
func oversized(good []byte) []byte {
	return append(bytes.Repeat([]byte(" "), bundle.MaxSize), good...)
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readPublic(t testing.TB) *keys.Public {
	t.Helper()
	pub, err := keys.ParsePublic(readTestdata(t, "key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
