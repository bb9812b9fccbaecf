package scheduler_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/verify"
	"github.com/lanternfarm/lantern/verify/evidence"
)

// compact is the envelope JSON as GET /api/v1/evidence serves it.
func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var nextLink = regexp.MustCompile(`^<(\?[^>]*)>; rel="next"$`)

// evidencePages GETs path and every page its Link leads to, and returns
// each page's lines.
func (f *farm) evidencePages(t *testing.T, path string) [][]string {
	t.Helper()
	var pages [][]string
	for path != "" {
		if len(pages) > 20 {
			t.Fatalf("GET %s: more than 20 pages", path)
		}
		code, h, body := f.get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		if ct := h.Get("Content-Type"); ct != "application/jsonl" {
			t.Errorf("GET %s: Content-Type %q, want application/jsonl", path, ct)
		}
		if body != "" && !strings.HasSuffix(body, "\n") {
			t.Errorf("GET %s: a body not ending in a newline: %q", path, body)
		}
		lines := []string{}
		for l := range strings.Lines(body) {
			lines = append(lines, strings.TrimSuffix(l, "\n"))
		}
		pages = append(pages, lines)
		path = ""
		if l := h.Get("Link"); l != "" {
			m := nextLink.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("GET %s: Link %q, want <?...>; rel=\"next\"", path, l)
			}
			path = "/api/v1/evidence" + m[1]
		}
	}
	return pages
}

// TestGetEvidence: the raw signed envelopes about an artefact, and about a
// source (its claims, then its attestations), as JSON Lines, paged by
// Link; what a client needs to decide for itself, and that it does.
func TestGetEvidence(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB, builderC)
	const name = "example.org/evidence"
	claim, job := sourceClaim(t, claimKey, name, lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d, want 202", code)
	}
	eventually(t, "the job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	atts := map[*keys.Private][]byte{
		builderA: rebuilt(t, builderA, job, "the output"),
		builderB: rebuilt(t, builderB, job, "the output"),
		builderC: rebuilt(t, builderC, job, "other bytes"),
	}
	// One posted with line breaks: served on one line all the same.
	var indented bytes.Buffer
	if err := json.Indent(&indented, atts[builderC], "", "  "); err != nil {
		t.Fatal(err)
	}
	atts[builderC] = indented.Bytes()
	for _, b := range []*keys.Private{builderA, builderB, builderC} {
		if code := f.do("POST", "/api/v1/attestations", atts[b], nil); code != http.StatusAccepted {
			t.Fatalf("POST attestation = %d, want 202", code)
		}
	}
	artefact := lantern.DigestOf([]byte("the output"))
	eventually(t, "the verdict", func() bool {
		return f.verdict(artefact) != nil && f.verdict(lantern.DigestOf([]byte("other bytes"))) != nil
	})

	t.Run("artefact, a page at a time", func(t *testing.T) {
		pages := f.evidencePages(t, "/api/v1/evidence?count=1&artefact="+artefact.String())
		var got []string
		for i, p := range pages {
			if len(p) != 1 && !(i == len(pages)-1 && len(p) == 0) {
				t.Errorf("page %d has %d lines, want 1", i+1, len(p))
			}
			got = append(got, p...)
		}
		want := []string{compact(t, atts[builderA]), compact(t, atts[builderB])}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("GET evidence?artefact pages = %q, want A's and B's attestations", got)
		}
		// The bare hex digest is the same question.
		if all := f.evidencePages(t, "/api/v1/evidence?artefact="+artefact.Hex()); len(all) != 1 || len(all[0]) != 2 {
			t.Errorf("GET evidence?artefact=<hex> = %q, want one page of 2", all)
		}
	})

	t.Run("source, a page at a time", func(t *testing.T) {
		pages := f.evidencePages(t, "/api/v1/evidence?count=1&source="+url.QueryEscape(name+"@v1.0.0"))
		if len(pages) < 3 || len(pages[0]) != 2 || pages[0][0] != compact(t, claim) {
			t.Fatalf("GET evidence?source pages = %q, want the claim and an attestation first, then a page for each other", pages)
		}
		var got []string
		for i, p := range pages {
			if i > 0 && len(p) > 1 {
				t.Errorf("page %d has %d lines, want 1", i+1, len(p))
			}
			for _, l := range p {
				if l == compact(t, claim) && i > 0 {
					t.Errorf("page %d repeats the claim", i+1)
				}
			}
			got = append(got, p...)
		}
		got = got[1:]
		want := []string{compact(t, atts[builderA]), compact(t, atts[builderB]), compact(t, atts[builderC])}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("GET evidence?source attestations = %q, want A's, B's and C's", got)
		}
	})

	t.Run("nothing known", func(t *testing.T) {
		for _, q := range []string{"artefact=" + lantern.DigestOf([]byte("nothing")).String(), "source=example.org/nothing@v1"} {
			if pages := f.evidencePages(t, "/api/v1/evidence?"+q); len(pages) != 1 || len(pages[0]) != 0 {
				t.Errorf("GET evidence?%s = %q, want one empty page", q, pages)
			}
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{
			"",
			"artefact=" + artefact.String() + "&source=" + name + "@v1.0.0",
			"artefact=sha256:xyz",
			"artefact=sha256:" + strings.ToUpper(artefact.Hex()),
			"source=" + name,
			"source=@v1.0.0",
			"source=" + name + "@",
			"artefact=" + artefact.String() + "&count=0",
			"artefact=" + artefact.String() + "&count=1001",
			"artefact=" + artefact.String() + "&count=x",
			"artefact=" + artefact.String() + "&cursor=not-a-cursor",
		} {
			code, _, body := f.get("/api/v1/evidence?" + q)
			var e struct{ Error, Fix string }
			if err := json.Unmarshal([]byte(body), &e); code != http.StatusBadRequest || err != nil || e.Error == "" || e.Fix == "" {
				t.Errorf("GET evidence?%s = %d %s, want 400 with an error and a fix", q, code, body)
			}
		}
	})

	// A client trusts none of it and decides for itself: the farm's pages
	// read by evidence.Farm, and weighed by verify.Decide, as lantern
	// verify does.
	t.Run("decided by a client", func(t *testing.T) {
		key := func(k *keys.Private) verify.Key {
			vk, err := verify.ParseKey(k.Public().MarshalPEM(), k.ID().Short())
			if err != nil {
				t.Fatal(err)
			}
			return vk
		}
		p := &verify.Policy{Builders: []verify.Key{key(builderA), key(builderB)}, Threshold: 2,
			Authors: []verify.Author{{Name: "example.org/...", Key: key(claimKey)}}}
		farm := &evidence.Farm{URL: f.api.URL}
		pieces, err := farm.Artefact(t.Context(), artefact)
		if err != nil {
			t.Fatalf("Artefact() = %v", err)
		}
		now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
		d := verify.Decide(p, artefact, pieces, now)
		if d.Result != verify.NotVerified || !slices.Equal(d.Sources(), []string{name + "@v1.0.0"}) {
			t.Fatalf("Decide(the artefact's evidence) = %s, sources %q; want not verified (no claim yet), and its source to ask about", d.Result, d.Sources())
		}
		more, err := farm.Source(t.Context(), d.Sources()[0])
		if err != nil {
			t.Fatalf("Source() = %v", err)
		}
		d = verify.Decide(p, artefact, append(pieces, more...), now)
		if d.Result != verify.Verified || len(d.Agreeing) != 2 {
			t.Errorf("Decide(with the source's evidence) = %s, %d agreeing; want verified by 2", d.Result, len(d.Agreeing))
		}
		// C, whose output differs, is trusted too: a contradiction.
		p.Builders = append(p.Builders, key(builderC))
		if d = verify.Decide(p, artefact, append(pieces, more...), now); d.Result != verify.Contradicted {
			t.Errorf("Decide(C trusted too) = %s, want contradicted", d.Result)
		}
	})
}
