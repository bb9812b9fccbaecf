package scheduler_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/bombtest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/diffoscope"
)

// TestDiffoscopeReports: builders that disagree get a report of how their
// outputs differ, made by the real diffoscope from the outputs the builders
// uploaded to the real NATS object store, and served by the API.
func TestDiffoscopeReports(t *testing.T) {
	d := findDiffoscope(t)
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

// findDiffoscope returns the real diffoscope in its sandbox; without one
// it skips the test, and fails it under CI, which must run it.
func findDiffoscope(t *testing.T) *diffoscope.Differ {
	t.Helper()
	d, err := diffoscope.Find("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v\nCI must run the diffoscope tests ('make diffoscope bubblewrap')", err)
		}
		t.Skip(err)
	}
	return d
}

// TestDiffoscopeBomb: a builder whose output is a decompression bomb (a
// gigabyte of zeros in a megabyte of gzip) gets no report but a record
// that says which of diffoscope's caps it hit, and the scheduler answers
// every GET of its API while the real diffoscope unpacks it.
func TestDiffoscopeBomb(t *testing.T) {
	d := findDiffoscope(t)
	d.MaxDisk, d.MaxMemory = 32<<20, 512<<20
	var answered atomic.Int64
	w := &watchedDiffer{Differ: d, answered: &answered}
	f := newDiffingFarm(t, natsq.Config{}, w, builderA, builderB)
	claim, job := sourceClaim(t, claimKey, "example.org/bomb", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	eventually(t, "the job to be stored", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	var small bytes.Buffer
	zw := gzip.NewWriter(&small)
	zw.Write([]byte("hello\n"))
	zw.Close()
	outA, outB := string(bombtest.Gzip(16)), small.String()
	for b, out := range map[*keys.Private]string{builderA: outA, builderB: outB} {
		if _, err := f.builder(b).PutObject(t.Context(), "bin", strings.NewReader(out)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := lantern.DigestOf([]byte(outA)), lantern.DigestOf([]byte(outB))
	for _, env := range [][]byte{rebuilt(t, builderA, job, outA), rebuilt(t, builderB, job, outB)} {
		if code := f.do("POST", "/api/v1/attestations", env, nil); code != http.StatusAccepted {
			t.Fatalf("POST attestation = %d, want 202", code)
		}
	}

	// GET the API over and over until the report is no longer pending:
	// every GET is answered (a generous client timeout stands for "never").
	// The report's record is 404 until the verdict asks for it.
	client := &http.Client{Timeout: time.Minute}
	get := func(path string, out any, ok ...int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", f.api.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s while diffoscope runs: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK && !slices.Contains(ok, resp.StatusCode) {
			t.Fatalf("GET %s while diffoscope runs = %d %s", path, resp.StatusCode, body)
		}
		if out != nil && resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, out); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		answered.Add(1)
	}
	var rec scheduler.DiffRecord
	deadline := time.Now().Add(5 * time.Minute)
	for rec.State == "" || rec.State == scheduler.DiffPending {
		if time.Now().After(deadline) {
			t.Fatalf("the report on the bomb is still %q after 5 minutes", rec.State)
		}
		get("/healthz", nil)
		get("/api/v1/jobs/"+job.ID, nil)
		get("/api/v1/artefacts/"+a.String(), nil, http.StatusNotFound) // until its attestation is in
		get("/api/v1/sources", nil)
		get("/api/v1/diffs/"+a.String()+"/"+b.String(), &rec, http.StatusNotFound)
		time.Sleep(10 * time.Millisecond) // a loaded machine has other work too
	}
	if w.calls.Load() != 1 || w.during.Load() == 0 {
		t.Fatalf("diffoscope ran %d times, with %d GETs answered while it ran; want once, with GETs meanwhile", w.calls.Load(), w.during.Load())
	}
	t.Logf("%d GETs answered while diffoscope ran on the bomb", w.during.Load())
	if rec.State != scheduler.DiffFailed || !strings.Contains(rec.Reason, "hit its disk cap of 32 MiB") {
		t.Errorf("report on the bomb = %+v, want failed: disk cap of 32 MiB hit", rec)
	}
	if code, _, body := f.get("/api/v1/diffs/" + a.String() + "/" + b.String() + "/report"); code != http.StatusNotFound || !strings.Contains(body, "disk cap of 32 MiB") {
		t.Errorf("GET the report on the bomb = %d %s, want 404 naming the cap", code, body)
	}
}

// watchedDiffer counts the GETs answered while its Differ runs.
type watchedDiffer struct {
	scheduler.Differ
	answered      *atomic.Int64 // by the test
	during, calls atomic.Int64
}

func (w *watchedDiffer) Diff(ctx context.Context, name string, a, b io.Reader) ([]byte, error) {
	w.calls.Add(1)
	before := w.answered.Load()
	defer func() { w.during.Add(w.answered.Load() - before) }()
	return w.Differ.Diff(ctx, name, a, b)
}
