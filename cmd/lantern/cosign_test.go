package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
)

// These tests run the real cosign CLI, built from the Go module proxy by
// `make cosign` (tools/cosign pins the version). Where it is missing they
// skip on a developer's machine and fail under CI, which must run them.

// cosignBin returns the cosign binary: $LANTERN_COSIGN, else bin/cosign at
// the top of the repository.
func cosignBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LANTERN_COSIGN")
	if p == "" {
		p, _ = filepath.Abs(filepath.Join("..", "..", "bin", "cosign"))
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cosign CLI not found at %s (%v): CI must run the interop tests; 'make test' builds it with 'make cosign'", p, err)
		}
		t.Skipf("cosign CLI not found at %s: run 'make cosign' or 'make test'", p)
	}
	return p
}

// cosignEnv keeps cosign offline: with SIGSTORE_ROOT_FILE set it does not
// fetch the public-good trusted root over TUF (with --key it needs none), and
// HOME keeps its cache out of the user's.
func cosignEnv(t *testing.T, dir string) []string {
	empty := filepath.Join(dir, "no-fulcio-roots.pem")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"COSIGN_PASSWORD=cosign test password", "SIGSTORE_ROOT_FILE=" + empty, "HOME=" + dir, "COSIGN_YES=true"}
}

func cosign(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := runIn(t, dir, cosignEnv(t, dir), cosignBin(t), args...)
	if strings.Contains(r.stderr, "TUF") || strings.Contains(r.stderr, "rekor.sigstore.dev") {
		t.Fatalf("cosign %q reached for the network:\n%s", args, r.stderr)
	}
	return r
}

func verifyBlobAttestation(t *testing.T, dir, pub, predicateType, envelope, artefact string) result {
	t.Helper()
	return cosign(t, dir, "verify-blob-attestation", "--key", pub, "--type", predicateType,
		"--insecure-ignore-tlog", "--signature", envelope, artefact)
}

// TestCosignVerifiesLanternAttestation: cosign accepts what lantern signs,
// for the artefact attested and for no other.
func TestCosignVerifiesLanternAttestation(t *testing.T) {
	dir := t.TempDir()
	cosignBin(t)
	runLantern(t, dir, pw, "keygen").must(t, "lantern keygen")
	putFile(t, dir, "hello", "the artefact")
	putFile(t, dir, "other", "another artefact")
	putFile(t, dir, "hello.tar.gz", "the source")
	runLantern(t, dir, pw, "attest", "sign", "--key", "lantern.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "hello.tar.gz", "--label", "hello-linux-amd64", "-o", "envelope.json", "hello").must(t, "lantern attest sign")

	verifyBlobAttestation(t, dir, "lantern.pub", "https://slsa.dev/provenance/v1", "envelope.json", "hello").must(t, "cosign verify-blob-attestation")
	if r := verifyBlobAttestation(t, dir, "lantern.pub", "https://slsa.dev/provenance/v1", "envelope.json", "other"); r.code == 0 {
		t.Errorf("cosign verify-blob-attestation of another artefact exited 0:\n%s", r.stderr)
	}
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "stranger").must(t, "lantern keygen")
	if r := verifyBlobAttestation(t, dir, "stranger.pub", "https://slsa.dev/provenance/v1", "envelope.json", "hello"); r.code == 0 {
		t.Errorf("cosign verify-blob-attestation with another key exited 0:\n%s", r.stderr)
	}

	// A source claim is an attestation about the source archive.
	runLantern(t, dir, pw, "claim", "sign", "--key", "lantern.key", "--source", "example.org/hello@v1.0.0",
		"--source-file", "hello.tar.gz", "-o", "claim.json").must(t, "lantern claim sign")
	verifyBlobAttestation(t, dir, "lantern.pub", attest.PredicateSourceClaim, "claim.json", "hello.tar.gz").must(t, "cosign verify-blob-attestation of a source claim")
}

// TestLanternSignsWithCosignKey: a pair from `cosign generate-key-pair` signs
// with lantern, and both tools verify the result.
func TestLanternSignsWithCosignKey(t *testing.T) {
	dir := t.TempDir()
	cosign(t, dir, "generate-key-pair").must(t, "cosign generate-key-pair")
	putFile(t, dir, "hello", "the artefact")
	cosignPW := []string{"LANTERN_PASSWORD=cosign test password"}
	runLantern(t, dir, cosignPW, "attest", "sign", "--key", "cosign.key", "--source", "example.org/hello@v1.0.0",
		"--source-digest", "sha256:"+sha256hex("src"), "--label", "hello", "-o", "envelope.json", "hello").must(t, "lantern attest sign --key cosign.key")
	r := runLantern(t, dir, nil, "attest", "verify", "--key", "cosign.pub", "envelope.json", "hello").must(t, "lantern attest verify")
	if !strings.Contains(r.stdout, "Verified") {
		t.Errorf("lantern attest verify printed %q", r.stdout)
	}
	verifyBlobAttestation(t, dir, "cosign.pub", "https://slsa.dev/provenance/v1", "envelope.json", "hello").must(t, "cosign verify-blob-attestation")
}

// TestLanternVerifiesCosignAttestBlob: an envelope made by `cosign
// attest-blob --statement` from a Lantern statement verifies with lantern.
func TestLanternVerifiesCosignAttestBlob(t *testing.T) {
	dir := t.TempDir()
	cosign(t, dir, "generate-key-pair").must(t, "cosign generate-key-pair")
	pub, err := keys.ParsePublic([]byte(readFile(t, filepath.Join(dir, "cosign.pub"))))
	if err != nil {
		t.Fatal(err)
	}
	putFile(t, dir, "hello", "the artefact")
	st, err := attest.NewStatement(&lantern.Rebuild{
		Source:   lantern.Source{Name: "example.org/hello", Version: "v1.0.0", Digest: lantern.DigestOf([]byte("src"))},
		Label:    "hello",
		Output:   lantern.DigestOf([]byte("the artefact")),
		Recipe:   lantern.Recipe{BuildType: attest.BuildTypeMaintainer},
		Builder:  pub.ID(),
		Finished: attestTime,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	putFile(t, dir, "stmt.json", string(b))
	cosign(t, dir, "attest-blob", "--key", "cosign.key", "--statement", "stmt.json", "--tlog-upload=false",
		"--output-signature", "envelope.json").must(t, "cosign attest-blob")

	r := runLantern(t, dir, nil, "attest", "verify", "--key", "cosign.pub", "envelope.json", "hello").must(t, "lantern attest verify")
	if !strings.Contains(r.stdout, "Verified: builder "+pub.ID().String()) {
		t.Errorf("lantern attest verify printed %q", r.stdout)
	}
	putFile(t, dir, "other", "another artefact")
	runLantern(t, dir, nil, "attest", "verify", "--key", "cosign.pub", "envelope.json", "other").fails(t, "another artefact", 1, "artefact is not a subject")
	runLantern(t, dir, pw, "keygen").must(t, "lantern keygen")
	runLantern(t, dir, nil, "attest", "verify", "--key", "lantern.pub", "envelope.json", "hello").fails(t, "another key", 1, "signature does not verify")
}
