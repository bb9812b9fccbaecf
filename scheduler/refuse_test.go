package scheduler_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/natsq"
)

// TestRefusals: bad claims and attestations each get a clear 4xx, and
// nothing of them is stored.
func TestRefusals(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB)
	good, job := sourceClaim(t, claimKey, "example.org/good", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", good, nil); code != http.StatusAccepted {
		t.Fatalf("POST good claim = %d", code)
	}
	eventually(t, "the job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })

	unsigned := func() []byte {
		var env map[string]any
		json.Unmarshal(good, &env)
		env["signatures"] = []any{}
		b, _ := json.Marshal(env)
		return b
	}()
	strangers, _ := sourceClaim(t, stranger, "example.org/strangers", lantern.Digest{})
	forged := func() []byte { // a claim re-signed... by nobody: the payload changed under the signature
		var env map[string]any
		json.Unmarshal(good, &env)
		st, _ := attest.NewStatement(&lantern.SourceClaim{Source: lantern.Source{Name: "example.org/evil", Version: "v1", Digest: lantern.DigestOf([]byte("evil"))}, Recipe: "go", Time: job.Created.AddDate(2026, 0, 0)})
		p, _ := json.Marshal(st)
		env["payload"] = p // encoding/json writes []byte as base64
		b, _ := json.Marshal(env)
		return b
	}()
	atByStranger := func() []byte { // names builder A, signed by another key
		r := rebuilt(t, builderA, job, "x")
		var env map[string]any
		json.Unmarshal(r, &env)
		other := rebuilt(t, stranger, job, "x")
		var oenv map[string]any
		json.Unmarshal(other, &oenv)
		env["signatures"] = oenv["signatures"]
		b, _ := json.Marshal(env)
		return b
	}()
	unknownJob := rebuilt(t, builderA, lantern.Job{ID: "jnosuchjob", Source: job.Source}, "x")
	goodAtt := rebuilt(t, builderA, job, "x")

	tests := []struct {
		name, path string
		body       []byte
		code       int
		says       string
	}{
		{"unsigned claim", "/api/v1/claims", unsigned, 400, "no signature"},
		{"claim by a key the farm does not accept", "/api/v1/claims", strangers, 403, "not signed by a key this farm accepts"},
		{"claim whose payload changed", "/api/v1/claims", forged, 403, "not signed by a key this farm accepts"},
		{"malformed JSON", "/api/v1/claims", []byte(`{"payloadType":`), 400, "malformed envelope"},
		{"not JSON at all", "/api/v1/claims", []byte("hello"), 400, "malformed envelope"},
		{"oversized body", "/api/v1/claims", bytes.Repeat([]byte("a"), 2<<20), 413, "body larger than"},
		{"empty body", "/api/v1/claims", nil, 400, "empty body"},
		{"attestation signed by another key than the job's builder", "/api/v1/attestations", atByStranger, 403, "signature does not verify"},
		{"attestation for a job never queued", "/api/v1/attestations", unknownJob, 422, "unknown job"},
		{"malformed attestation", "/api/v1/attestations", []byte(`[]`), 400, "malformed envelope"},
		{"oversized attestation", "/api/v1/attestations", bytes.Repeat([]byte(" "), 2<<20), 413, "body larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e struct{ Error, Fix string }
			code := f.do("POST", tt.path, tt.body, &e)
			if code != tt.code || !strings.Contains(e.Error, tt.says) || e.Fix == "" {
				t.Errorf("POST %s = %d %+v, want %d saying %q, with a fix", tt.path, code, e, tt.code, tt.says)
			}
		})
	}

	// A good attestation, then the same one replayed.
	if code := f.do("POST", "/api/v1/attestations", goodAtt, nil); code != http.StatusAccepted {
		t.Fatalf("POST good attestation = %d", code)
	}
	out := lantern.DigestOf([]byte("x"))
	eventually(t, "the attestation", func() bool { return f.verdict(out) != nil })
	var e struct{ Error string }
	if code := f.do("POST", "/api/v1/attestations", goodAtt, &e); code != http.StatusConflict || !strings.Contains(e.Error, "already recorded") {
		t.Errorf("POST replayed attestation = %d %q, want 409 already recorded", code, e.Error)
	}
	// A second, different attestation of the same builder for the same job.
	if code := f.do("POST", "/api/v1/attestations", rebuilt(t, builderA, job, "y"), &e); code != http.StatusConflict {
		t.Errorf("POST a second answer of builder A = %d %q, want 409", code, e.Error)
	}

	// Nothing of the refused is stored: one job, one attestation.
	var jobs struct{ Jobs []any }
	f.do("GET", "/api/v1/jobs", nil, &jobs)
	if len(jobs.Jobs) != 1 {
		t.Errorf("jobs = %d, want 1", len(jobs.Jobs))
	}
	for _, name := range []string{"example.org/strangers@v1.0.0", "example.org/evil@v1"} {
		if code := f.do("GET", "/api/v1/sources/"+name, nil, nil); code != http.StatusNotFound {
			t.Errorf("GET source %s = %d, want 404", name, code)
		}
	}
	var atts struct{ Attestations []any }
	f.do("GET", "/api/v1/builders/"+builderA.ID().String(), nil, &atts)
	if len(atts.Attestations) != 1 {
		t.Errorf("builder A's attestations = %d, want 1", len(atts.Attestations))
	}
	if got := f.do("GET", "/api/v1/nonsense", nil, nil); got != http.StatusNotFound {
		t.Errorf("GET /api/v1/nonsense = %d, want 404", got)
	}
	if got := f.do("GET", "/healthz", nil, nil); got != http.StatusOK {
		t.Errorf("GET /healthz = %d", got)
	}
}
