package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/attest/vsa"
)

// vsaPredicate is what these tests read of a VSA, by the spec's names.
type vsaPredicate struct {
	Verifier struct {
		ID string `json:"id"`
	} `json:"verifier"`
	ResourceURI       string `json:"resourceUri"`
	InputAttestations []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"inputAttestations"`
	VerificationResult string   `json:"verificationResult"`
	VerifiedLevels     []string `json:"verifiedLevels"`
}

// readVSA reads a VSA file, checking its signature with pub, and returns
// its subject's name and sha256 and its predicate.
func readVSA(t *testing.T, path, pub string) (name, digest string, p vsaPredicate) {
	t.Helper()
	env, err := dsse.Unmarshal([]byte(readFile(t, path)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	k, err := keys.ParsePublic([]byte(readFile(t, pub)))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := env.Verify(attest.PayloadType, k)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var st struct {
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		PredicateType string       `json:"predicateType"`
		Predicate     vsaPredicate `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if st.PredicateType != vsa.PredicateType || len(st.Subject) != 1 {
		t.Fatalf("%s: predicateType %q, %d subjects", path, st.PredicateType, len(st.Subject))
	}
	return st.Subject[0].Name, st.Subject[0].Digest["sha256"], st.Predicate
}

func inputs(p vsaPredicate) []string {
	var out []string
	for _, in := range p.InputAttestations {
		out = append(out, in.Name)
	}
	return out
}

// TestVerifyVSA: lantern verify --vsa writes a signed SLSA Verification
// Summary Attestation of its decision, whatever the result, with the exit
// code unchanged. The real cosign CLI verifies it with --type
// https://slsa.dev/verification_summary/v1 for the artefact, and for no
// other (no matching subject digest), with the verifier's key only; a
// builder's attestation does not pass as a VSA; a VSA counts as nobody's
// rebuild when fed back as evidence.
func TestVerifyVSA(t *testing.T) {
	dir := t.TempDir()
	cosignBin(t)
	for _, k := range []string{"a", "b", "verifier"} {
		runLantern(t, dir, pw, "keygen", "--output-key-prefix", k).must(t, "keygen "+k)
	}
	putFile(t, dir, "art", "the artefact")
	putFile(t, dir, "other", "other bytes")
	if err := os.Mkdir(filepath.Join(dir, "ev"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := "sha256:" + sha256hex("the source")
	sign := func(key, artefact, out string) {
		t.Helper()
		runLantern(t, dir, pw, "attest", "sign", artefact, "--key", key+".key", "--source", "example.org/tool@v1", "--source-digest", src, "--label", "tool", "-o", out).must(t, "attest sign "+out)
	}
	sign("a", "art", "ev/a.json")
	sign("b", "art", "ev/b.json")
	verifyVSA := func(pub, vsaFile, artefact string) result {
		t.Helper()
		return verifyBlobAttestation(t, dir, pub, vsa.PredicateType, vsaFile, artefact)
	}

	// Verified: PASSED, and cosign checks it for this artefact only.
	r := runLantern(t, dir, pw, "verify", "--trust", "a.pub", "--trust", "b.pub", "--threshold", "2", "--evidence", "ev", "--vsa", "verifier.key", "art").must(t, "verify --vsa, verified")
	if !strings.Contains(r.stderr, "wrote the verification summary (PASSED)") || !strings.Contains(r.stderr, "to art.vsa.intoto.json") {
		t.Errorf("verify --vsa does not say where it wrote the VSA:\n%s", r.stderr)
	}
	verifyVSA("verifier.pub", "art.vsa.intoto.json", "art").must(t, "cosign verify-blob-attestation of the VSA")
	if r := verifyVSA("verifier.pub", "art.vsa.intoto.json", "other"); r.code == 0 || !strings.Contains(r.stderr, "no matching subject digest") {
		t.Errorf("cosign verify-blob-attestation of the VSA for another artefact: exit %d, want a failure for the subject digest:\n%s", r.code, r.stderr)
	}
	if r := verifyVSA("a.pub", "art.vsa.intoto.json", "art"); r.code == 0 {
		t.Errorf("cosign verify-blob-attestation of the VSA with a builder's key exited 0:\n%s", r.stderr)
	}
	// A builder's rebuild attestation of the artefact is not a VSA.
	if r := verifyVSA("a.pub", "ev/a.json", "art"); r.code == 0 || !strings.Contains(r.stderr, "predicate type") {
		t.Errorf("cosign verify-blob-attestation --type %s of a rebuild attestation: exit %d, want a failure for its predicate type:\n%s", vsa.PredicateType, r.code, r.stderr)
	}
	name, digest, p := readVSA(t, filepath.Join(dir, "art.vsa.intoto.json"), filepath.Join(dir, "verifier.pub"))
	if name != "art" || digest != sha256hex("the artefact") || p.ResourceURI != "art" || p.VerificationResult != vsa.Passed || !slices.Equal(p.VerifiedLevels, []string{"LANTERN_REPRODUCED_2"}) {
		t.Errorf("VSA: subject %s %s, resourceUri %q, %s, levels %v", name, digest, p.ResourceURI, p.VerificationResult, p.VerifiedLevels)
	}
	if want := []string{filepath.Join("ev", "a.json"), filepath.Join("ev", "b.json")}; !slices.Equal(inputs(p), want) {
		t.Errorf("VSA inputAttestations %v, want %v", inputs(p), want)
	}
	// An input's digest is of the envelope as read: a file's sha256 (a line
	// of JSON Lines is without its newline).
	for _, in := range p.InputAttestations {
		if want := sha256hex(readFile(t, filepath.Join(dir, in.Name))); in.Digest["sha256"] != want {
			t.Errorf("VSA input %s has sha256 %s, want the envelope's, %s", in.Name, in.Digest["sha256"], want)
		}
	}

	// Not verified: exit 1 still, and a signed FAILED summary. Given as a
	// digest, the artefact names the default file and the subject.
	art := "sha256:" + sha256hex("the artefact")
	r = runLantern(t, dir, pw, "verify", "--trust", "a.pub", "--trust", "b.pub", "--threshold", "3", "--evidence", "ev", "--vsa", "verifier.key", art)
	r.fails(t, "verify --vsa, threshold 3", 1, "2 of 3")
	failed := sha256hex("the artefact")[:16] + ".vsa.intoto.json"
	if !strings.Contains(r.stderr, "wrote the verification summary (FAILED)") || !strings.Contains(r.stderr, "to "+failed) {
		t.Errorf("verify --vsa of a digest does not say it wrote %s:\n%s", failed, r.stderr)
	}
	verifyVSA("verifier.pub", failed, "art").must(t, "cosign verify-blob-attestation of a FAILED VSA")
	name, _, p = readVSA(t, filepath.Join(dir, failed), filepath.Join(dir, "verifier.pub"))
	if name != art || p.VerificationResult != vsa.Failed || !slices.Equal(p.VerifiedLevels, []string{"FAILED"}) {
		t.Errorf("VSA of a not-verified decision: subject %q, %s, levels %v; want %s, FAILED, [FAILED]", name, p.VerificationResult, p.VerifiedLevels, art)
	}

	// Contradicted: exit 3 still, FAILED, and what contradicted is an input.
	sign("b", "other", "ev/b-other.json")
	r = runLantern(t, dir, pw, "verify", "--trust", "a.pub", "--trust", "b.pub", "--evidence", "ev", "--vsa", "verifier.key", "--vsa-out", "contradicted.json", "--vsa-resource", "pkg:golang/example.org/tool@v1", "art")
	r.fails(t, "verify --vsa, contradicted", 3, "contradicted")
	_, _, p = readVSA(t, filepath.Join(dir, "contradicted.json"), filepath.Join(dir, "verifier.pub"))
	if p.VerificationResult != vsa.Failed || p.ResourceURI != "pkg:golang/example.org/tool@v1" || !slices.Contains(inputs(p), filepath.Join("ev", "b-other.json")) {
		t.Errorf("VSA of a contradicted decision: %s, resourceUri %q, inputs %v", p.VerificationResult, p.ResourceURI, inputs(p))
	}

	// A VSA is the verifier's word, never a rebuild: trusting the
	// verifier's key as a builder's counts nothing.
	r = runLantern(t, dir, nil, "verify", "--trust", "verifier.pub", "--evidence", "art.vsa.intoto.json", "art")
	r.fails(t, "verify with a VSA as evidence", 1, "0 of 1")
	if !strings.Contains(r.stdout, "art.vsa.intoto.json: not a Lantern attestation") {
		t.Errorf("verify with a VSA as evidence printed:\n%s", r.stdout)
	}
}

// TestVerifyVSAFlags: the VSA's flags fail early and say why: a wrong
// password before any evidence is read, --vsa-out without --vsa, and
// standard output, where the decision goes.
func TestVerifyVSAFlags(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "verifier").must(t, "keygen")
	putFile(t, dir, "art", "the artefact")
	base := []string{"verify", "--trust", "verifier.pub", "--evidence", "art"}
	runLantern(t, dir, []string{"LANTERN_PASSWORD=wrong"}, append(base, "--vsa", "verifier.key", "art")...).fails(t, "--vsa with a wrong password", 1, "LANTERN_PASSWORD")
	runLantern(t, dir, pw, append(base, "--vsa", "missing.key", "art")...).fails(t, "--vsa of a missing key", 1, "missing.key")
	runLantern(t, dir, pw, append(base, "--vsa-out", "x.json", "art")...).fails(t, "--vsa-out without --vsa", 2, "give --vsa KEY")
	runLantern(t, dir, pw, append(base, "--vsa", "verifier.key", "--vsa-out", "-", "art")...).fails(t, "--vsa-out -", 2, "give the VSA a file")
	if _, err := os.Stat(filepath.Join(dir, "art.vsa.intoto.json")); !os.IsNotExist(err) {
		t.Errorf("a failed verify --vsa wrote art.vsa.intoto.json (%v)", err)
	}
}
