package dashboard

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// TestDiffPages: a disagreeing group links diffoscope's report on its
// output against the first group's, and the report's page shows it —
// pending, done or failed — as text, whatever the builders' outputs held.
func TestDiffPages(t *testing.T) {
	f := newFixture(t)
	s := newScene(f)
	h := f.handler()
	source := "/sources/golang.org/x/tools/cmd/stringer@v0.30.0"

	d, err := f.st.Diff(t.Context(), s.armAlicesOut, s.armCs)
	if err != nil {
		t.Fatalf("the arm64 mismatch asked for no report: %v", err)
	}
	page := diffURL(d.A, d.B)
	_, body := get(t, h, source)
	mustContain(t, "the source page", text(body), "How it differs from "+d.A.Short()+": diffoscope's report, not made yet")
	mustContain(t, "the source page's HTML", body, `href="`+page+`"`)
	if strings.Contains(body, "data-live") {
		t.Error("the source page reloads while a report is pending; only the report's page should")
	}
	_, body = get(t, h, page)
	mustContain(t, "the pending report's page", text(body), "How two outputs differ", "golang.org/x/tools/cmd/stringer@v0.30.0",
		"stringer-linux-arm64", "pending", "diffoscope has not compared them yet")
	mustContain(t, "the pending report's HTML", body, "data-live", `href="/artefacts/`+d.A.String()+`"`, `href="/artefacts/`+d.B.String()+`"`)

	// Done: the report, escaped; the outputs are the builders' and may
	// hold anything.
	report := "--- a/stringer-linux-arm64\n+++ b/stringer-linux-arm64\n-<script>alert(1)</script>\n+</pre><img src=x onerror=alert(2)>\n"
	done := *d
	done.State, done.Report = scheduler.DiffDone, f.objects.put(report)
	if err := f.st.PutDiff(t.Context(), done); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, h, source)
	mustContain(t, "the source page", text(body), "How it differs from "+d.A.Short()+": diffoscope's report")
	resp, body := get(t, h, diffURL(d.B, d.A)) // either order
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the report's page = %d", resp.StatusCode)
	}
	mustContain(t, "the report's HTML", body, "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;/pre&gt;&lt;img src=x onerror=alert(2)&gt;",
		`href="/api/v1/diffs/`+d.A.String()+"/"+d.B.String()+`/report"`)
	for _, bad := range []string{"<script>alert", "<img src=x"} {
		if strings.Contains(body, bad) {
			t.Errorf("the report's page holds %q unescaped", bad)
		}
	}
	if strings.Contains(body, "data-live") {
		t.Error("a done report's page reloads")
	}

	// Failed: the reason, escaped.
	failed := *d
	failed.State, failed.Reason = scheduler.DiffFailed, "output <b>x</b> is not in the farm's object store"
	if err := f.st.PutDiff(t.Context(), failed); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, h, source)
	mustContain(t, "the source page", text(body), "How it differs from "+d.A.Short()+": no report (output <b>x</b> is not in the farm's object store)")
	_, body = get(t, h, page)
	mustContain(t, "the failed report's page", text(body), "failed", "No report: output <b>x</b> is not in the farm's object store")
	mustContain(t, "the failed report's HTML", body, "output &lt;b&gt;x&lt;/b&gt;")

	// A report the objects lack, pairs never asked about, bad digests.
	lost := *d
	lost.State, lost.Report = scheduler.DiffDone, lantern.DigestOf([]byte("never stored"))
	if err := f.st.PutDiff(t.Context(), lost); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, h, page)
	mustContain(t, "the lost report's page", text(body), "The report could not be read from the farm's object store.")
	for path, code := range map[string]int{
		diffURL(s.amd, s.armCs):               http.StatusNotFound,
		"/diffs/sha256:xyz/" + s.amd.String(): http.StatusBadRequest,
	} {
		if resp, body := get(t, h, path); resp.StatusCode != code {
			t.Errorf("GET %s = %d, want %d\n%s", path, resp.StatusCode, code, body)
		}
	}
}
