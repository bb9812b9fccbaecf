package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
)

// FuzzSourceURL: the URL of any valid name@version, its page's or its
// badge's, leads back to that name and version through the dashboard's
// routes, never to another page (a path the mux would clean, or a name cut
// at the wrong @).
func FuzzSourceURL(f *testing.F) {
	for _, s := range [][2]string{
		{"golang.org/x/tools/cmd/stringer", "v0.30.0"}, {"a/../b", "v1"}, {"x@y", "v@1"}, {"a//b", "1"},
		{"<script>", "%2F"}, {"ünï/cödé", "v1.svg"}, {"a?b#c", "."}, {"/", "v"},
	} {
		f.Add(s[0], s[1])
	}
	type got struct {
		name, version string
		err           error
	}
	var last got
	mux := http.NewServeMux()
	for _, pattern := range []string{"GET /sources/{source...}", "GET /source"} {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			last.name, last.version, last.err = sourceParam(r, "")
		})
	}
	for _, pattern := range []string{"GET /badge/{source...}", "GET /badge.svg"} {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			last.name, last.version, last.err = sourceParam(r, ".svg")
		})
	}
	f.Fuzz(func(t *testing.T, name, version string) {
		src := lantern.Source{Name: name, Version: version, Digest: lantern.DigestOf(nil)}
		if src.Validate() != nil {
			return // the scheduler refuses such a claim
		}
		for _, u := range []string{sourceURL(name, version), badgeURL(name, version)} {
			last = got{}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest("GET", u, nil))
			if w.Code != http.StatusOK || last.err != nil {
				t.Fatalf("GET %s = %d, %v; want the page of %q @ %q", u, w.Code, last.err, name, version)
			}
			if last.name != name || last.version != version {
				t.Fatalf("GET %s is the page of %q @ %q, want %q @ %q", u, last.name, last.version, name, version)
			}
			if strings.ContainsAny(u, "<>\"' ") {
				t.Fatalf("URL %q has a character it should have escaped", u)
			}
		}
	})
}
