package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

func sourceNames(recs []scheduler.SourceRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Name+"@"+r.Version)
	}
	return out
}

// allPages lists a paged source query count at a time and returns every
// source and the size of every page.
func allPages(t *testing.T, count int, list func(scheduler.Page) ([]scheduler.SourceRecord, string, error)) ([]string, []int) {
	t.Helper()
	page := scheduler.Page{Count: count}
	var got []string
	var sizes []int
	for {
		recs, next, err := list(page)
		if err != nil {
			t.Fatalf("page %+v: %v", page, err)
		}
		got, sizes = append(got, sourceNames(recs)...), append(sizes, len(recs))
		if next == "" {
			return got, sizes
		}
		page.Cursor = next
		if len(sizes) > 100 {
			t.Fatal("paging never ends")
		}
	}
}

func TestSources(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	a, b := digest("builder a"), digest("builder b")
	tool, lib, stray := source("example.com/tool", "v1.2.3"), source("example.com/lib", "v0.1.0"), source("elsewhere.org/Thing", "v9")

	c1, j1 := claimOf(tool, 1, nil)
	c2, j2 := claimOf(lib, 2, nil)
	// Two claims of one archive in one transaction name it once.
	c1again, _ := claimOf(tool, 7, nil)
	if _, err := s.PutClaims(ctx, []scheduler.ClaimRecord{c1, c2, c1again}, []lantern.Job{j1, j2}); err != nil {
		t.Fatal(err)
	}
	// A second claim of tool, of another archive, and the same claim again.
	otherTool := tool
	otherTool.Digest = digest("another tool archive")
	c3, j3 := claimOf(otherTool, 3, nil)
	if _, err := s.PutClaims(ctx, []scheduler.ClaimRecord{c3, c1}, []lantern.Job{j3}); err != nil {
		t.Fatal(err)
	}
	v1 := record(t, s, rebuild(tool, "bin", a, digest("tool binary"), 4), lantern.Digest{})
	v2 := record(t, s, rebuild(tool, "bin", b, digest("tool binary"), 5), lantern.Digest{})
	// An attestation about a source no claim named.
	vs := record(t, s, rebuild(stray, "bin", a, digest("stray binary"), 6), lantern.Digest{})

	got, next, err := s.Sources(ctx, scheduler.Page{})
	if err != nil {
		t.Fatal(err)
	}
	// Two claims give tool@v1.2.3 two archives: its verdict is a conflict,
	// naming the other archive.
	v2conflict := v2
	v2conflict.Status, v2conflict.Conflicts = lantern.StatusConflict, []lantern.Digest{otherTool.Digest}
	want := []scheduler.SourceRecord{
		{Name: stray.Name, Version: stray.Version, Digests: []lantern.Digest{stray.Digest}, Added: t0.Add(6*time.Second + time.Second), Verdicts: []lantern.Verdict{vs}},
		{Name: lib.Name, Version: lib.Version, Digests: []lantern.Digest{lib.Digest}, Added: c2.Received, Verdicts: []lantern.Verdict{}},
		{Name: tool.Name, Version: tool.Version, Digests: []lantern.Digest{tool.Digest, otherTool.Digest}, Added: c1.Received, Verdicts: []lantern.Verdict{v2conflict}},
	}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("Sources, newest first (-want +got):\n%s", diff)
	}
	if next != "" {
		t.Errorf("Sources next = %q, want none", next)
	}
	if v1.Status != lantern.StatusPending || v2.Status != lantern.StatusReproduced {
		t.Errorf("verdicts = %s, %s; want pending, then reproduced", v1.Status, v2.Status)
	}

	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"example.com", []string{"example.com/lib@v0.1.0", "example.com/tool@v1.2.3"}},
		{"TOOL", []string{"example.com/tool@v1.2.3"}},
		{"thing@v9", []string{"elsewhere.org/Thing@v9"}},
		{"v0.1", []string{"example.com/lib@v0.1.0"}},
		{"nothing like it", nil},
		{"", []string{"elsewhere.org/Thing@v9", "example.com/lib@v0.1.0", "example.com/tool@v1.2.3"}},
		// Digests: a source archive (the second one of tool), an output, a
		// prefix of one with an odd number of digits, in either form.
		{otherTool.Digest.String(), []string{"example.com/tool@v1.2.3"}},
		{digest("stray binary").Short(), []string{"elsewhere.org/Thing@v9"}},
		{"sha256:" + digest("tool binary").Hex()[:9], []string{"example.com/tool@v1.2.3"}},
		{strings.ToUpper(lib.Digest.Hex()), []string{"example.com/lib@v0.1.0"}},
		{digest("unknown").String(), nil},
	} {
		q := scheduler.ParseSourceQuery(tt.query)
		got, _, err := s.SearchSources(ctx, q, scheduler.Page{})
		if err != nil {
			t.Fatalf("SearchSources(%q): %v", tt.query, err)
		}
		if diff := cmp.Diff(tt.want, sourceNames(got)); diff != "" {
			t.Errorf("SearchSources(%q) = %+v (-want +got):\n%s", tt.query, q, diff)
		}
	}
}

func TestSourcesPaging(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	var names []string
	for i := range 23 {
		src := source(fmt.Sprintf("example.com/m%02d", i), "v1.0.0")
		c, j := claimOf(src, i, nil)
		if _, err := s.PutClaims(ctx, []scheduler.ClaimRecord{c}, []lantern.Job{j}); err != nil {
			t.Fatal(err)
		}
		// Every source's output starts with the same byte, to page through
		// a digest search too.
		record(t, s, rebuild(src, "bin", digest("builder"), lantern.DigestFromSum([32]byte{0xab, byte(i)}), i), lantern.Digest{})
		names = append(names, src.String())
	}
	newest := make([]string, len(names))
	for i, n := range names {
		newest[len(names)-1-i] = n
	}

	got, sizes := allPages(t, 10, func(p scheduler.Page) ([]scheduler.SourceRecord, string, error) { return s.Sources(ctx, p) })
	if diff := cmp.Diff(newest, got); diff != "" {
		t.Errorf("Sources, newest first (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{10, 10, 3}, sizes); diff != "" {
		t.Errorf("Sources page sizes (-want +got):\n%s", diff)
	}
	search := func(q string) func(scheduler.Page) ([]scheduler.SourceRecord, string, error) {
		return func(p scheduler.Page) ([]scheduler.SourceRecord, string, error) {
			return s.SearchSources(ctx, scheduler.ParseSourceQuery(q), p)
		}
	}
	got, sizes = allPages(t, 5, search("example.com/m"))
	if diff := cmp.Diff(names, got); diff != "" {
		t.Errorf("SearchSources(text), by name (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{5, 5, 5, 5, 3}, sizes); diff != "" {
		t.Errorf("SearchSources(text) page sizes (-want +got):\n%s", diff)
	}
	if got, _ := allPages(t, 5, search("sha256:ab000000")); !cmp.Equal(got, names[:1]) {
		t.Errorf("SearchSources(sha256:ab000000) = %v, want %v", got, names[:1])
	}
	// A digest search by the first byte they share: all 23.
	got, sizes = allPages(t, 10, func(p scheduler.Page) ([]scheduler.SourceRecord, string, error) {
		return s.SearchSources(ctx, scheduler.SourceQuery{DigestHex: "ab"}, p)
	})
	if diff := cmp.Diff(names, got); diff != "" {
		t.Errorf("SearchSources(digest ab) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{10, 10, 3}, sizes); diff != "" {
		t.Errorf("SearchSources(digest ab) page sizes (-want +got):\n%s", diff)
	}
	for _, cursor := range []string{"not a cursor!", "bm90IGEgY3Vyc29y"} {
		if _, _, err := s.Sources(ctx, scheduler.Page{Cursor: cursor}); !errors.Is(err, scheduler.ErrBadCursor) {
			t.Errorf("Sources(cursor %q) = %v, want ErrBadCursor", cursor, err)
		}
		if _, _, err := s.SearchSources(ctx, scheduler.SourceQuery{Text: "m"}, scheduler.Page{Cursor: cursor}); !errors.Is(err, scheduler.ErrBadCursor) {
			t.Errorf("SearchSources(cursor %q) = %v, want ErrBadCursor", cursor, err)
		}
	}
}

func TestParseSourceQuery(t *testing.T) {
	h := digest("x").Hex()
	for _, tt := range []struct {
		in   string
		want scheduler.SourceQuery
	}{
		{"golang.org/x/tools", scheduler.SourceQuery{Text: "golang.org/x/tools"}},
		{"  stringer@v0.30.0 ", scheduler.SourceQuery{Text: "stringer@v0.30.0"}},
		{"sha256:" + h, scheduler.SourceQuery{DigestHex: h}},
		{"SHA256:" + strings.ToUpper(h[:8]), scheduler.SourceQuery{DigestHex: h[:8]}},
		{"sha256:" + h[:7], scheduler.SourceQuery{Text: "sha256:" + h[:7]}},
		{h[:12], scheduler.SourceQuery{DigestHex: h[:12]}},
		{h[:11], scheduler.SourceQuery{Text: h[:11]}},
		{"deadbeef", scheduler.SourceQuery{Text: "deadbeef"}},
		{h + "0", scheduler.SourceQuery{Text: h + "0"}},
		{"", scheduler.SourceQuery{}},
	} {
		if got := scheduler.ParseSourceQuery(tt.in); got != tt.want {
			t.Errorf("ParseSourceQuery(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// TestOtherLayoutRefused: a file of an older layout (whose verdicts and
// outcomes are keyed otherwise) is refused with ErrLayout, for a reindex.
func TestOtherLayoutRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lantern.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s)
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put([]byte("layout"), []byte("2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(path); !errors.Is(err, ErrLayout) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open(layout 2) = %v, want ErrLayout", err)
	}
}

// FuzzSearchSources: whatever a person types into the search box, the
// search answers without an error, and a text search finds only sources
// whose name@version holds the text.
func FuzzSearchSources(f *testing.F) {
	s := openStore(f)
	for i, name := range []string{"golang.org/x/tools/cmd/stringer", "example.com/Tool", "ünï/cödé", "a"} {
		src := source(name, fmt.Sprintf("v1.%d.0", i))
		c, j := claimOf(src, i, nil)
		if _, err := s.PutClaims(f.Context(), []scheduler.ClaimRecord{c}, []lantern.Job{j}); err != nil {
			f.Fatal(err)
		}
		record(f, s, rebuild(src, "bin", digest("builder"), digest("out "+name), i), lantern.Digest{})
	}
	for _, q := range []string{"stringer", "TOOL", "sha256:" + digest("out a").Hex()[:9], digest("x").Hex(), "v1.2", "@", "", "\x00", "ÜNÏ"} {
		f.Add(q, 3)
	}
	f.Fuzz(func(t *testing.T, query string, count int) {
		q := scheduler.ParseSourceQuery(query)
		recs, next, err := s.SearchSources(t.Context(), q, scheduler.Page{Count: count})
		if err != nil {
			t.Fatalf("SearchSources(%q) = %v", query, err)
		}
		if next != "" {
			if _, _, err := s.SearchSources(t.Context(), q, scheduler.Page{Count: count, Cursor: next}); err != nil {
				t.Fatalf("SearchSources(%q), next page = %v", query, err)
			}
		}
		for _, r := range recs {
			if q.Text != "" && !strings.Contains(strings.ToLower(r.Name+"@"+r.Version), strings.ToLower(q.Text)) {
				t.Errorf("SearchSources(%q) found %s@%s", query, r.Name, r.Version)
			}
		}
	})
}
