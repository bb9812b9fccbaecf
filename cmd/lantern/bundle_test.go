package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/bundle"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/cosigntest"
)

// These tests run the real cosign v3 CLI (internal/cosigntest finds it) on
// Sigstore bundles, both ways.

const testPassword = "test password" // pw's, for cosign

// TestCosignV3VerifiesLanternBundle: `lantern attest sign --bundle` writes a
// bundle that `cosign verify-blob-attestation --bundle` accepts with no
// deprecated flag, for the artefact attested and for no other; lantern
// reads it back; claim sign --bundle likewise.
func TestCosignV3VerifiesLanternBundle(t *testing.T) {
	dir := t.TempDir()
	cosigntest.V3(t)
	runLantern(t, dir, pw, "keygen").must(t, "lantern keygen")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "stranger").must(t, "lantern keygen stranger")
	putFile(t, dir, "hello-linux-amd64", "the artefact")
	putFile(t, dir, "other", "another artefact")
	putFile(t, dir, "hello.tar.gz", "the source")
	sign := []string{"attest", "sign", "--key", "lantern.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "hello.tar.gz", "--label", "hello-linux-amd64"}
	r := runLantern(t, dir, pw, append(sign, "--bundle", "att.sigstore.json", "hello-linux-amd64")...).must(t, "lantern attest sign --bundle")
	if r.stdout != "" {
		t.Errorf("attest sign --bundle without -o printed %q; the bundle goes to its file only", r.stdout)
	}

	const slsa = attest.PredicateSLSAProvenance
	if r := cosigntest.VerifyBundle(t, dir, "lantern.pub", slsa, "att.sigstore.json", "hello-linux-amd64"); r.Code != 0 {
		t.Errorf("cosign v3 verify-blob-attestation --bundle exited %d:\n%s", r.Code, r.Stderr)
	}
	if r := cosigntest.VerifyBundle(t, dir, "lantern.pub", slsa, "att.sigstore.json", "other"); r.Code == 0 {
		t.Errorf("cosign v3 verified the bundle for another artefact:\n%s", r.Stderr)
	}
	if r := cosigntest.VerifyBundle(t, dir, "stranger.pub", slsa, "att.sigstore.json", "hello-linux-amd64"); r.Code == 0 {
		t.Errorf("cosign v3 verified the bundle with another key:\n%s", r.Stderr)
	}

	r = runLantern(t, dir, nil, "attest", "verify", "--key", "lantern.pub", "att.sigstore.json", "hello-linux-amd64").must(t, "lantern attest verify BUNDLE")
	if !strings.Contains(r.stdout, "Verified: builder") {
		t.Errorf("lantern attest verify printed %q", r.stdout)
	}
	runLantern(t, dir, nil, "attest", "verify", "--key", "lantern.pub", "att.sigstore.json", "other").fails(t, "another artefact", 1, "artefact is not a subject")
	runLantern(t, dir, nil, "attest", "verify", "--key", "stranger.pub", "att.sigstore.json", "hello-linux-amd64").fails(t, "another key", 1, "signature does not verify")

	// -o and --bundle together: one signature, in both forms.
	runLantern(t, dir, pw, append(sign, "-o", "both.json", "--bundle", "both.sigstore.json", "hello-linux-amd64")...).must(t, "lantern attest sign -o --bundle")
	bare, err := attest.ReadEnvelope([]byte(readFile(t, filepath.Join(dir, "both.json"))))
	if err != nil {
		t.Fatal(err)
	}
	inBundle, hint, err := bundle.Parse([]byte(readFile(t, filepath.Join(dir, "both.sigstore.json"))))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(bare, inBundle); diff != "" {
		t.Errorf("-o and --bundle hold different envelopes:\n%s", diff)
	}
	pub := readPub(t, filepath.Join(dir, "lantern.pub"))
	if id, ok := hint.KeyID(); !ok || id != pub.ID() {
		t.Errorf("the bundle's hint %q names %s, want the signer %s", hint, id, pub.ID())
	}

	// A source claim, as a bundle, is an attestation about the source archive.
	runLantern(t, dir, pw, "claim", "sign", "--key", "lantern.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "hello.tar.gz", "--bundle", "claim.sigstore.json").must(t, "lantern claim sign --bundle")
	if r := cosigntest.VerifyBundle(t, dir, "lantern.pub", attest.PredicateSourceClaim, "claim.sigstore.json", "hello.tar.gz"); r.Code != 0 {
		t.Errorf("cosign v3 verify-blob-attestation --bundle of a source claim exited %d:\n%s", r.Code, r.Stderr)
	}
}

// TestLanternReadsCosignV3Bundle: a bundle that `cosign attest-blob --bundle`
// makes with a Lantern key from the predicate of a Lantern rebuild
// attestation verifies in Lantern to the same Rebuild claim; `lantern
// attest verify` accepts it for that artefact, with that key, only. Its key
// hint decides nothing.
func TestLanternReadsCosignV3Bundle(t *testing.T) {
	dir := t.TempDir()
	cosigntest.V3(t)
	runLantern(t, dir, pw, "keygen").must(t, "lantern keygen")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "stranger").must(t, "lantern keygen stranger")
	// cosign names the subject after the file: name the artefact after
	// its label.
	putFile(t, dir, "hello-linux-amd64", "the artefact")
	putFile(t, dir, "other", "another artefact")
	putFile(t, dir, "hello.tar.gz", "the source")
	runLantern(t, dir, pw, "attest", "sign", "--key", "lantern.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "hello.tar.gz", "--label", "hello-linux-amd64", "-o", "lantern.json", "hello-linux-amd64").must(t, "lantern attest sign")
	pub := readPub(t, filepath.Join(dir, "lantern.pub"))
	lanternEnv, err := attest.ReadEnvelope([]byte(readFile(t, filepath.Join(dir, "lantern.json"))))
	if err != nil {
		t.Fatal(err)
	}
	want, err := attest.Verify(lanternEnv, pub)
	if err != nil {
		t.Fatal(err)
	}
	putFile(t, dir, "predicate.json", string(want.Statement.Predicate))

	r := cosigntest.Run(t, dir, testPassword, "attest-blob", "--bundle", "cosign.sigstore.json", "--tlog-upload=false", "--use-signing-config=false",
		"--key", "lantern.key", "--type", attest.PredicateSLSAProvenance, "--predicate", "predicate.json", "hello-linux-amd64")
	if r.Code != 0 {
		t.Fatalf("cosign attest-blob --bundle exited %d:\n%s", r.Code, r.Stderr)
	}
	b := []byte(readFile(t, filepath.Join(dir, "cosign.sigstore.json")))
	if !bundle.IsBundle(b) {
		t.Fatalf("IsBundle(cosign's bundle) = false:\n%s", b)
	}
	env, err := attest.ReadEnvelope(b)
	if err != nil {
		t.Fatalf("ReadEnvelope(cosign's bundle) = %v\n%s", err, b)
	}
	got, err := attest.Verify(env, pub)
	if err != nil {
		t.Fatalf("Verify(cosign's bundle) = %v", err)
	}
	if diff := cmp.Diff(want.Claim, got.Claim); diff != "" {
		t.Errorf("cosign's bundle verifies to another claim (-lantern's +cosign's):\n%s", diff)
	}
	if _, ok := got.Claim.(*lantern.Rebuild); !ok || got.Signer != pub.ID() {
		t.Errorf("cosign's bundle: a %T signed by %s", got.Claim, got.Signer)
	}
	if r := cosigntest.VerifyBundle(t, dir, "lantern.pub", attest.PredicateSLSAProvenance, "cosign.sigstore.json", "hello-linux-amd64"); r.Code != 0 {
		t.Errorf("cosign v3 verify-blob-attestation of its own bundle exited %d:\n%s", r.Code, r.Stderr)
	}

	r2 := runLantern(t, dir, nil, "attest", "verify", "--key", "lantern.pub", "cosign.sigstore.json", "hello-linux-amd64").must(t, "lantern attest verify cosign's bundle")
	if !strings.Contains(r2.stdout, "Verified: builder "+pub.ID().String()+" built example.org/hello@v1.0.0") {
		t.Errorf("lantern attest verify printed %q", r2.stdout)
	}
	runLantern(t, dir, nil, "attest", "verify", "--key", "lantern.pub", "cosign.sigstore.json", "other").fails(t, "another artefact", 1, "artefact is not a subject")
	runLantern(t, dir, nil, "attest", "verify", "--key", "stranger.pub", "cosign.sigstore.json", "hello-linux-amd64").fails(t, "another key", 1, "signature does not verify")

	// A hint that names the stranger changes nothing: the stranger's key
	// still does not verify it, the signer's still does.
	stranger := readPub(t, filepath.Join(dir, "stranger.pub"))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["verificationMaterial"].(map[string]any)["publicKey"] = map[string]any{"hint": bundle.KeyHint(stranger.ID())}
	lying, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	putFile(t, dir, "lying.sigstore.json", string(lying))
	runLantern(t, dir, nil, "attest", "verify", "--key", "stranger.pub", "lying.sigstore.json", "hello-linux-amd64").fails(t, "the key the hint names", 1, "signature does not verify")
	runLantern(t, dir, nil, "attest", "verify", "--key", "lantern.pub", "lying.sigstore.json", "hello-linux-amd64").must(t, "lantern attest verify with a lying hint, the signer's key")

	// lantern verify counts cosign's bundle when its key is trusted, and
	// only then (issue 11, must-show 5).
	r3 := runLantern(t, dir, nil, "verify", "--trust", "lantern.pub", "--evidence", "cosign.sigstore.json", "hello-linux-amd64").must(t, "lantern verify of cosign's bundle")
	if !strings.Contains(r3.stdout, "+ cosign.sigstore.json: trusted (lantern.pub) and agreeing") {
		t.Errorf("lantern verify did not count cosign's bundle:\n%s", r3.stdout)
	}
	r3 = runLantern(t, dir, nil, "verify", "--trust", "stranger.pub", "--evidence", "cosign.sigstore.json", "hello-linux-amd64")
	r3.fails(t, "lantern verify of cosign's bundle, its key not trusted", 1, "0 of 1")
	if !strings.Contains(r3.stdout, "untrusted key") {
		t.Errorf("lantern verify did not say cosign's bundle is by an untrusted key:\n%s", r3.stdout)
	}
	// Its bundle and Lantern's own envelope of the same statement are one
	// builder's evidence: counted once.
	runLantern(t, dir, nil, "verify", "--trust", "lantern.pub", "--threshold", "2", "--evidence", "cosign.sigstore.json", "--evidence", "lantern.json", "hello-linux-amd64").fails(t, "lantern verify, one builder's envelope and bundle", 1, "1 of 2")
}

func readPub(t *testing.T, path string) *keys.Public {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.ParsePublic(b)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestAttestVerifyBundleFailures: what lantern attest verify says of bundles
// that must not verify.
func TestAttestVerifyBundleFailures(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, pw, "keygen").must(t, "lantern keygen")
	putFile(t, dir, "art", "artefact")
	runLantern(t, dir, pw, "attest", "sign", "--key", "lantern.key", "--source", "x@1", "--source-digest", "sha256:"+sha256hex("src"),
		"--label", "art", "--bundle", "att.sigstore.json", "art").must(t, "attest sign --bundle")
	good := readFile(t, filepath.Join(dir, "att.sigstore.json"))
	edit := func(name string, fn func(m map[string]any)) {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(good), &m); err != nil {
			t.Fatal(err)
		}
		fn(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		putFile(t, dir, name, string(b))
	}
	edit("tampered.json", func(m map[string]any) {
		p := []byte(m["dsseEnvelope"].(map[string]any)["payload"].(string))
		p[10] = otherChar(p[10])
		m["dsseEnvelope"].(map[string]any)["payload"] = string(p)
	})
	edit("message.json", func(m map[string]any) {
		delete(m, "dsseEnvelope")
		m["messageSignature"] = map[string]any{"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": "AA=="}, "signature": "AA=="}
	})
	edit("v0.1.json", func(m map[string]any) { m["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1" })
	edit("cert.json", func(m map[string]any) {
		m["verificationMaterial"] = map[string]any{"certificate": map[string]any{"rawBytes": "MIIC"}}
	})
	for file, want := range map[string]string{
		"tampered.json": "signature does not verify",
		"message.json":  "not a DSSE envelope: a messageSignature",
		"v0.1.json":     "wrong bundle mediaType",
		"cert.json":     "not signed with a public key",
	} {
		runLantern(t, dir, nil, "attest", "verify", "--key", "lantern.pub", file, "art").fails(t, file, 1, want)
	}
}
