package scheduler_test

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/diffoscope"
)

// TestDiffoscopeReports: builders that disagree get a report of how their
// outputs differ, made by the real diffoscope from the outputs the builders
// uploaded to the real NATS object store, and served by the API.
func TestDiffoscopeReports(t *testing.T) {
	d, err := diffoscope.Find("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v\nCI must run the diffoscope tests ('make diffoscope')", err)
		}
		t.Skip(err)
	}
	f := newDiffingFarm(t, natsq.Config{}, d, builderA, builderB, builderC)
	claim, job := sourceClaim(t, claimKey, "example.org/stamped", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	eventually(t, "the job to be stored", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })

	// A and B upload their outputs, each to its own bucket, as workers do
	// before they attest; C does not. The scheduler reads them from there.
	outA, outB, outC := "built at 1\nsame\n", "built at 2\nsame\n", "built at 3\nsame\n"
	for b, out := range map[*keys.Private]string{builderA: outA, builderB: outB} {
		if _, err := f.builder(b).PutObject(t.Context(), "bin", strings.NewReader(out)); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := lantern.DigestOf([]byte(outA)), lantern.DigestOf([]byte(outB)), lantern.DigestOf([]byte(outC))
	for _, env := range [][]byte{rebuilt(t, builderA, job, outA), rebuilt(t, builderB, job, outB)} {
		if code := f.do("POST", "/api/v1/attestations", env, nil); code != http.StatusAccepted {
			t.Fatalf("POST attestation = %d, want 202", code)
		}
	}
	var rec scheduler.DiffRecord
	eventually(t, "the report on A's and B's outputs", func() bool {
		return f.do("GET", "/api/v1/diffs/"+a.String()+"/"+b.String(), nil, &rec) == http.StatusOK && rec.State != scheduler.DiffPending
	})
	if rec.State != scheduler.DiffDone || rec.Label != goLabel(job.Source.Name) || rec.Source != job.Source {
		t.Fatalf("report = %+v, want done, on %s label bin", rec, job.Source)
	}
	report := f.text(t, "/api/v1/diffs/"+b.String()+"/"+a.String()+"/report") // either order
	v := f.verdict(a)
	first, second := "1", "2"
	if v.Groups[0].Output == b { // the first group's output is the report's a
		first, second = "2", "1"
	}
	label := goLabel(job.Source.Name)
	for _, line := range []string{"--- a/" + label, "+++ b/" + label, "-built at " + first, "+built at " + second} {
		if !strings.Contains("\n"+report, "\n"+line+"\n") {
			t.Errorf("report has no line %q:\n%s", line, report)
		}
	}
	stored, err := f.q.GetObject(t.Context(), rec.Report)
	if err != nil {
		t.Fatalf("the report %s is not in the object store: %v", rec.Report, err)
	}
	if b, _ := io.ReadAll(stored); string(b) != report {
		t.Errorf("the API's report differs from the stored one")
	}
	stored.Close()

	// C's output never reached the object store: its reports fail, saying so.
	if code := f.do("POST", "/api/v1/attestations", rebuilt(t, builderC, job, outC), nil); code != http.StatusAccepted {
		t.Fatalf("POST attestation = %d, want 202", code)
	}
	v = f.verdict(a)
	eventually(t, "C's report", func() bool {
		v = f.verdict(a)
		return len(v.Groups) == 3 && f.do("GET", "/api/v1/diffs/"+v.Groups[0].Output.String()+"/"+c.String(), nil, &rec) == http.StatusOK && rec.State != scheduler.DiffPending
	})
	if rec.State != scheduler.DiffFailed || !strings.Contains(rec.Reason, c.String()+" is not in the farm's object store") {
		t.Errorf("report on C's output = %+v, want failed: not in the object store", rec)
	}
	if code := f.do("GET", "/api/v1/diffs/"+rec.A.String()+"/"+c.String()+"/report", nil, nil); code != http.StatusNotFound {
		t.Errorf("GET the failed report = %d, want 404", code)
	}
	// Pairs nobody asked about, and bad digests.
	if code := f.do("GET", "/api/v1/diffs/"+a.String()+"/"+lantern.DigestOf([]byte("other")).String(), nil, nil); code != http.StatusNotFound {
		t.Errorf("GET a report never asked for = %d, want 404", code)
	}
	if code := f.do("GET", "/api/v1/diffs/sha256:nothex/"+a.String(), nil, nil); code != http.StatusBadRequest {
		t.Errorf("GET a report of a bad digest = %d, want 400", code)
	}
	metrics := f.text(t, "/metrics")
	for _, m := range []string{`lantern_diffs_total{result="done"} 1`, `lantern_diffs_total{result="failed"}`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
}

// text GETs path from the farm's API and returns the body of a 200.
func (f *farm) text(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(f.api.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}
