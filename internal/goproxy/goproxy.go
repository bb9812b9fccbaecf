// Package goproxy resolves a Go command, PKG@VERSION, to the module version
// that holds it, through a Go module proxy, and checks the module's zip
// against the Go checksum database, as the go command does — with
// golang.org/x/mod, without running the go command.
//
// The proxy is not trusted: a zip is accepted only when its h1: hash is the
// one the checksum database's signed, append-only log records for the
// module version, and a Resolver checks the log's proofs itself.
package goproxy

import (
	"archive/zip"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/lanternfarm/lantern"
)

// DefaultProxy is the Go module proxy used when none is given.
const DefaultProxy = "https://proxy.golang.org"

// Errors a caller can tell from a proxy's or a database's failure: the
// package and version asked for are wrong.
var (
	// ErrInvalid reports a malformed package path or version.
	ErrInvalid = errors.New("not a Go package at a version")
	// ErrNoModule reports a package that no module version the proxy has
	// holds.
	ErrNoModule = errors.New("no module holds the package")
)

// maxInfo bounds a .info answer; maxZip is the go command's own bound on a
// module zip (modzip.MaxZipFile).
const (
	maxInfo = 64 << 10
	maxZip  = modzip.MaxZipFile
)

// Module is a module version whose zip was downloaded and checked against
// the checksum database.
type Module struct {
	Path    string
	Version string
	// Zip is the SHA-256 of the module zip, Sum its h1: hash (as in go.sum),
	// which the checksum database records.
	Zip lantern.Digest
	Sum string
	// URL is where the proxy serves the zip.
	URL string
}

// String returns "path@version".
func (m Module) String() string { return m.Path + "@" + m.Version }

// Checker looks up the h1: hash the checksum database records for a module
// version. *SumDB is one.
type Checker interface {
	Sum(modPath, version string) (string, error)
}

// Resolver finds modules through a proxy and checks them with a Checker.
type Resolver struct {
	proxy string // without a trailing slash
	check Checker
	hc    *http.Client
	tmp   string
}

// NewResolver returns a Resolver that asks the proxy at proxyURL (an http or
// https URL; the builders of a farm fetch the zip from it too) and checks
// every zip with check. hc nil means http.DefaultClient; tmp is where zips
// are downloaded to ("" for the system's temporary directory).
func NewResolver(proxyURL string, check Checker, hc *http.Client, tmp string) (*Resolver, error) {
	u, err := url.Parse(proxyURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("proxy %q: want the http(s) URL of a Go module proxy, such as %s", proxyURL, DefaultProxy)
	}
	if check == nil {
		return nil, errors.New("proxy: no checksum database to check modules with")
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Resolver{proxy: strings.TrimSuffix(u.String(), "/"), check: check, hc: hc, tmp: tmp}, nil
}

// FirstProxy returns the first proxy URL of a GOPROXY list, skipping
// "direct" and "off" (Lantern reaches modules through a proxy only), or
// DefaultProxy when the list names none.
func FirstProxy(goproxy string) string {
	for _, p := range strings.FieldsFunc(goproxy, func(r rune) bool { return r == ',' || r == '|' }) {
		if p = strings.TrimSpace(p); p != "direct" && p != "off" && p != "" {
			return p
		}
	}
	return DefaultProxy
}

// Resolve finds the module that holds the package pkg at version, as the go
// command does for "go install pkg@version": it tries the path prefixes of
// pkg, longest first, and takes the first module version the proxy has
// whose zip holds the package. Every zip it reads is checked against the
// checksum database first; one whose hash is not the database's is an
// error that wraps lantern.ErrDigestMismatch, and resolution stops there.
func (r *Resolver) Resolve(ctx context.Context, pkg, version string) (*Module, error) {
	if err := module.CheckImportPath(pkg); err != nil {
		return nil, fmt.Errorf("resolve %s@%s: %w: %w", pkg, version, ErrInvalid, err)
	}
	if !canonical(version) {
		return nil, fmt.Errorf("resolve %s@%s: %w: version %q: want a full semantic version such as v1.2.3 (not a branch, a query or an abbreviation)", pkg, version, ErrInvalid, version)
	}
	var (
		tried     []string
		noPackage bool  // a module version was found without the package
		infoErr   error // the first error asking the proxy of a prefix
	)
	for p := pkg; p != "." && p != "/"; p = path.Dir(p) {
		if module.Check(p, version) != nil {
			continue // not a module path, or not one that version can be of (a /vN suffix)
		}
		found, err := r.info(ctx, p, version)
		if err != nil {
			// As for the go command, a prefix the proxy will not answer for
			// (proxy.golang.org says 403 to "golang.org/x") only matters
			// if no other prefix is the module.
			infoErr = cmp.Or(infoErr, err)
			tried = append(tried, p+" (an error)")
			continue
		}
		if !found {
			tried = append(tried, p+" (none at "+version+")")
			continue
		}
		m, file, err := r.download(ctx, p, version)
		if err != nil {
			return nil, fmt.Errorf("resolve %s@%s: %w", pkg, version, err)
		}
		holds, err := holdsPackage(file, p, version, pkg)
		os.Remove(file)
		if err != nil {
			return nil, fmt.Errorf("resolve %s@%s: %s zip: %w", pkg, version, m, err)
		}
		if holds {
			return m, nil
		}
		noPackage = true
		tried = append(tried, p+" (its "+version+" has no package "+strings.TrimPrefix(strings.TrimPrefix(pkg, p), "/")+")")
	}
	if infoErr != nil && !noPackage {
		return nil, fmt.Errorf("resolve %s@%s: %w", pkg, version, infoErr)
	}
	if len(tried) == 0 {
		return nil, fmt.Errorf("resolve %s@%s: %w: no path prefix of %s can be a module at %s (a module at v2 or above ends in /vN); check the version", pkg, version, ErrNoModule, pkg, version)
	}
	return nil, fmt.Errorf("resolve %s@%s: %w: %s answered for %s; check the package path and the version (go list -m -versions MODULE lists the versions)",
		pkg, version, ErrNoModule, r.proxy, strings.Join(tried, ", "))
}

// canonical reports whether v is a full semantic version, with at most
// "+incompatible" after it, as module versions are.
func canonical(v string) bool {
	if !semver.IsValid(v) {
		return false
	}
	build := semver.Build(v)
	return (build == "" || build == "+incompatible") && semver.Canonical(v)+build == v
}

// base returns the proxy's URL of the module version's files, without the
// extension: PROXY/<escaped path>/@v/<escaped version>.
func (r *Resolver) base(modPath, version string) (string, error) {
	ep, err := module.EscapePath(modPath)
	if err != nil {
		return "", err
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	return r.proxy + "/" + ep + "/@v/" + ev, nil
}

// info reports whether the proxy has the module version: a 404 or 410 is
// "no", as for the go command.
func (r *Resolver) info(ctx context.Context, modPath, version string) (bool, error) {
	u, err := r.base(modPath, version)
	if err != nil {
		return false, err
	}
	resp, err := r.get(ctx, u+".info")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone:
		return false, nil
	default:
		return false, fmt.Errorf("GET %s.info: %q", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxInfo+1))
	if err != nil {
		return false, fmt.Errorf("GET %s.info: %w", u, err)
	}
	var info struct{ Version string }
	if len(b) > maxInfo || json.Unmarshal(b, &info) != nil {
		return false, fmt.Errorf("GET %s.info: not a version's .info (a JSON object of at most %d bytes)", u, maxInfo)
	}
	if info.Version != version {
		return false, fmt.Errorf("GET %s.info: the proxy answered for version %q, not %s", u, info.Version, version)
	}
	return true, nil
}

// idleTimeout is how long the proxy may send nothing, for its answer's
// head or between bytes of its body (a variable for tests): a proxy that
// holds a request open, or sends one byte and stops, fails the request
// instead of holding the resolution forever, while a big zip that keeps
// coming takes the time it takes.
var idleTimeout = time.Minute

func (r *Resolver) get(ctx context.Context, u string) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	idle := time.AfterFunc(idleTimeout, cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		cancel()
		if !idle.Stop() {
			err = fmt.Errorf("%w (nothing for %s)", err, idleTimeout)
		}
		return nil, fmt.Errorf("ask the module proxy: %w", err)
	}
	resp.Body = &idleBody{ReadCloser: resp.Body, idle: idle, cancel: cancel}
	return resp, nil
}

// idleBody is an answer's body whose request is cancelled when the proxy
// sends nothing for idleTimeout.
type idleBody struct {
	io.ReadCloser
	idle   *time.Timer
	cancel context.CancelFunc
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.idle.Reset(idleTimeout) {
		// Fired already: the request is cancelled, and the next read says so.
		b.idle.Stop()
	}
	if err != nil && err != io.EOF && !b.idle.Stop() {
		err = fmt.Errorf("%w (the module proxy sent nothing for %s)", err, idleTimeout)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.idle.Stop()
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// download fetches the module version's zip to a file, checks that it is
// a well-formed module zip and that its h1: hash is the checksum
// database's, and returns the module and the file, which the caller
// removes.
func (r *Resolver) download(ctx context.Context, modPath, version string) (_ *Module, file string, err error) {
	base, err := r.base(modPath, version)
	if err != nil {
		return nil, "", err
	}
	m := &Module{Path: modPath, Version: version, URL: base + ".zip"}
	// Ask the database first: a module it does not know is refused before
	// anything is downloaded.
	want, err := r.check.Sum(modPath, version)
	if err != nil {
		return nil, "", err
	}
	resp, err := r.get(ctx, m.URL)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %q", m.URL, resp.Status)
	}
	f, err := os.CreateTemp(r.tmp, "lantern-module-*.zip")
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	d, n, err := lantern.DigestReader(io.TeeReader(io.LimitReader(resp.Body, maxZip+1), f))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", m.URL, err)
	}
	if n > maxZip {
		return nil, "", fmt.Errorf("GET %s: more than %d bytes, the most a module zip may have", m.URL, int64(maxZip))
	}
	if _, err := modzip.CheckZip(module.Version{Path: modPath, Version: version}, f.Name()); err != nil {
		return nil, "", fmt.Errorf("%s zip from %s: not a well-formed module zip: %w", m, r.proxy, err)
	}
	sum, err := dirhash.HashZip(f.Name(), dirhash.Hash1)
	if err != nil {
		return nil, "", fmt.Errorf("%s zip: %w", m, err)
	}
	if sum != want {
		return nil, "", fmt.Errorf("%s zip from %s: %w: its hash is %s, the checksum database records %s: the proxy served other bytes than the module's; nothing was claimed",
			m, r.proxy, lantern.ErrDigestMismatch, sum, want)
	}
	m.Zip, m.Sum = d, sum
	return m, f.Name(), nil
}

// holdsPackage reports whether the module zip file of modPath@version has
// a Go file in pkg's directory.
func holdsPackage(file, modPath, version, pkg string) (bool, error) {
	z, err := zip.OpenReader(file)
	if err != nil {
		return false, err
	}
	defer z.Close()
	dir := modPath + "@" + version
	if rel := strings.TrimPrefix(pkg, modPath); rel != "" {
		dir += rel // rel starts with "/"
	}
	for _, f := range z.File {
		d, name := path.Split(f.Name)
		if strings.TrimSuffix(d, "/") == dir && strings.HasSuffix(name, ".go") {
			return true, nil
		}
	}
	return false, nil
}
