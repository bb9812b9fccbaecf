package scheduler_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/bundle"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/internal/cosigntest"
	"github.com/lanternfarm/lantern/natsq"
)

// TestAttestationAsBundle: the API serves a stored attestation as the
// envelope its builder sent, or with ?format=bundle as a Sigstore bundle of
// that same envelope with the builder's key hint, which the real cosign v3
// verifies.
func TestAttestationAsBundle(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA)
	claim, job := sourceClaim(t, claimKey, "example.org/bundled", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	eventually(t, "the job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	raw := rebuilt(t, builderA, job, "bundled output")
	if code := f.do("POST", "/api/v1/attestations", raw, nil); code != http.StatusAccepted {
		t.Fatalf("POST attestation = %d, want 202", code)
	}
	path := "/api/v1/attestations/" + lantern.DigestOf(raw).String()
	eventually(t, "the attestation", func() bool { return f.do("GET", path, nil, nil) == http.StatusOK })

	for _, q := range []string{"", "?format=dsse"} {
		code, _, body := f.get(path + q)
		if code != http.StatusOK || !bytes.Equal([]byte(body), raw) {
			t.Errorf("GET %s = %d %s, want 200 and the envelope as posted", q, code, body)
		}
	}

	code, h, body := f.get(path + "?format=bundle")
	if code != http.StatusOK {
		t.Fatalf("GET ?format=bundle = %d %s", code, body)
	}
	if cd := h.Get("Content-Disposition"); !strings.Contains(cd, ".sigstore.json") || h.Get("Content-Type") != "application/json" {
		t.Errorf("GET ?format=bundle: headers %v", h)
	}
	env, hint, err := bundle.Parse([]byte(body))
	if err != nil {
		t.Fatalf("bundle.Parse(%s) = %v", body, err)
	}
	want, err := dsse.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("the bundle's envelope is not the posted one (-posted +served):\n%s", diff)
	}
	if id, ok := hint.KeyID(); !ok || id != builderA.ID() {
		t.Errorf("hint %q names %s, want builder %s", hint, id, builderA.ID())
	}
	v, err := attest.Verify(env, builderA.Public())
	if err != nil {
		t.Fatalf("Verify(served bundle) = %v", err)
	}
	if r, ok := v.Claim.(*lantern.Rebuild); !ok || r.Output != lantern.DigestOf([]byte("bundled output")) {
		t.Errorf("served bundle verifies to %+v", v.Claim)
	}

	// The real cosign v3 verifies the served bundle for the artefact it is
	// about, and for no other.
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"builder.pub": builderA.Public().MarshalPEM(), "att.sigstore.json": []byte(body),
		"artefact": []byte("bundled output"), "other": []byte("other output"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r := cosigntest.VerifyBundle(t, dir, "builder.pub", attest.PredicateSLSAProvenance, "att.sigstore.json", "artefact"); r.Code != 0 {
		t.Errorf("cosign v3 verify-blob-attestation --bundle (served) exited %d:\n%s", r.Code, r.Stderr)
	}
	if r := cosigntest.VerifyBundle(t, dir, "builder.pub", attest.PredicateSLSAProvenance, "att.sigstore.json", "other"); r.Code == 0 {
		t.Errorf("cosign v3 verified the served bundle for another artefact:\n%s", r.Stderr)
	}

	if code, _, body := f.get(path + "?format=cosign"); code != http.StatusBadRequest || !strings.Contains(body, "format=bundle") {
		t.Errorf("GET ?format=cosign = %d %s, want 400 naming format=bundle", code, body)
	}
	if code, _, _ := f.get("/api/v1/attestations/" + lantern.DigestOf([]byte("nothing")).String() + "?format=bundle"); code != http.StatusNotFound {
		t.Errorf("GET an unknown attestation as a bundle = %d, want 404", code)
	}
}
