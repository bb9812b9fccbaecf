package evidence_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/verify"
	"github.com/lanternfarm/lantern/verify/evidence"
)

// pagedFarm serves pages of JSON Lines at /api/v1/evidence, page n (from 0)
// linking to the next with link(n), if it returns anything; it records the
// queries it was asked.
type pagedFarm struct {
	pages   [][]byte
	link    func(srv *httptest.Server, n int) string
	srv     *httptest.Server
	queries []url.Values
	accept  []string
}

func newPagedFarm(t *testing.T, pages [][]byte, link func(srv *httptest.Server, n int) string) *pagedFarm {
	t.Helper()
	f := &pagedFarm{pages: pages, link: link}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/evidence" {
			http.Error(w, "no such route", http.StatusNotFound)
			return
		}
		f.queries = append(f.queries, r.URL.Query())
		f.accept = append(f.accept, r.Header.Get("Accept"))
		n := 0
		if c := r.URL.Query().Get("cursor"); c != "" {
			fmt.Sscan(c, &n)
		}
		if n >= len(f.pages) {
			http.Error(w, "no such page", http.StatusBadRequest)
			return
		}
		if l := f.link(f.srv, n); l != "" {
			w.Header().Set("Link", l)
		}
		w.Header().Set("Content-Type", "application/jsonl")
		w.Write(f.pages[n])
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// next links page n to page n+1 as the scheduler does, by a path.
func next(q string) func(srv *httptest.Server, n int) string {
	return func(srv *httptest.Server, n int) string {
		return fmt.Sprintf("</api/v1/evidence?%s&cursor=%d>; rel=\"next\"", q, n+1)
	}
}

// TestFarmPages follows a farm's Link from page to page, to a farm named
// with or without a slash at the end.
func TestFarmPages(t *testing.T) {
	for _, slash := range []string{"", "/"} {
		t.Run("slash "+slash, func(t *testing.T) { testFarmPages(t, slash) })
	}
}

func testFarmPages(t *testing.T, slash string) {
	e := [][]byte{envelope(t, 1), envelope(t, 2), envelope(t, 3), envelope(t, 4)}
	pages := [][]byte{
		[]byte(string(e[0]) + "\n" + string(e[1]) + "\n"),
		[]byte(string(e[2]) + "\n"),
		[]byte(string(e[3]) + "\n"),
	}
	q := "artefact=" + artefact.String()
	f := newPagedFarm(t, pages, func(srv *httptest.Server, n int) string {
		switch n {
		case 0:
			return next(q)(srv, n)
		case 1: // an absolute address on the same farm is fine too
			return fmt.Sprintf("<%s/api/v1/evidence?%s&cursor=2>; rel=\"next\"", srv.URL, q)
		}
		return ""
	})
	saved := map[string][]byte{}
	farm := &evidence.Farm{URL: f.srv.URL + slash, Save: func(name string, page []byte) error {
		saved[name] = page
		return nil
	}}
	got, err := farm.Artefact(t.Context(), artefact)
	if err != nil {
		t.Fatalf("Artefact() = %v", err)
	}
	base := f.srv.URL + " artefact-" + artefact.Hex()
	want := []string{base + "-001.jsonl:1", base + "-001.jsonl:2", base + "-002.jsonl", base + "-003.jsonl"}
	if diff := cmp.Diff(want, origins(got)); diff != "" {
		t.Errorf("Artefact() origins (-want +got):\n%s", diff)
	}
	for i, p := range got {
		if !bytes.Equal(bytes.TrimSpace(p.Raw), e[i]) {
			t.Errorf("Artefact()[%d] = %.60s, want envelope %d", i, p.Raw, i)
		}
	}
	if len(f.queries) != 3 {
		t.Fatalf("the farm was asked %d times, want 3", len(f.queries))
	}
	for i, q := range f.queries {
		if q.Get("artefact") != artefact.String() || f.accept[i] != "application/jsonl" {
			t.Errorf("request %d: query %v, Accept %q; want artefact=%s, application/jsonl", i, q, f.accept[i], artefact)
		}
	}
	if c := f.queries[0].Get("count"); c != "1000" {
		t.Errorf("first request: count %q, want 1000", c)
	}
	for i, p := range pages {
		name := fmt.Sprintf("artefact-%s-%03d.jsonl", artefact.Hex(), i+1)
		if !bytes.Equal(saved[name], p) {
			t.Errorf("saved %s = %q, want page %d as received", name, saved[name], i+1)
		}
	}
	if len(saved) != len(pages) {
		t.Errorf("saved %d pages, want %d", len(saved), len(pages))
	}
	if d := decide(t, got); d.Result != verify.Verified {
		t.Errorf("Decide(the farm's pages) = %s, want verified", d.Result)
	}
}

func TestFarmSource(t *testing.T) {
	f := newPagedFarm(t, [][]byte{append(envelope(t, 1), '\n')}, func(*httptest.Server, int) string { return "" })
	var names []string
	farm := &evidence.Farm{URL: f.srv.URL, Save: func(name string, _ []byte) error { names = append(names, name); return nil }}
	got, err := farm.Source(t.Context(), "example.org/tool@v1.0.0")
	if err != nil || len(got) != 1 {
		t.Fatalf("Source() = %d pieces, %v; want 1", len(got), err)
	}
	if s := f.queries[0].Get("source"); s != "example.org/tool@v1.0.0" {
		t.Errorf("Source(): query source=%q", s)
	}
	want := "source-" + lantern.DigestOf([]byte("example.org/tool@v1.0.0")).Hex()[:16] + "-001.jsonl"
	if len(names) != 1 || names[0] != want {
		t.Errorf("Source() saved %q, want %q: a file name, whatever the source's name", names, want)
	}
	saveErr := errors.New("disk full")
	farm.Save = func(string, []byte) error { return saveErr }
	if _, err := farm.Source(t.Context(), "example.org/tool@v1.0.0"); !errors.Is(err, saveErr) {
		t.Errorf("Source() with a failing Save = %v, want %v", err, saveErr)
	}
}

// TestHostileFarm: a farm is not trusted. It cannot send its reader to
// another host or endpoint, keep it paging for ever, or make it read
// without end; a farm that fails says how.
func TestHostileFarm(t *testing.T) {
	var elsewhereHits atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhereHits.Add(1)
		w.Write(append(envelope(t, 9), '\n'))
	}))
	t.Cleanup(elsewhere.Close)
	page := [][]byte{append(envelope(t, 1), '\n'), append(envelope(t, 2), '\n')}
	q := "artefact=" + artefact.String()

	for _, tc := range []struct {
		name string
		link string // %s is the farm's own host:port
	}{
		{"another host", elsewhere.URL + "/api/v1/evidence?" + q + "&cursor=1"},
		{"another host, scheme-relative", "//" + strings.TrimPrefix(elsewhere.URL, "http://") + "/api/v1/evidence?cursor=1"},
		{"the same host by another name", "http://localhost:%[2]s/api/v1/evidence?cursor=1"},
		{"another path", "/api/v1/attestations?cursor=1"},
		{"another path, by dots", "/api/v1/evidence/../claims?cursor=1"},
		{"a longer path", "/api/v1/evidence/more?cursor=1"},
		{"another scheme", "https://%[1]s/api/v1/evidence?cursor=1"},
		{"a user", "http://user@%[1]s/api/v1/evidence?cursor=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newPagedFarm(t, page, func(srv *httptest.Server, n int) string {
				if n > 0 {
					return ""
				}
				u, _ := url.Parse(srv.URL)
				target := tc.link
				if strings.Contains(target, "%") {
					target = fmt.Sprintf(target, u.Host, u.Port())
				}
				return "<" + target + ">; rel=\"next\""
			})
			got, err := (&evidence.Farm{URL: f.srv.URL}).Artefact(t.Context(), artefact)
			if !errors.Is(err, evidence.ErrFarm) || !strings.Contains(err.Error(), "the next page must be on the same farm's /api/v1/evidence") {
				t.Errorf("Artefact() = %v, want a refusal of the Link", err)
			}
			if len(f.queries) != 1 || elsewhereHits.Load() != 0 {
				t.Errorf("followed the Link: the farm was asked %d times, elsewhere %d", len(f.queries), elsewhereHits.Load())
			}
			if len(got) != 1 {
				t.Errorf("Artefact() = %d pieces, want the first page's 1", len(got))
			}
		})
	}

	for _, link := range []string{
		`</api/v1/evidence?cursor=1>; rel="prev"`,
		`</api/v1/evidence?cursor=1>`,
		`/api/v1/evidence?cursor=1; rel="next"`,
		`<%zz>; rel="next"`,
	} {
		t.Run("malformed "+link, func(t *testing.T) {
			f := newPagedFarm(t, page, func(_ *httptest.Server, n int) string {
				if n > 0 {
					return ""
				}
				return link
			})
			if _, err := (&evidence.Farm{URL: f.srv.URL}).Artefact(t.Context(), artefact); !errors.Is(err, evidence.ErrFarm) || !strings.Contains(err.Error(), "Link") {
				t.Errorf("Artefact() = %v, want an error about the Link", err)
			}
			if len(f.queries) != 1 {
				t.Errorf("the farm was asked %d times, want 1", len(f.queries))
			}
		})
	}

	t.Run("endless pages", func(t *testing.T) {
		var hits atomic.Int32
		one := append(envelope(t, 1), '\n')
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := hits.Add(1)
			w.Header().Set("Link", fmt.Sprintf("</api/v1/evidence?%s&cursor=%d>; rel=\"next\"", q, n))
			w.Write(one)
		}))
		t.Cleanup(srv.Close)
		got, err := (&evidence.Farm{URL: srv.URL}).Artefact(t.Context(), artefact)
		if !errors.Is(err, evidence.ErrTooMuch) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d pages", evidence.MaxPages)) {
			t.Errorf("Artefact() = %v, want %v", err, evidence.ErrTooMuch)
		}
		if hits.Load() != evidence.MaxPages || len(got) != evidence.MaxPages {
			t.Errorf("asked %d pages, kept %d pieces; want %d of each", hits.Load(), len(got), evidence.MaxPages)
		}
	})

	t.Run("a page too large", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for sent := 0; sent <= evidence.MaxAnswer; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}))
		t.Cleanup(srv.Close)
		got, err := (&evidence.Farm{URL: srv.URL}).Artefact(t.Context(), artefact)
		if !errors.Is(err, evidence.ErrTooMuch) || !strings.Contains(err.Error(), "a page of more than") {
			t.Errorf("Artefact() = %v, want %v", err, evidence.ErrTooMuch)
		}
		if len(got) != 0 {
			t.Errorf("Artefact() kept %d pieces of a page too large", len(got))
		}
	})

	t.Run("a page of too many pieces", func(t *testing.T) {
		// Tiny lines, each a piece: within MaxAnswer, they would cost the
		// reader gigabytes and minutes as pieces.
		lines := bytes.Repeat([]byte("{}\n"), evidence.MaxPieces+1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(lines) }))
		t.Cleanup(srv.Close)
		got, err := (&evidence.Farm{URL: srv.URL}).Artefact(t.Context(), artefact)
		if !errors.Is(err, evidence.ErrTooMuch) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d pieces", evidence.MaxPieces)) {
			t.Errorf("Artefact() = %v, want %v", err, evidence.ErrTooMuch)
		}
		if len(got) > evidence.MaxPieces {
			t.Errorf("Artefact() kept %d pieces", len(got))
		}
	})

	for _, code := range []int{http.StatusNotFound, http.StatusInternalServerError, http.StatusForbidden} {
		t.Run(fmt.Sprint("status ", code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(code)
				fmt.Fprintf(w, `{"error":"the farm says no","fix":"ask again"}`)
			}))
			t.Cleanup(srv.Close)
			_, err := (&evidence.Farm{URL: srv.URL}).Artefact(t.Context(), artefact)
			if !errors.Is(err, evidence.ErrFarm) || !strings.Contains(err.Error(), fmt.Sprintf("%d %s", code, http.StatusText(code))) || !strings.Contains(err.Error(), "the farm says no") {
				t.Errorf("Artefact() = %v, want an error with the status and what the farm said", err)
			}
		})
	}

	t.Run("nobody there", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		addr := srv.URL
		srv.Close()
		if _, err := (&evidence.Farm{URL: addr}).Artefact(t.Context(), artefact); !errors.Is(err, evidence.ErrFarm) || !strings.Contains(err.Error(), addr) {
			t.Errorf("Artefact() = %v, want an error that names the farm", err)
		}
	})
}

func TestParseFarmURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":            "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/":           "http://127.0.0.1:8080",
		"https://farm.example.org":         "https://farm.example.org",
		"https://farm.example.org/lantern": "https://farm.example.org/lantern",
		"":                                 "",
		"127.0.0.1:8080":                   "",
		"ftp://farm.example.org":           "",
		"file:///etc/passwd":               "",
		"http://":                          "",
		"http://user:pw@farm.example.org":  "",
		"http://farm.example.org/?x=1":     "",
		"http://farm.example.org/#x":       "",
		"http://farm example.org":          "",
	} {
		u, err := evidence.ParseFarmURL(in)
		switch {
		case want == "" && err == nil:
			t.Errorf("ParseFarmURL(%q) = %s, want an error", in, u)
		case want == "" && !strings.Contains(err.Error(), "want the farm's address"):
			t.Errorf("ParseFarmURL(%q) = %v, want an error that says what to give", in, err)
		case want != "" && (err != nil || u.String() != want):
			t.Errorf("ParseFarmURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
}

// TestFarmRedirects: a farm cannot send its reader elsewhere by redirecting
// it either, whatever http.Client the reader gave; a redirect on the farm's
// own endpoint is followed.
func TestFarmRedirects(t *testing.T) {
	var elsewhereHits atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhereHits.Add(1)
		w.Write(append(envelope(t, 9), '\n'))
	}))
	t.Cleanup(elsewhere.Close)
	one := append(envelope(t, 1), '\n')
	for _, tc := range []struct {
		name    string
		to      string // where the farm redirects its first answer; %s is its own address
		wantErr string
	}{
		{"another host", elsewhere.URL + "/api/v1/evidence", "redirected to " + elsewhere.URL},
		{"another path", "%s/api/v1/attestations", "redirected to"},
		{"the same endpoint", "%s/api/v1/evidence?again=1", ""},
	} {
		for _, client := range []*http.Client{nil, {}} {
			t.Run(fmt.Sprintf("%s, client %v", tc.name, client != nil), func(t *testing.T) {
				elsewhereHits.Store(0)
				var srv *httptest.Server
				srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Query().Get("again") == "" && r.URL.Path == "/api/v1/evidence" {
						to := tc.to
						if strings.Contains(to, "%s") {
							to = fmt.Sprintf(to, srv.URL)
						}
						http.Redirect(w, r, to, http.StatusFound)
						return
					}
					if r.URL.Path != "/api/v1/evidence" {
						w.Write(append(envelope(t, 8), '\n'))
						return
					}
					w.Write(one)
				}))
				t.Cleanup(srv.Close)
				got, err := (&evidence.Farm{URL: srv.URL, Client: client}).Artefact(t.Context(), artefact)
				if tc.wantErr == "" {
					if err != nil || len(got) != 1 || !bytes.Equal(bytes.TrimSpace(got[0].Raw), bytes.TrimSpace(one)) {
						t.Errorf("Artefact() = %d pieces, %v; want the farm's one", len(got), err)
					}
					return
				}
				if !errors.Is(err, evidence.ErrFarm) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Artefact() = %v, want an error with %q", err, tc.wantErr)
				}
				if len(got) != 0 || elsewhereHits.Load() != 0 {
					t.Errorf("Artefact() followed the redirect: %d pieces, %d requests elsewhere", len(got), elsewhereHits.Load())
				}
			})
		}
	}
}

// TestFarmBehindPrefix: a farm served under a path prefix (a proxy's
// /lantern/) pages by the relative Link the scheduler writes, and stays
// under its prefix.
func TestFarmBehindPrefix(t *testing.T) {
	e := [][]byte{envelope(t, 1), envelope(t, 2)}
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if r.URL.Path != "/lantern/api/v1/evidence" {
			http.Error(w, "no such route", http.StatusNotFound)
			return
		}
		if r.URL.Query().Get("cursor") == "" {
			w.Header().Set("Link", `<?artefact=`+artefact.String()+`&cursor=c1>; rel="next"`)
			w.Write(append(e[0], '\n'))
			return
		}
		w.Write(append(e[1], '\n'))
	}))
	defer srv.Close()
	got, err := (&evidence.Farm{URL: srv.URL + "/lantern"}).Artefact(t.Context(), artefact)
	if err != nil || len(got) != 2 {
		t.Fatalf("Artefact() = %d pieces, %v; want 2 (paths asked: %q)", len(got), err, paths)
	}
	if want := []string{"/lantern/api/v1/evidence", "/lantern/api/v1/evidence"}; !slices.Equal(paths, want) {
		t.Errorf("paths asked %q, want %q", paths, want)
	}
}
