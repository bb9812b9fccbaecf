package scheduler_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
)

// rebuiltWithLog signs, as builder, a rebuild of job's source to output
// that names log as its build log.
func rebuiltWithLog(t testing.TB, builder *keys.Private, job lantern.Job, output string, log lantern.Digest) []byte {
	t.Helper()
	r := &lantern.Rebuild{
		Source:   job.Source,
		Label:    goLabel(job.Source.Name),
		Output:   lantern.DigestOf([]byte(output)),
		Recipe:   goRecipe(t),
		Builder:  builder.ID(),
		Claim:    job.Claim,
		JobID:    job.ID,
		Started:  time.Date(2026, 11, 25, 10, 1, 0, 0, time.UTC),
		Finished: time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC),
		Log:      log,
	}
	return signed(t, builder, r)
}

// get fetches path from the farm's API and returns the status, the
// response's headers and its body.
func (f *farm) get(path string) (int, http.Header, string) {
	f.t.Helper()
	resp, err := http.Get(f.api.URL + path)
	if err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// TestSourcesAndLogs: the sources listing and search, and the build log an
// attestation names, read from the farm's object store.
func TestSourcesAndLogs(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB)
	var jobs []lantern.Job
	for _, name := range []string{"example.org/first", "example.org/second"} {
		claim, job := sourceClaim(t, claimKey, name, lantern.Digest{})
		if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
			t.Fatalf("POST claim %s = %d, want 202", name, code)
		}
		eventually(t, "the job of "+name, func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
		jobs = append(jobs, job)
	}

	logText := "step 1/2: go install\n<script>alert(1)</script>\n"
	// Builder A's worker uploads its log to A's bucket; the API reads it
	// through the scheduler's connection.
	logDigest, err := f.builder(builderA).PutObject(t.Context(), "build.log", strings.NewReader(logText))
	if err != nil {
		t.Fatal(err)
	}
	withLog := rebuiltWithLog(t, builderA, jobs[0], "first output", logDigest)
	if code := f.do("POST", "/api/v1/attestations", withLog, nil); code != http.StatusAccepted {
		t.Fatalf("POST attestation = %d, want 202", code)
	}
	noLog := rebuilt(t, builderB, jobs[0], "first output")
	if code := f.do("POST", "/api/v1/attestations", noLog, nil); code != http.StatusAccepted {
		t.Fatalf("POST attestation = %d, want 202", code)
	}
	eventually(t, "reproduced", func() bool {
		v := f.verdict(lantern.DigestOf([]byte("first output")))
		return v != nil && v.Status == lantern.StatusReproduced
	})

	type sourcesResp struct {
		Sources []struct {
			Name     string
			Version  string
			Digests  []lantern.Digest
			Verdicts []lantern.Verdict
		}
		Next string
	}
	var list sourcesResp
	if code := f.do("GET", "/api/v1/sources", nil, &list); code != http.StatusOK {
		t.Fatalf("GET sources = %d", code)
	}
	if len(list.Sources) != 2 || list.Sources[0].Name != "example.org/second" || list.Sources[1].Name != "example.org/first" {
		t.Fatalf("GET sources = %+v, want second, then first", list)
	}
	if vs := list.Sources[1].Verdicts; len(vs) != 1 || vs[0].Status != lantern.StatusReproduced {
		t.Errorf("first's verdicts = %+v, want one, reproduced", vs)
	}
	var page sourcesResp
	if code := f.do("GET", "/api/v1/sources?count=1", nil, &page); code != http.StatusOK || len(page.Sources) != 1 || page.Next == "" {
		t.Errorf("GET sources?count=1 = %d %+v, want one and a next page", code, page)
	}
	for q, want := range map[string]string{
		"second":                       "example.org/second",
		jobs[0].Source.Digest.String(): "example.org/first",
		lantern.DigestOf([]byte("first output")).Short():     "example.org/first",
		"EXAMPLE.ORG/FIRST@v1.0.0":                           "example.org/first",
		"sha256:" + lantern.DigestOf([]byte("x")).Hex()[:10]: "",
	} {
		var found sourcesResp
		if code := f.do("GET", "/api/v1/sources?q="+q, nil, &found); code != http.StatusOK {
			t.Fatalf("GET sources?q=%s = %d", q, code)
		}
		var got string
		if len(found.Sources) > 0 {
			got = found.Sources[0].Name
		}
		if len(found.Sources) > 1 || got != want {
			t.Errorf("GET sources?q=%s = %+v, want %q alone", q, found.Sources, want)
		}
	}

	code, h, body := f.get("/api/v1/attestations/" + lantern.DigestOf(withLog).String() + "/log")
	if code != http.StatusOK || body != logText {
		t.Errorf("GET the log = %d %q, want 200 %q", code, body, logText)
	}
	if ct := h.Get("Content-Type"); ct != "text/plain; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("GET the log: headers %v, want plain text, nosniff and a sandbox", h)
	}
	if code, _, body := f.get("/api/v1/attestations/" + lantern.DigestOf(noLog).String() + "/log"); code != http.StatusNotFound || !strings.Contains(body, "names no build log") {
		t.Errorf("GET the log of an attestation without one = %d %s, want 404", code, body)
	}
	// A log the object store does not have is the farm's failure, not the
	// client's.
	lost := rebuiltWithLog(t, builderA, jobs[1], "second output", lantern.DigestOf([]byte("a log nobody stored")))
	if code := f.do("POST", "/api/v1/attestations", lost, nil); code != http.StatusAccepted {
		t.Fatalf("POST attestation = %d, want 202", code)
	}
	eventually(t, "the attestation with a lost log", func() bool {
		return f.do("GET", "/api/v1/attestations/"+lantern.DigestOf(lost).String(), nil, nil) == http.StatusOK
	})
	if code, _, body := f.get("/api/v1/attestations/" + lantern.DigestOf(lost).String() + "/log"); code != http.StatusBadGateway || !strings.Contains(body, "object store") {
		t.Errorf("GET a lost log = %d %s, want 502 naming the object store", code, body)
	}
	if code, _, _ := f.get("/api/v1/attestations/" + lantern.DigestOf([]byte("nothing")).String() + "/log"); code != http.StatusNotFound {
		t.Errorf("GET the log of an unknown attestation = %d, want 404", code)
	}
}
