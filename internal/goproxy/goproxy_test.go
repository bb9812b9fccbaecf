package goproxy_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
	modzip "golang.org/x/mod/zip"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/goproxy"
)

// TestResolveReal resolves a real Go command through proxy.golang.org and
// checks it against sum.golang.org, and compares the result with what the
// go command itself downloads and records.
func TestResolveReal(t *testing.T) {
	db, err := goproxy.NewSumDB(goproxy.DefaultSumDB, goproxy.DefaultProxy, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := goproxy.NewResolver(goproxy.DefaultProxy, db, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Resolve(t.Context(), "golang.org/x/tools/cmd/stringer", "v0.30.0")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "mod", "download", "-json", "golang.org/x/tools@v0.30.0")
	cmd.Env = append(os.Environ(), "GOPROXY="+goproxy.DefaultProxy, "GOSUMDB="+goproxy.DefaultSumDB, "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download: %v", err)
	}
	var dl struct{ Zip, Sum string }
	if err := json.Unmarshal(out, &dl); err != nil {
		t.Fatal(err)
	}
	zipDigest, _, err := lantern.DigestFile(dl.Zip)
	if err != nil {
		t.Fatal(err)
	}
	want := goproxy.Module{Path: "golang.org/x/tools", Version: "v0.30.0", Zip: zipDigest, Sum: dl.Sum,
		URL: "https://proxy.golang.org/golang.org/x/tools/@v/v0.30.0.zip"}
	if *m != want {
		t.Errorf("Resolve = %+v, want %+v (as the go command has it)", *m, want)
	}
}

// fakeProxy is a module proxy serving zips made in the test, and a checksum
// database (x/mod's test server, signed with a key of the test's) that
// records their honest hashes.
type fakeProxy struct {
	proxy, db  *httptest.Server
	skey, vkey string // the database's signer and verifier keys

	mu    sync.Mutex
	files map[string][]byte // URL path → body
	sums  map[string]string // path@version → h1:
}

func newFakeProxy(t *testing.T) *fakeProxy {
	t.Helper()
	f := &fakeProxy{files: map[string][]byte{}, sums: map[string]string{}}
	f.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		b, ok := f.files[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(f.proxy.Close)
	skey, vkey, err := note.GenerateKey(rand.Reader, "sumdb.test")
	if err != nil {
		t.Fatal(err)
	}
	f.skey, f.vkey = skey, vkey
	f.db = httptest.NewServer(sumdb.NewServer(sumdb.NewTestServer(skey, f.gosum)))
	t.Cleanup(f.db.Close)
	return f
}

func (f *fakeProxy) gosum(path, vers string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum, ok := f.sums[path+"@"+vers]
	if !ok {
		return nil, fmt.Errorf("%s@%s: %w", path, vers, os.ErrNotExist)
	}
	return fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", path, vers, sum, path, vers), nil
}

// add makes a module zip of files (relative path → content) and serves
// it; it returns the zip. The database records its hash.
func (f *fakeProxy) add(t *testing.T, modPath, version string, files map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	files["go.mod"] = "module " + modPath + "\n"
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	m := module.Version{Path: modPath, Version: version}
	if err := modzip.CreateFromDir(&buf, m, dir); err != nil {
		t.Fatal(err)
	}
	zf := filepath.Join(t.TempDir(), "m.zip")
	os.WriteFile(zf, buf.Bytes(), 0o644)
	sum, err := dirhash.HashZip(zf, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	f.serve(t, modPath, version, buf.Bytes())
	f.mu.Lock()
	f.sums[modPath+"@"+version] = sum
	f.mu.Unlock()
	return buf.Bytes()
}

// serve serves zip as the module version's, with its .info.
func (f *fakeProxy) serve(t *testing.T, modPath, version string, zip []byte) {
	t.Helper()
	ep, err := module.EscapePath(modPath)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files["/"+ep+"/@v/"+version+".info"] = fmt.Appendf(nil, `{"Version":%q,"Time":"2026-01-02T03:04:05Z"}`, version)
	f.files["/"+ep+"/@v/"+version+".zip"] = zip
}

func (f *fakeProxy) resolver(t *testing.T, dbDir string) *goproxy.Resolver {
	t.Helper()
	db, err := goproxy.NewSumDB(f.vkey+" "+f.db.URL, f.proxy.URL, dbDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := goproxy.NewResolver(f.proxy.URL, db, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolve(t *testing.T) {
	f := newFakeProxy(t)
	outer := f.add(t, "example.com/tools", "v1.2.0", map[string]string{"cmd/hello/main.go": "package main\n", "lib/lib.go": "package lib\n"})
	inner := f.add(t, "example.com/tools/cmd/nested", "v1.2.0", map[string]string{"main.go": "package main\n"})
	upper := f.add(t, "example.com/Upper/Case", "v0.1.0", map[string]string{"main.go": "package main\n"})
	r := f.resolver(t, t.TempDir())

	for _, tc := range []struct {
		pkg, version string
		want         string // module path
		zip          []byte
		url          string
	}{
		{"example.com/tools/cmd/hello", "v1.2.0", "example.com/tools", outer, "/example.com/tools/@v/v1.2.0.zip"},
		// The longest prefix that is a module wins, as for the go command.
		{"example.com/tools/cmd/nested", "v1.2.0", "example.com/tools/cmd/nested", inner, "/example.com/tools/cmd/nested/@v/v1.2.0.zip"},
		// Upper case is escaped in the proxy's URLs.
		{"example.com/Upper/Case", "v0.1.0", "example.com/Upper/Case", upper, "/example.com/!upper/!case/@v/v0.1.0.zip"},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			m, err := r.Resolve(t.Context(), tc.pkg, tc.version)
			if err != nil {
				t.Fatal(err)
			}
			if m.Path != tc.want || m.Version != tc.version || m.Zip != lantern.DigestOf(tc.zip) || m.URL != f.proxy.URL+tc.url {
				t.Errorf("Resolve = %+v, want module %s, zip %s at %s", *m, tc.want, lantern.DigestOf(tc.zip), tc.url)
			}
			if want := f.sums[tc.want+"@"+tc.version]; m.Sum != want {
				t.Errorf("Resolve's sum = %s, want the database's %s", m.Sum, want)
			}
		})
	}

	for _, tc := range []struct {
		name, pkg, version, want string
		is                       error
	}{
		{"a package the module does not have", "example.com/tools/cmd/absent", "v1.2.0", "its v1.2.0 has no package cmd/absent", goproxy.ErrNoModule},
		{"a directory without Go files", "example.com/tools/cmd", "v1.2.0", "has no package cmd", goproxy.ErrNoModule},
		{"a version nobody has", "example.com/tools/cmd/hello", "v1.9.0", "none at v1.9.0", goproxy.ErrNoModule},
		{"a major version without its /vN", "example.com/tools/cmd/hello", "v2.0.0", "a module at v2 or above ends in /vN", goproxy.ErrNoModule},
		{"a branch, not a version", "example.com/tools/cmd/hello", "master", "want a full semantic version", goproxy.ErrInvalid},
		{"an abbreviated version", "example.com/tools/cmd/hello", "v1.2", "want a full semantic version", goproxy.ErrInvalid},
		{"not an import path", "example.com/../etc", "v1.2.0", "malformed import path", goproxy.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Resolve(t.Context(), tc.pkg, tc.version)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("Resolve(%s@%s) = %v, want an error saying %q", tc.pkg, tc.version, err, tc.want)
			}
		})
	}
}

// TestResolveTampered: a proxy that serves other bytes than the module's
// is caught by the checksum database, whatever it changes.
func TestResolveTampered(t *testing.T) {
	f := newFakeProxy(t)
	honest := f.add(t, "example.com/hello", "v1.0.0", map[string]string{"main.go": "package main\n\nfunc main() {}\n"})
	r := f.resolver(t, t.TempDir())

	// A well-formed zip of the module with other code in it.
	evil := newFakeProxy(t)
	tampered := evil.add(t, "example.com/hello", "v1.0.0", map[string]string{"main.go": "package main\n\nfunc main() { steal() }\n"})
	// The honest zip with a file added at its end.
	var extra bytes.Buffer
	zw := zip.NewWriter(&extra)
	zr, err := zip.NewReader(bytes.NewReader(honest), int64(len(honest)))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range zr.File {
		zw.Copy(zf)
	}
	w, _ := zw.Create("example.com/hello@v1.0.0/init.go")
	w.Write([]byte("package main\n\nfunc init() { steal() }\n"))
	zw.Close()

	for name, zip := range map[string][]byte{"other code": tampered, "a file added": extra.Bytes()} {
		t.Run(name, func(t *testing.T) {
			f.serve(t, "example.com/hello", "v1.0.0", zip)
			m, err := r.Resolve(t.Context(), "example.com/hello", "v1.0.0")
			if !errors.Is(err, lantern.ErrDigestMismatch) || !strings.Contains(err.Error(), "the checksum database records") {
				t.Errorf("Resolve of a tampered zip = %+v, %v; want lantern.ErrDigestMismatch", m, err)
			}
		})
	}

	// A module the database has never heard of is refused, even when the
	// proxy serves a well-formed zip.
	f.serve(t, "example.com/unknown", "v1.0.0", tampered)
	if m, err := r.Resolve(t.Context(), "example.com/unknown", "v1.0.0"); err == nil || !strings.Contains(err.Error(), "checksum database") {
		t.Errorf("Resolve of a module the database does not know = %+v, %v; want the database's refusal", m, err)
	}
}

// TestSumDBFork: a checksum database that shows one client two different
// logs (it forked, or it answers some clients with a log of its own) is a
// security error on the next lookup: the client kept the tree head it had
// verified.
func TestSumDBFork(t *testing.T) {
	f := newFakeProxy(t)
	f.add(t, "example.com/a", "v1.0.0", map[string]string{"main.go": "package main\n"})
	f.add(t, "example.com/b", "v1.0.0", map[string]string{"main.go": "package main\n"})
	dbDir := t.TempDir()
	if _, err := f.resolver(t, dbDir).Resolve(t.Context(), "example.com/a", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	// The honest log grows, and a client that kept the tree head it saw
	// follows it.
	f.add(t, "example.com/c", "v1.0.0", map[string]string{"main.go": "package main\n"})
	if _, err := f.resolver(t, dbDir).Resolve(t.Context(), "example.com/c", "v1.0.0"); err != nil {
		t.Fatalf("lookup in the honest log, grown: %v", err)
	}

	// The same key signs a second log in which example.com/b comes first:
	// its first records are not the ones the client saw.
	fork := sumdb.NewTestServer(f.skey, f.gosum)
	for _, p := range []string{"example.com/b", "example.com/a"} {
		if _, err := fork.Lookup(t.Context(), module.Version{Path: p, Version: "v1.0.0"}); err != nil {
			t.Fatal(err)
		}
	}
	forked := httptest.NewServer(sumdb.NewServer(fork))
	defer forked.Close()
	forkedSum, err := goproxy.NewSumDB(f.vkey+" "+forked.URL, f.proxy.URL, dbDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := forkedSum.Sum("example.com/b", "v1.0.0"); err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Errorf("lookup in a forked log = %q, %v; want it refused as inconsistent with the tree head seen before", sum, err)
	}
}

// TestHostileErrorAnswers: what a proxy or a checksum database says in an
// error answer reaches the terminal of whoever runs lantern rebuild, in its
// error: it comes quoted, with no terminal escape or line of its own.
func TestHostileErrorAnswers(t *testing.T) {
	const evil = "\x1b[2J\x1b[H\r\nlantern: example.com/hello@v1.0.0 reproduced\u202e"
	f := newFakeProxy(t)
	f.add(t, "example.com/hello", "v1.0.0", map[string]string{"main.go": "package main\n"})
	db := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, evil, http.StatusInternalServerError)
	}))
	defer db.Close()
	sdb, err := goproxy.NewSumDB(f.vkey+" "+db.URL, f.proxy.URL, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := goproxy.NewResolver(f.proxy.URL, sdb, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(t.Context(), "example.com/hello", "v1.0.0")
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\r\n\u202e") || !strings.Contains(err.Error(), "reproduced") {
		t.Errorf("Resolve with a database that answers an error = %q, want its answer quoted, without control characters", err)
	}
}
