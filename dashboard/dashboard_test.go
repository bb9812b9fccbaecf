package dashboard

import (
	"encoding/xml"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"html"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// scene is the farm most tests look at:
//
//   - stringer@v0.30.0, label stringer-linux-amd64: alice and bob got the
//     same bytes (reproduced 2/2); label stringer-linux-arm64: alice and
//     carol disagree (mismatch 1:1);
//   - hello@v1.2.0, which published its binary: alice got it, bob failed
//     (pending 1/2);
//   - tool@v2.0.0: claimed, no builder has answered (the builders are at
//     work).
type scene struct {
	stringer, hello, tool    lantern.Job
	amdAlice, amdBob         scheduler.AttestationRecord
	armAlice, armCarol       scheduler.AttestationRecord
	helloAlice, helloBob     scheduler.AttestationRecord
	amd, armAlicesOut, armCs lantern.Digest
}

func newScene(f *fixture) *scene {
	s := &scene{}
	s.stringer = f.claim("golang.org/x/tools/cmd/stringer", "v0.30.0", nil)
	s.amdAlice = f.rebuilt(s.stringer, alice, "stringer-linux-amd64", "stringer amd64 bytes", 93*time.Second, "go: downloading golang.org/x/tools v0.30.0\nok\n")
	s.amdBob = f.rebuilt(s.stringer, bob, "stringer-linux-amd64", "stringer amd64 bytes", 71*time.Second, "bob's log\n")
	s.armAlice = f.rebuilt(s.stringer, alice, "stringer-linux-arm64", "stringer arm64 bytes", 95*time.Second, "alice arm log\n")
	s.armCarol = f.rebuilt(s.stringer, carol, "stringer-linux-arm64", "stringer arm64 bytes, but other", 4*time.Minute, "carol arm log\n")
	s.hello = f.claim("example.org/hello", "v1.2.0", map[string]string{"hello": "hello published"})
	s.helloAlice = f.rebuilt(s.hello, alice, "hello", "hello published", 12*time.Second, "")
	s.helloBob = f.failed(s.hello, bob, "hello", "build", "exit status 2: <b>cc</b> not found", "cc: not found\n")
	s.tool = f.claim("example.org/tool", "v2.0.0", nil)
	s.amd = lantern.DigestOf([]byte("stringer amd64 bytes"))
	s.armAlicesOut = lantern.DigestOf([]byte("stringer arm64 bytes"))
	s.armCs = lantern.DigestOf([]byte("stringer arm64 bytes, but other"))
	return s
}

// text is the page's text as a reader sees it, roughly: the inline tags
// dropped, the others made spaces, the entities decoded, the spaces
// collapsed.
func text(page string) string {
	page = regexp.MustCompile(`(?s)<head>.*?</head>`).ReplaceAllString(page, " ")
	page = regexp.MustCompile(`</?(span|a|code|q|time|b|strong|em)\b[^>]*>`).ReplaceAllString(page, "")
	page = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, " ")
	return strings.Join(strings.Fields(html.UnescapeString(page)), " ")
}

func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not have %q", what, w)
		}
	}
}

func TestSourcePage(t *testing.T) {
	f := newFixture(t)
	s := newScene(f)
	h := f.handler()

	resp, body := get(t, h, "/sources/golang.org/x/tools/cmd/stringer@v0.30.0")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET source page = %d\n%s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy = %q, want only the dashboard's own scripts", csp)
	}
	txt := text(body)
	mustContain(t, "the source page", txt,
		"golang.org/x/tools/cmd/stringer@v0.30.0",
		"stringer-linux-amd64 reproduced 2/2",
		"agreeing group "+s.amd.Short()+" 2 builders",
		alice.ID().Short(), bob.ID().Short(), carol.ID().Short(),
		"1 min 33 s", "1 min 11 s", "4 min 00 s",
		"stringer-linux-arm64 mismatch 1:1",
		s.armAlicesOut.Short(), s.armCs.Short(),
	)
	mustContain(t, "the source page's HTML", body,
		`title="`+s.amd.String()+`"`,
		`href="/api/v1/attestations/`+s.amdAlice.Envelope.String()+`" download`,
		`href="/attestations/`+s.amdBob.Envelope.String()+`#log"`,
		`href="/builders/`+carol.ID().String()+`"`,
		`href="/artefacts/`+s.amd.String()+`"`,
		`<img src="/badge/golang.org/x/tools/cmd/stringer@v0.30.0.svg"`,
		"[![Lantern](http://example.com/badge/golang.org/x/tools/cmd/stringer@v0.30.0.svg)](http://example.com/sources/golang.org/x/tools/cmd/stringer@v0.30.0)",
	)
	if strings.Contains(body, "data-live") {
		t.Error("a source with no build running has data-live: it would reload for nothing")
	}
	if strings.Contains(txt, "Published artefact") {
		t.Error("the page shows a published artefact; the claim names none")
	}

	// The published artefact, and a failure with its reason.
	_, body = get(t, h, "/sources/example.org/hello@v1.2.0")
	txt = text(body)
	mustContain(t, "hello's page", txt,
		"hello pending 1/2", "Published artefact "+lantern.DigestOf([]byte("hello published")).Short(),
		"the published artefact", "failed to build", "exit status 2: <b>cc</b> not found",
	)
	mustContain(t, "hello's HTML", body, `data-live="200"`, `<noscript><meta http-equiv="refresh" content="1"></noscript>`,
		"exit status 2: &lt;b&gt;cc&lt;/b&gt; not found")

	// A source no builder answered yet: the builders are at work.
	_, body = get(t, h, "/sources/example.org/tool@v2.0.0")
	mustContain(t, "tool's page", text(body), "Builders not done", "queued", alice.ID().Short(), bob.ID().Short(), carol.ID().Short(), "No builder has answered yet")
	mustContain(t, "tool's HTML", body, "data-live")

	// The same page by its query form.
	resp, body2 := get(t, h, "/source?name=example.org/tool&version=v2.0.0")
	if resp.StatusCode != http.StatusOK || text(body2) != text(body) {
		t.Errorf("GET /source?name=...&version=... = %d, want the same page", resp.StatusCode)
	}

	for path, code := range map[string]int{
		"/sources/example.org/nothing@v1": http.StatusNotFound,
		"/sources/no-version":             http.StatusNotFound,
		"/source?name=x":                  http.StatusBadRequest,
	} {
		if resp, body := get(t, h, path); resp.StatusCode != code {
			t.Errorf("GET %s = %d, want %d\n%s", path, resp.StatusCode, code, body)
		}
	}
}

func TestHomeAndSearch(t *testing.T) {
	f := newFixture(t)
	s := newScene(f)
	h := f.handler()

	resp, body := get(t, h, "/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	txt := text(body)
	mustContain(t, "the home page", txt, "Recent sources",
		"1 reproduced", "1 mismatch", "2 pending", "0 failed",
		"stringer-linux-amd64 reproduced 2/2", "stringer-linux-arm64 mismatch 1:1", "hello pending 1/2")
	// Newest first.
	tool, hello, stringer := strings.Index(txt, "example.org/tool@"), strings.Index(txt, "example.org/hello@"), strings.Index(txt, "stringer@v0.30.0")
	if !(tool >= 0 && tool < hello && hello < stringer) {
		t.Errorf("home lists tool at %d, hello at %d, stringer at %d; want newest first", tool, hello, stringer)
	}
	mustContain(t, "the home page's HTML", body, `href="/sources/golang.org/x/tools/cmd/stringer@v0.30.0"`, "data-live")

	for q, want := range map[string][]string{
		"stringer":                    {"stringer@v0.30.0"},
		"v1.2":                        {"example.org/hello@v1.2.0"},
		"EXAMPLE.ORG":                 {"example.org/hello@v1.2.0", "example.org/tool@v2.0.0"},
		s.amd.String():                {"stringer@v0.30.0", "is an artefact: see who built it"},
		s.hello.Source.Digest.Short(): {"example.org/hello@v1.2.0"},
		"nothing-like-it":             {"No source matches"},
	} {
		_, body := get(t, h, "/?q="+q)
		mustContain(t, "search "+q, text(body), want...)
	}
	_, body = get(t, h, "/?q=hello")
	if strings.Contains(text(body), "stringer") {
		t.Error("search hello lists stringer")
	}

	// Paging, and a bad cursor.
	for range 60 {
		f.claim("example.org/many", "v0."+itoa(f.n), nil)
	}
	_, body = get(t, h, "/")
	next := regexp.MustCompile(`href="(/\?cursor=[^"]+)">Older sources`).FindStringSubmatch(body)
	if next == nil {
		t.Fatal("the home page of 63 sources has no link to older ones")
	}
	_, body = get(t, h, html.UnescapeString(next[1]))
	mustContain(t, "the second page", text(body), "stringer@v0.30.0")
	if resp, _ := get(t, h, "/?cursor=bm90IGEgY3Vyc29y"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /?cursor=garbage = %d, want 400", resp.StatusCode)
	}
}

func TestArtefactPage(t *testing.T) {
	f := newFixture(t)
	s := newScene(f)
	h := f.handler()
	resp, body := get(t, h, "/artefacts/"+s.amd.String())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET artefact = %d", resp.StatusCode)
	}
	txt := text(body)
	mustContain(t, "the artefact page", txt, s.amd.String(),
		"stringer@v0.30.0 stringer-linux-amd64 reproduced 2/2 agreeing group (2 builders)",
		alice.ID().Short(), bob.ID().Short(), s.stringer.Source.Digest.Short(), attestURI(), "agrees")
	if strings.Contains(txt, carol.ID().Short()) {
		t.Error("the artefact page names carol, who did not build it")
	}
	_, body = get(t, h, "/artefacts/"+s.armCs.Hex())
	mustContain(t, "carol's arm64 artefact", text(body), "disagreeing group (1 builder)", carol.ID().Short(), "disagrees")

	// Published, and nobody got it: the verdict says so.
	hello := lantern.DigestOf([]byte("hello published"))
	_, body = get(t, h, "/artefacts/"+hello.String())
	mustContain(t, "hello's artefact", text(body), "hello pending 1/2", alice.ID().Short())

	for path, code := range map[string]int{
		"/artefacts/" + lantern.DigestOf([]byte("nothing")).String(): http.StatusNotFound,
		"/artefacts/sha256:xyz": http.StatusBadRequest,
	} {
		if resp, _ := get(t, h, path); resp.StatusCode != code {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, code)
		}
	}
}

func attestURI() string { return "https://lanternfarm.github.io/lantern/recipes/go/v1" }

func TestBuilderPages(t *testing.T) {
	f := newFixture(t)
	s := newScene(f)
	h := f.handler()

	// alice: amd64 agrees, arm64 disagrees (a tie), hello alone.
	_, body := get(t, h, "/builders/"+alice.ID().String())
	txt := text(body)
	mustContain(t, "alice's page", txt, alice.ID().String(), "50% (1 of 2 compared)", "3 rebuilt, 0 failed, 1 with no other",
		"BEGIN PUBLIC KEY", "stringer-linux-amd64", "agrees", "disagrees", "alone")
	// bob: amd64 agrees, hello failed.
	_, body = get(t, h, "/builders/"+bob.ID().Hex())
	mustContain(t, "bob's page", text(body), "100% (1 of 1 compared)", "1 rebuilt, 1 failed", "build failed")
	mustContain(t, "bob's HTML", body, `title="exit status 2: &lt;b&gt;cc&lt;/b&gt; not found"`)

	_, body = get(t, h, "/builders")
	txt = text(body)
	mustContain(t, "the builders", txt, alice.ID().String(), bob.ID().String(), carol.ID().String(), "0% (0 of 1 compared)")

	if resp, _ := get(t, h, "/builders/"+claimKey.ID().String()); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET the page of a key that is no builder = %d, want 404", resp.StatusCode)
	}

	// alice is removed from the farm: her past attestations stay, shown
	// as from a revoked builder, on her page, the builders' and the
	// sources'.
	revoked := t0.Add(48 * time.Hour)
	if err := f.st.PutBuilder(t.Context(), scheduler.BuilderRecord{ID: alice.ID(), PublicKey: alice.Public().MarshalPEM(), Name: "alice", Added: t0, Revoked: revoked}); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, h, "/builders/"+alice.ID().String())
	mustContain(t, "revoked alice's page", text(body), "Revoked", "stringer-linux-amd64")
	_, body = get(t, h, "/builders")
	mustContain(t, "the builders with alice revoked", text(body), "alice", "2026-11-27")
	_, body = get(t, h, sourceURL(s.stringer.Source.Name, s.stringer.Source.Version))
	mustContain(t, "a source alice rebuilt", text(body), "alice (revoked)")
}

func TestAttestationPage(t *testing.T) {
	f := newFixture(t)
	s := newScene(f)
	h := f.handler()
	_, body := get(t, h, "/attestations/"+s.amdAlice.Envelope.String())
	txt := text(body)
	mustContain(t, "the attestation page", txt, s.amdAlice.Envelope.String(), "rebuild", alice.ID().Short(),
		"stringer-linux-amd64", s.amd.Short(), "1 min 33 s", "go: downloading golang.org/x/tools v0.30.0",
		`"_type": "https://in-toto.io/Statement/v1"`, `"predicateType": "https://slsa.dev/provenance/v1"`)
	mustContain(t, "its HTML", body, `href="/api/v1/attestations/`+s.amdAlice.Envelope.String()+`/log"`)

	_, body = get(t, h, "/attestations/"+s.helloBob.Envelope.String())
	mustContain(t, "the failure's page", text(body), "failed rebuild", "build", "exit status 2: <b>cc</b> not found", "cc: not found")
	_, body = get(t, h, "/attestations/"+s.helloAlice.Envelope.String())
	mustContain(t, "a rebuild without a log", text(body), "The builder kept no log.")

	// A log the object store lost.
	delete(f.objects.m, s.amdBob.Log)
	_, body = get(t, h, "/attestations/"+s.amdBob.Envelope.String())
	mustContain(t, "a lost log", text(body), "could not be read from the farm's object store")
}

// TestHostileNames: names, versions, labels, reasons and logs come from
// whoever signed them; every page shows them as text.
func TestHostileNames(t *testing.T) {
	f := newFixture(t)
	const (
		name    = `<script>alert(1)</script>`
		version = `"><svg/onload=alert(2)>`
		label   = `<img/src=x/onerror=alert(3)>`
		reason  = `<iframe/src=javascript:alert(4)>`
		logText = "<script>alert(5)</script>\n"
	)
	f.fetch = "javascript:alert(6)" // a URL, to url.Parse
	job := f.claim(name, version, map[string]string{label: "published <b>"})
	f.fetch = ""
	out := f.rebuilt(job, alice, label, "output", time.Minute, logText)
	failed := f.failed(job, bob, label, "build", reason, logText)
	h := f.handler()

	withLabel := func(u string) string {
		if strings.Contains(u, "?") {
			return u + "&label=%3Cimg%2Fsrc%3Dx%3E"
		}
		return u + "?label=%3Cimg%2Fsrc%3Dx%3E"
	}
	for _, path := range []string{
		"/",
		"/?q=" + "%3Cscript%3E",
		sourceURL(name, version),
		badgeURL(name, version),
		withLabel(badgeURL(name, version)),
		"/artefacts/" + out.Output.String(),
		"/builders/" + alice.ID().String(),
		"/builders/" + bob.ID().String(),
		"/attestations/" + out.Envelope.String(),
		"/attestations/" + failed.Envelope.String(),
	} {
		resp, body := get(t, h, path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d\n%s", path, resp.StatusCode, body)
			continue
		}
		for _, raw := range []string{name, version, label, reason, "<script>alert(5)", "<img/src=x>"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s has %q as it came, not escaped", path, raw)
			}
		}
		checkTags(t, path, body)
		if !strings.Contains(path, "/builders/") && !strings.Contains(path, "/badge") && !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("GET %s does not show the name, escaped", path)
		}
	}
	_, body := get(t, h, sourceURL(name, version))
	mustContain(t, "the hostile source's page", body,
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"&#34;&gt;&lt;svg/onload=alert(2)&gt;",
		"&lt;img/src=x/onerror=alert(3)&gt;",
		"&lt;iframe/src=javascript:alert(4)&gt;",
	)
	mustContain(t, "its text", text(body), name+"@"+version, label, reason)
	if strings.Contains(body, `href="javascript:`) || !strings.Contains(body, `href="#ZgotmplZ"`) {
		t.Error("the claim's javascript: fetch URL is a live link")
	}
	_, body = get(t, h, "/attestations/"+out.Envelope.String())
	mustContain(t, "the log", body, "&lt;script&gt;alert(5)&lt;/script&gt;")
	// The name's URL is its path, escaped segment by segment.
	if got, want := sourceURL(name, version), "/sources/%3Cscript%3Ealert%281%29%3C/script%3E@%22%3E%3Csvg/onload=alert%282%29%3E"; got != want {
		t.Errorf("sourceURL = %q, want %q", got, want)
	}
}

// checkTags fails t if page has a tag the dashboard's templates do not
// write, or an event handler attribute, or a script other than its own.
func checkTags(t *testing.T, what, page string) {
	t.Helper()
	ours := map[string]bool{}
	for _, tag := range strings.Fields("html head meta title link script noscript body header a span nav form input button main p h1 h2 h3 q table thead tbody tr th td img code time section dl dt dd div details summary pre footer" +
		" svg lineargradient stop clippath rect g text") {
		ours[tag] = true
	}
	quoted := regexp.MustCompile(`"[^"]*"`)
	handler := regexp.MustCompile(`(?i)[\s/](on[a-z]+)\s*=`)
	for _, m := range regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>`).FindAllStringSubmatch(page, -1) {
		tag, attrs := strings.ToLower(m[1]), quoted.ReplaceAllString(m[2], `""`)
		if !ours[tag] {
			t.Errorf("%s has a tag the templates do not write: %q", what, m[0])
		}
		if handler.MatchString(attrs) {
			t.Errorf("%s has an event handler: %q", what, m[0])
		}
		if tag == "script" && m[0] != `<script src="/static/live.js" defer>` {
			t.Errorf("%s has a script that is not the dashboard's: %q", what, m[0])
		}
	}
}

func TestSourceURL(t *testing.T) {
	for _, tt := range []struct{ name, version, want string }{
		{"golang.org/x/tools/cmd/stringer", "v0.30.0", "/sources/golang.org/x/tools/cmd/stringer@v0.30.0"},
		{"hello", "2.12.1", "/sources/hello@2.12.1"},
		{"a?b#c%d", "v1", "/sources/a%3Fb%23c%25d@v1"},
		{"../../api/v1/x", "v1", "/source?name=..%2F..%2Fapi%2Fv1%2Fx&version=v1"},
		{"a//b", "v1", "/source?name=a%2F%2Fb&version=v1"},
		{"a/./b", "v1", "/source?name=a%2F.%2Fb&version=v1"},
		{"/abs", "v1", "/source?name=%2Fabs&version=v1"},
		{"a", "v1/..", "/source?name=a&version=v1%2F.."},
	} {
		if got := sourceURL(tt.name, tt.version); got != tt.want {
			t.Errorf("sourceURL(%q, %q) = %q, want %q", tt.name, tt.version, got, tt.want)
		}
	}
	// Each URL leads back to its source.
	f := newFixture(t)
	h := f.handler()
	for _, name := range []string{"a?b#c%d", "../../api/v1/x", "a//b", "ünï/cödé", "x@y"} {
		f.claim(name, "v1", nil)
		resp, body := get(t, h, sourceURL(name, "v1"))
		if resp.StatusCode != http.StatusOK || !strings.Contains(text(body), name+"@v1") {
			t.Errorf("GET %s = %d, want the page of %q", sourceURL(name, "v1"), resp.StatusCode, name)
		}
		resp, body = get(t, h, badgeURL(name, "v1"))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "pending 0/2") {
			t.Errorf("GET %s = %d %s, want the pending badge of %q", badgeURL(name, "v1"), resp.StatusCode, body, name)
		}
	}
}

func TestBadge(t *testing.T) {
	f := newFixture(t)
	newScene(f)
	h := f.handler()
	for _, tt := range []struct{ golden, path, want string }{
		{"mismatch", "/badge/golang.org/x/tools/cmd/stringer@v0.30.0.svg", "lantern: mismatch 1:1"},
		{"reproduced", "/badge/golang.org/x/tools/cmd/stringer@v0.30.0.svg?label=stringer-linux-amd64", "stringer-linux-amd64: reproduced 2/2"},
		{"pending", "/badge/example.org/hello@v1.2.0.svg", "lantern: pending 1/2"},
		{"queued", "/badge/example.org/tool@v2.0.0.svg", "lantern: pending 0/2"},
		{"unknown", "/badge/example.org/nothing@v1.svg", "lantern: unknown"},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			resp, body := get(t, h, tt.path)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" {
				t.Fatalf("GET %s = %d %s", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			var svg struct {
				XMLName xml.Name
				Title   string `xml:"title"`
			}
			if err := xml.Unmarshal([]byte(body), &svg); err != nil || svg.XMLName.Local != "svg" {
				t.Fatalf("the badge is not an SVG document: %v\n%s", err, body)
			}
			if svg.Title != tt.want {
				t.Errorf("badge title = %q, want %q", svg.Title, tt.want)
			}
			golden := filepath.Join("testdata", "badge-"+tt.golden+".svg")
			if *update {
				if err := os.WriteFile(golden, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if body != string(want) {
				t.Errorf("badge differs from %s (go test -update rewrites it):\n%s", golden, body)
			}
		})
	}
	if resp, _ := get(t, h, "/badge/example.org/hello@v1.2.0.png"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET a badge without .svg = %d, want 404", resp.StatusCode)
	}
}

func TestStaticAndRoutes(t *testing.T) {
	f := newFixture(t)
	h := f.handler()
	for path, ct := range map[string]string{"/static/style.css": "text/css; charset=utf-8", "/static/live.js": "text/javascript; charset=utf-8"} {
		resp, body := get(t, h, path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ct || len(body) < 100 {
			t.Errorf("GET %s = %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/static/nothing.css", "/nothing", "/api/v1/sources"} {
		if resp, _ := get(t, h, path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := get(t, h, "/"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET / of an empty farm = %d", resp.StatusCode)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New(no store) = nil error")
	}
}

func TestMount(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("api " + r.URL.Path)) })
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("dash " + r.URL.Path)) })
	m := Mount(api, dash)
	for path, want := range map[string]string{
		"/api/v1/sources": "api /api/v1/sources", "/healthz": "api /healthz", "/metrics": "api /metrics",
		"/": "dash /", "/sources/x@v1": "dash /sources/x@v1", "/apis": "dash /apis",
	} {
		if _, body := get(t, m, path); body != want {
			t.Errorf("GET %s = %q, want %q", path, body, want)
		}
	}
}

// TestNoTrustedTypes: nothing in the dashboard makes a value html/template
// would not escape.
func TestNoTrustedTypes(t *testing.T) {
	fset := token.NewFileSet()
	goFiles, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	trusted := map[string]bool{"HTML": true, "HTMLAttr": true, "JS": true, "JSStr": true, "CSS": true, "URL": true, "Srcset": true}
	for _, file := range goFiles {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "template" && trusted[sel.Sel.Name] {
					t.Errorf("%s: template.%s: the dashboard never marks text as safe", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
	err = fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, path)
		if err != nil {
			return err
		}
		for _, bad := range []string{"safeHTML", "| html", "template.HTML"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %q", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestImports: the dashboard reads the scheduler's store; it never pulls
// in the worker, the recipes or BuildKit.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/lanternfarm/lantern/worker") || strings.HasPrefix(dep, "github.com/lanternfarm/lantern/recipes") || strings.HasPrefix(dep, "github.com/moby/buildkit") {
			t.Errorf("the dashboard depends on %s", dep)
		}
	}
}
