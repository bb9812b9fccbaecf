package dashboard

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// The dashboard as a person sees it: Debian's chromium, headless, driven
// with chromedp, opens the pages served on 127.0.0.1 and reads what they
// show. The screenshots it takes are among the test's outputs: run
// `go test -run Browser -artifacts -outputdir DIR ./dashboard` to keep them
// (otherwise they go with the test's temporary directory).

// chromium returns the browser to run: $LANTERN_CHROMIUM, or chromium on
// the PATH. Without one it skips the test, and fails it under CI, which
// must run it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LANTERN_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on the PATH: CI must run the browser tests; as root, 'apt-get install chromium'")
	}
	t.Skip("no chromium on the PATH (to run this test, as root: 'apt-get install chromium')")
	return ""
}

// browser starts a headless chromium that may reach 127.0.0.1 only, and
// returns a context to drive it with, which ends with the test or after
// two minutes.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		// Every name but 127.0.0.1 resolves to nothing: the browser's own
		// background traffic goes nowhere.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("font-render-hinting", "none"),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// screenshot saves the whole page as a PNG among the test's outputs.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func TestBrowserSourcePage(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t)
	s := newScene(f)
	srv := httptest.NewServer(f.handler()) // on 127.0.0.1
	t.Cleanup(srv.Close)

	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+sourceURL(s.stringer.Source.Name, s.stringer.Source.Version)),
		chromedp.WaitVisible(chromedp.ID("status")),
	)
	if err != nil {
		t.Fatal(err)
	}
	status := run(t, ctx, chromedp.Text(chromedp.ID("status")))
	page := run(t, ctx, chromedp.Text(chromedp.CSS("main")))
	rows := func(sel string) []string {
		return run(t, ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('`+sel+`')).map(r => r.innerText)`))
	}
	agreeing := rows("section.reproduced .group.agrees tr.outcome-row")
	disagreeing := rows("section.mismatch .group.disagrees tr.outcome-row")
	screenshot(t, ctx, "source-page.png")

	// The verdict: one label reproduced by two builders, one where two
	// builders disagree.
	if status != "mismatch" {
		t.Errorf("the source's status reads %q, want mismatch (one of its labels is)", status)
	}
	for _, want := range []string{"stringer-linux-amd64", "reproduced 2/2", "agreeing group", "stringer-linux-arm64", "mismatch 1:1", "disagreeing group"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	// Both agreeing builders, each with its key id and the digest it got.
	if len(agreeing) != 2 {
		t.Fatalf("the agreeing group shows %d builders, want 2: %q", len(agreeing), agreeing)
	}
	for _, b := range []lantern.Digest{alice.ID(), bob.ID()} {
		if !rowWith(agreeing, b.Short(), s.amd.Short()) {
			t.Errorf("no row of the agreeing group shows builder %s with output %s: %q", b.Short(), s.amd.Short(), agreeing)
		}
	}
	// The disagreeing builders, each with its own digest.
	if !rowWith(disagreeing, alice.ID().Short(), s.armAlicesOut.Short()) || !rowWith(disagreeing, carol.ID().Short(), s.armCs.Short()) {
		t.Errorf("the disagreeing groups show %q, want alice with %s and carol with %s", disagreeing, s.armAlicesOut.Short(), s.armCs.Short())
	}
	if strings.Contains(page, "Builds are running") {
		t.Error("the page says builds are running; every builder has answered")
	}

	// A reader follows the links: to the first agreeing builder's page,
	// to the artefact, to an attestation and its log.
	first := "section.reproduced .group.agrees tr.outcome-row"
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(first+" a.builder")),
		chromedp.WaitVisible(chromedp.ID("keyid")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if id := run(t, ctx, chromedp.Text(chromedp.ID("keyid"))); id != alice.ID().String() && id != bob.ID().String() {
		t.Errorf("the builder page shows key %q, want alice's or bob's", id)
	}
	if txt := run(t, ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "100% (1 of 1 compared)") && !strings.Contains(txt, "50% (1 of 2 compared)") {
		t.Errorf("the builder page does not say how often it agrees:\n%s", txt)
	}
	screenshot(t, ctx, "builder-page.png")
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+sourceURL(s.stringer.Source.Name, s.stringer.Source.Version)),
		chromedp.WaitVisible(chromedp.CSS(first)),
		chromedp.Click(chromedp.CSS("section.reproduced .group.agrees h3 a.digest")),
		chromedp.WaitVisible(chromedp.CSS("h1 code.digest-full")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if d := run(t, ctx, chromedp.Text(chromedp.CSS("h1 code.digest-full"))); d != s.amd.String() {
		t.Errorf("the artefact page is of %q, want %s", d, s.amd)
	}
	screenshot(t, ctx, "artefact-page.png")
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+sourceURL(s.stringer.Source.Name, s.stringer.Source.Version)),
		chromedp.WaitVisible(chromedp.CSS(first)),
		chromedp.Click(chromedp.CSS(first+" a[href$='#log']")),
		chromedp.WaitVisible(chromedp.CSS("pre.log")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if log := strings.TrimSpace(run(t, ctx, chromedp.Text(chromedp.CSS("pre.log")))); log != "go: downloading golang.org/x/tools v0.30.0\nok" && log != "bob's log" {
		t.Errorf("the attestation page shows the log %q, want alice's or bob's", log)
	}
	screenshot(t, ctx, "attestation-page.png")

	// The disagreeing group links diffoscope's report on the two outputs.
	d, err := f.st.Diff(t.Context(), s.armAlicesOut, s.armCs)
	if err != nil {
		t.Fatal(err)
	}
	d.State, d.Report = scheduler.DiffDone, f.objects.put("--- a/stringer-linux-arm64\n+++ b/stringer-linux-arm64\n@@ -1 +1 @@\n-stringer arm64 bytes\n+stringer arm64 bytes, but other\n")
	if err := f.st.PutDiff(t.Context(), *d); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+sourceURL(s.stringer.Source.Name, s.stringer.Source.Version)),
		chromedp.WaitVisible(chromedp.CSS("section.mismatch p.diff a")),
		chromedp.Click(chromedp.CSS("section.mismatch p.diff a")),
		chromedp.WaitVisible(chromedp.CSS("pre.diff")),
	)
	if err != nil {
		t.Fatal(err)
	}
	report := run(t, ctx, chromedp.Text(chromedp.CSS("pre.diff")))
	for _, want := range []string{"--- a/stringer-linux-arm64", "-stringer arm64 bytes\n", "+stringer arm64 bytes, but other"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report's page shows %q, want it to hold %q", report, want)
		}
	}
	screenshot(t, ctx, "diff-page.png")
}

// run runs a chromedp action that gives a value, and fails t if it fails.
// TestBrowserConflict: two claims give one name@version two sources; the
// source page says it is a conflict, names both archives and who claimed
// each, and every verdict of it is a conflict.
func TestBrowserConflict(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t)
	job := f.claim("example.org/cmd/twice", "v1.0.0", map[string]string{"twice-linux-amd64": "twice binary"})
	f.rebuilt(job, alice, "twice-linux-amd64", "twice binary", 40*time.Second, "")
	f.rebuilt(job, bob, "twice-linux-amd64", "twice binary", 42*time.Second, "")
	other := mustKey()
	f.putClaim(&lantern.SourceClaim{
		Source: lantern.Source{Name: job.Source.Name, Version: job.Source.Version, Digest: lantern.DigestOf([]byte("another archive"))},
		Recipe: "go", Time: t0.Add(time.Hour),
	}, other)
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+sourceURL(job.Source.Name, job.Source.Version)),
		chromedp.WaitVisible(chromedp.ID("conflict")),
	)
	if err != nil {
		t.Fatal(err)
	}
	status := run(t, ctx, chromedp.Text(chromedp.ID("status")))
	conflict := run(t, ctx, chromedp.Text(chromedp.ID("conflict")))
	verdicts := run(t, ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('section.verdict')).map(s => s.className)`))
	screenshot(t, ctx, "conflict.png")
	if status != "conflict" {
		t.Errorf("status = %q, want conflict", status)
	}
	for _, want := range []string{"2 different source archives", job.Source.Digest.Short(), lantern.DigestOf([]byte("another archive")).Short(), claimKey.ID().Short(), other.ID().Short()} {
		if !strings.Contains(conflict, want) {
			t.Errorf("the conflict section lacks %q:\n%s", want, conflict)
		}
	}
	if len(verdicts) != 1 || !strings.Contains(verdicts[0], "conflict") {
		t.Errorf("verdict sections = %q, want one, a conflict", verdicts)
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rowWith reports whether one of rows has all of wants.
func rowWith(rows []string, wants ...string) bool {
	for _, r := range rows {
		ok := true
		for _, w := range wants {
			ok = ok && strings.Contains(r, w)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestBrowserLiveUpdate: a page with a build running updates by itself
// when the last builder answers.
func TestBrowserLiveUpdate(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t)
	s := newScene(f)
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)

	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+sourceURL(s.hello.Source.Name, s.hello.Source.Version)),
		chromedp.WaitVisible(chromedp.CSS("main[data-live] p.live")),
	)
	if err != nil {
		t.Fatal(err)
	}
	before := run(t, ctx, chromedp.Text(chromedp.ID("status")))
	if before != "pending" {
		t.Fatalf("hello's status reads %q before carol answers, want pending", before)
	}
	screenshot(t, ctx, "live-before.png")

	// Carol gets the published bytes: with alice's, that is 2 of 2.
	f.rebuilt(s.hello, carol, "hello", "hello published", 20*time.Second, "carol's log\n")

	err = chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("section.verdict.reproduced")),
		chromedp.WaitNotPresent(chromedp.CSS("main[data-live]")),
	)
	if err != nil {
		t.Fatal(err)
	}
	after := run(t, ctx, chromedp.Text(chromedp.ID("status")))
	summary := run(t, ctx, chromedp.Text(chromedp.CSS("section.verdict.reproduced h2")))
	if after != "reproduced" || !strings.Contains(summary, "reproduced 2/2") {
		t.Errorf("after carol's rebuild the page reads %q, %q; want reproduced, reproduced 2/2", after, summary)
	}
	screenshot(t, ctx, "live-after.png")
}

// TestBrowserHome: the home page and the escaping of a hostile name, as a
// browser runs them: the name shows as text and no script of it runs.
func TestBrowserHome(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t)
	newScene(f)
	hostile := f.claim(`<script>alert(1)</script>`, `<img/src=x/onerror=window.pwned=1>`, nil)
	f.rebuilt(hostile, alice, "<b>bin</b>", "hostile output", time.Second, "<script>window.pwned=2</script>")
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)

	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("table.sources")),
	)
	if err != nil {
		t.Fatal(err)
	}
	home := run(t, ctx, chromedp.Text(chromedp.CSS("main")))
	screenshot(t, ctx, "home.png")
	for _, want := range []string{"Recent sources", "stringer@v0.30.0", "reproduced 2/2", "<script>alert(1)</script>@<img/src=x/onerror=window.pwned=1>"} {
		if !strings.Contains(home, want) {
			t.Errorf("the home page does not show %q", want)
		}
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+sourceURL(hostile.Source.Name, hostile.Source.Version)),
		chromedp.WaitVisible(chromedp.CSS("h1.source-title")),
	)
	if err != nil {
		t.Fatal(err)
	}
	sourceTitle := run(t, ctx, chromedp.Text(chromedp.CSS("h1.source-title")))
	pwned := run(t, ctx, chromedp.Evaluate[bool](`window.pwned === 1 || window.pwned === 2`))
	dialogs := run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('main script, main img[onerror]').length`))
	screenshot(t, ctx, "hostile-source.png")
	if !strings.Contains(sourceTitle, `<script>alert(1)</script>@<img/src=x/onerror=window.pwned=1>`) {
		t.Errorf("the hostile source's title reads %q, want its name as text", sourceTitle)
	}
	if pwned || dialogs != 0 {
		t.Errorf("the hostile name ran (pwned %v) or made elements (%d)", pwned, dialogs)
	}
}
