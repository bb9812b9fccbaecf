package boltstore

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestArtefactAPIBody pins, byte for byte, the bodies of the artefact
// routes of the scheduler's API over this store (testdata/artefact-api.golden):
// verdicts of every kind (reproduced, a mismatch, a failure, pending for good
// on a farm with too few builders, a conflict of claims) and pages of
// attestations, with text a browser must not take for markup, and text that
// is not UTF-8. Clients and signatures over saved responses depend on these
// bytes; a faster encoder must write the same ones.
func TestArtefactAPIBody(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	out, other := digest("the artefact"), digest("other bytes")
	b1, b2, b3 := digest("builder 1"), digest("builder 2"), digest("builder 3")

	odd := source("example.com/<script>&co\u2028", "v1.0.0-é\xff")
	src, conflicted, pending := source("example.com/tool", "v1.2.3"), source("example.com/lib", "v0.1.0"), source("example.com/new", "v2.0.0")
	c1, j1 := claimOf(conflicted, 1, map[string]lantern.Digest{"linux-amd64": out})
	c2, j2 := claimOf(lantern.Source{Name: conflicted.Name, Version: conflicted.Version, Digest: digest("another archive")}, 2, nil)
	if _, err := s.PutClaims(ctx, []scheduler.ClaimRecord{c1, c2}, []lantern.Job{j1, j2}); err != nil {
		t.Fatal(err)
	}

	n := 0
	put := func(src lantern.Source, label string, builder, output lantern.Digest, published lantern.Digest, edit func(*scheduler.AttestationRecord)) {
		t.Helper()
		a := rebuild(src, label, builder, output, n)
		n++
		if edit != nil {
			edit(&a)
		}
		record(t, s, a, published)
	}
	put(src, "linux-amd64", b1, out, out, nil)
	put(src, "linux-amd64", b2, out, out, func(a *scheduler.AttestationRecord) { a.Started = a.Finished.Add(-1234567 * 1000) })
	put(src, "linux-amd64", b3, other, out, nil)
	put(odd, "darwin-<arm64>", b1, out, lantern.Digest{}, func(a *scheduler.AttestationRecord) {
		a.Recipe.Digest, a.Claim, a.Build = lantern.Digest{}, digest("a claim"), digest("a build")
	})
	put(odd, "darwin-<arm64>", b2, lantern.Digest{}, lantern.Digest{}, func(a *scheduler.AttestationRecord) {
		a.Reason = "exit status 2: \"<b>\" & \\ \t\n\x01 \u2029 \xfe ✓"
	})
	put(odd, "darwin-<arm64>", b3, out, lantern.Digest{}, func(a *scheduler.AttestationRecord) { a.Started = time.Time{} })
	put(conflicted, "linux-amd64", b1, out, out, nil)
	put(conflicted, "linux-amd64", b2, out, out, nil)
	put(pending, "linux-amd64", b3, out, lantern.Digest{}, func(a *scheduler.AttestationRecord) {
		a.Finished = a.Finished.Add(123456789).In(time.FixedZone("", 5*3600+30*60))
	})

	sched, err := scheduler.New(scheduler.Config{Threshold: 2}, nil, s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sched.Handler())
	defer api.Close()
	var got bytes.Buffer
	get := func(path string) string {
		t.Helper()
		resp, err := api.Client().Get(api.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s = %d, %s: %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		got.WriteString("GET " + path + "\n")
		got.Write(body)
		var page struct{ Next string }
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return page.Next
	}
	artefact := "/api/v1/artefacts/" + out.String()
	next := get(artefact + "?count=4")
	get(artefact + "?count=4&cursor=" + url.QueryEscape(next))
	get(artefact)
	get(artefact + "/attestations?count=2&builder=" + b2.String())
	get("/api/v1/artefacts/" + other.String() + "/attestations")

	golden := filepath.Join("testdata", "artefact-api.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("bodies of the artefact routes differ from %s:\ngot:\n%s\nwant:\n%s", golden, got.Bytes(), want)
	}
}
