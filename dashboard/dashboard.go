// Package dashboard is the farm's web pages, for maintainers and anyone
// else who wants to see which builders agree, which disagree, and why. It
// is server-rendered from the scheduler's store with html/template; the
// templates, the style sheet and the little script that reloads a page
// while builds run are embedded in the binary, and every page works
// without the script.
//
// The pages:
//
//	/                               recent sources, their verdicts; ?q= searches by name, version or digest
//	/sources/{name}@{version}       per label, the builders grouped by the output they got
//	/artefacts/{digest}             who built this artefact, from what
//	/builders, /builders/{id}       the builders: key, recent rebuilds, how often each agrees with the others
//	/attestations/{digest}          one attestation: its statement, its build log
//	/diffs/{a}/{b}                  diffoscope's report on how two builders' outputs differ
//	/badge/{name}@{version}.svg     an SVG badge for READMEs: "reproduced 2/2"
//	/static/...                     the style sheet and the script
//
// A name that a path cannot carry (with an empty, "." or ".." segment) is
// asked for as /source?name=N&version=V and /badge.svg?name=N&version=V.
//
// None of its routes is under /api/, /healthz or /metrics, so it can share a
// server with the scheduler's API: Mount puts the two together.
//
// Names, versions, labels, reasons and logs come from whoever signed a claim
// or built a source, so they are untrusted: html/template escapes them in
// every context, nothing of theirs is ever passed as template.HTML, and every
// page is served with a Content-Security-Policy that runs no script but the
// dashboard's own file.
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// Store is what the dashboard reads of the scheduler's store; a
// [scheduler.Store] is one.
type Store interface {
	ClaimsOf(ctx context.Context, name, version string) ([]scheduler.ClaimRecord, error)
	Job(ctx context.Context, id string) (*scheduler.JobRecord, error)
	Attestation(ctx context.Context, envelope lantern.Digest) (*scheduler.AttestationRecord, error)
	AttestationsByArtefact(ctx context.Context, artefact lantern.Digest, builder lantern.Digest, page scheduler.Page) ([]scheduler.AttestationRecord, string, error)
	AttestationsBySource(ctx context.Context, name, version string, page scheduler.Page) ([]scheduler.AttestationRecord, string, error)
	AttestationsByBuilder(ctx context.Context, builder lantern.Digest, page scheduler.Page) ([]scheduler.AttestationRecord, string, error)
	Verdicts(ctx context.Context, name, version string) ([]lantern.Verdict, error)
	VerdictsOfArtefact(ctx context.Context, artefact lantern.Digest) ([]lantern.Verdict, error)
	Builders(ctx context.Context) ([]scheduler.BuilderRecord, error)
	Sources(ctx context.Context, page scheduler.Page) ([]scheduler.SourceRecord, string, error)
	SearchSources(ctx context.Context, q scheduler.SourceQuery, page scheduler.Page) ([]scheduler.SourceRecord, string, error)
	Diff(ctx context.Context, a, b lantern.Digest) (*scheduler.DiffRecord, error)
}

var _ Store = scheduler.Store(nil)

// Objects reads the farm's object store, where workers keep their build
// logs and the scheduler its difference reports, by digest; natsq.Queue is
// one.
type Objects interface {
	GetObject(ctx context.Context, d lantern.Digest) (io.ReadCloser, error)
}

// Config is what a dashboard is told.
type Config struct {
	// Store is the scheduler's store, read only.
	Store Store
	// Objects, if set, is where the build logs and difference reports are
	// read from; without it the pages link to them but do not show them.
	Objects Objects
	// Threshold is the farm's: how many builders must agree. Verdicts carry
	// their own; this one is shown for sources no builder has answered yet
	// (0: not shown).
	Threshold int
	// Refresh is how often a page with builds running reloads itself
	// (default 3 seconds; it backs off while nothing changes).
	Refresh time.Duration
	// Log receives the errors of pages that could not be rendered (default:
	// discarded).
	Log *slog.Logger
	// Building, if set, says since when builder has been building job, by
	// its own word on the bus (the scheduler's Building): a queued builder
	// it names shows as building.
	Building func(builder lantern.Digest, job string) (time.Time, bool)
}

// Page sizes.
const (
	pageSources      = 50
	pageAttestations = 50
	// agreementWindow is how many of a builder's latest rebuilds its
	// agreement is counted over.
	agreementWindow = 200
	// maxLogShown is the most of a build log a page shows; the API serves
	// more (scheduler.MaxLogBytes).
	maxLogShown = 1 << 20
	// maxSourceAttestations is the most attestations of one source a source
	// page reads to find each builder's.
	maxSourceAttestations = 1000
)

//go:embed templates static
var files embed.FS

// handler serves the dashboard.
type handler struct {
	cfg    Config
	log    *slog.Logger
	pages  map[string]*template.Template
	badge  *template.Template
	static http.Handler
}

// New returns the dashboard's HTTP handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("dashboard: Config.Store is nil; give it the scheduler's store")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 3 * time.Second
	}
	h := &handler{cfg: cfg, log: cfg.Log, pages: map[string]*template.Template{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	for _, page := range []string{"home", "source", "artefact", "builders", "builder", "attestation", "diff", "notfound", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/parts.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", page, err)
		}
		h.pages[page] = t
	}
	badge, err := template.New("badge.svg").Funcs(funcs).ParseFS(files, "templates/badge.svg")
	if err != nil {
		return nil, fmt.Errorf("dashboard: badge template: %w", err)
	}
	h.badge = badge
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	h.static = http.StripPrefix("/static/", http.FileServerFS(static))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.serve(h.home))
	mux.HandleFunc("GET /sources/{source...}", h.serve(h.source))
	mux.HandleFunc("GET /source", h.serve(h.source))
	mux.HandleFunc("GET /artefacts/{digest}", h.serve(h.artefact))
	mux.HandleFunc("GET /builders", h.serve(h.builders))
	mux.HandleFunc("GET /builders/{id}", h.serve(h.builder))
	mux.HandleFunc("GET /attestations/{digest}", h.serve(h.attestation))
	mux.HandleFunc("GET /diffs/{a}/{b}", h.serve(h.diff))
	mux.HandleFunc("GET /badge/{source...}", h.serveBadge)
	mux.HandleFunc("GET /badge.svg", h.serveBadge)
	mux.HandleFunc("GET /static/", h.serveStatic)
	mux.HandleFunc("/", h.serve(func(w http.ResponseWriter, r *http.Request) (string, any, error) {
		return "", nil, notFound("There is no page %s here.", r.URL.Path)
	}))
	return mux, nil
}

// Mount returns a handler that sends the scheduler API's routes (/api/,
// /healthz, /metrics) to api and everything else to dash, for one server
// that serves both.
func Mount(api, dash http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/healthz", api)
	mux.Handle("/metrics", api)
	mux.Handle("/", dash)
	return mux
}

// pageError is an error shown to the reader as a page with its status.
type pageError struct {
	code int
	msg  string
}

func (e *pageError) Error() string { return e.msg }

// Code is the page's HTTP status.
func (e *pageError) Code() int { return e.code }

func notFound(format string, args ...any) error {
	return &pageError{code: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return &pageError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// securityHeaders are sent with every page: the only script that runs is
// the dashboard's own file, nothing loads from elsewhere, and no other site
// frames the pages.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

// layout is what every page's template gets: the page's own data and what
// the layout around it needs.
type layout struct {
	Title string
	// Query is the search box's text.
	Query string
	// Live says that builds are running: the page reloads itself every
	// Refresh seconds.
	Live bool
	// Refresh is the reload's period in whole seconds, for the pages read
	// without the script; RefreshMs in milliseconds, for the script.
	Refresh   int
	RefreshMs int64
	Page      any
}

// livePage is implemented by page data that knows whether builds it shows
// are still running.
type livePage interface{ live() bool }

// titled is implemented by page data with a title of its own.
type titled interface{ title() string }

// serve renders the page fn names, with the data it returns, or the error
// page.
func (h *handler) serve(fn func(w http.ResponseWriter, r *http.Request) (string, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, data, err := fn(w, r)
		h.render(w, r, name, data, err)
	}
}

// render writes the page name with data, or, if err is not nil, the page
// that says what went wrong.
func (h *handler) render(w http.ResponseWriter, r *http.Request, name string, data any, err error) {
	code := http.StatusOK
	if err != nil {
		var pe *pageError
		switch {
		case errors.As(err, &pe):
			code, name, data = pe.code, "notfound", pe
			if pe.code != http.StatusNotFound {
				name = "error"
			}
		case errors.Is(err, scheduler.ErrBadCursor):
			code, name, data = http.StatusBadRequest, "error", &pageError{http.StatusBadRequest, "That link to a next page is not one of this list's; start again from the first page."}
		default:
			if r.Context().Err() == nil {
				h.log.Error("dashboard page", "path", r.URL.Path, "error", err)
			}
			code, name, data = http.StatusInternalServerError, "error", &pageError{http.StatusInternalServerError, "The page could not be made; the scheduler's log says why."}
		}
	}
	l := layout{Query: r.URL.Query().Get("q"), Refresh: int(h.cfg.Refresh.Round(time.Second) / time.Second), RefreshMs: h.cfg.Refresh.Milliseconds(), Page: data}
	if l.Refresh < 1 {
		l.Refresh = 1
	}
	if lp, ok := data.(livePage); ok {
		l.Live = lp.live()
	}
	if t, ok := data.(titled); ok {
		l.Title = t.title()
	}
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, l); err != nil {
		h.log.Error("dashboard template", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	securityHeaders(hd)
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	// The files change only with the binary.
	w.Header().Set("Cache-Control", "public, max-age=300")
	h.static.ServeHTTP(w, r)
}

// URLs of the pages. Names are untrusted: every segment is escaped, and a
// name whose path would be cleaned into another (an empty, "." or ".."
// segment) is asked for with a query instead.

func sourceURL(name, version string) string {
	if p, ok := sourcePath(name, version); ok {
		return "/sources/" + p
	}
	return "/source?" + url.Values{"name": {name}, "version": {version}}.Encode()
}

func badgeURL(name, version string) string {
	if p, ok := sourcePath(name, version); ok {
		return "/badge/" + p + ".svg"
	}
	return "/badge.svg?" + url.Values{"name": {name}, "version": {version}}.Encode()
}

// sourcePath returns name@version as a path of escaped segments, and false
// if the path would not come back as the same name and version (the last @
// of a path ends the name).
func sourcePath(name, version string) (string, bool) {
	if strings.Contains(version, "@") {
		return "", false
	}
	segs := strings.Split(name+"@"+version, "/")
	for i, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", false
		}
		segs[i] = url.PathEscape(s)
	}
	p := strings.Join(segs, "/")
	if path.Clean("/"+p) != "/"+p {
		return "", false
	}
	return p, true
}

// sourceParam reads name@version from a page's path, or its name and
// version from the query.
func sourceParam(r *http.Request, suffix string) (name, version string, err error) {
	if s := r.PathValue("source"); s != "" {
		s, ok := strings.CutSuffix(s, suffix)
		at := strings.LastIndex(s, "@")
		if !ok || at <= 0 || at == len(s)-1 {
			return "", "", notFound("There is no page %s here: a source is named NAME@VERSION, as /sources/golang.org/x/tools/cmd/stringer@v0.30.0.", r.URL.Path)
		}
		return s[:at], s[at+1:], nil
	}
	q := r.URL.Query()
	name, version = q.Get("name"), q.Get("version")
	if name == "" || version == "" {
		return "", "", badRequest("Name a source with ?name=NAME&version=VERSION.")
	}
	return name, version, nil
}

func digestURL(kind string, d lantern.Digest) string { return "/" + kind + "/" + d.String() }

// digestParam reads a digest from a page's path: sha256:<hex>, or the hex
// alone.
func digestParam(r *http.Request, name, what string) (lantern.Digest, error) {
	s := r.PathValue(name)
	if !strings.HasPrefix(s, lantern.DigestPrefix) {
		s = lantern.DigestPrefix + s
	}
	d, err := lantern.ParseDigest(s)
	if err != nil {
		return d, badRequest("That is not the digest of %s: %v. Give sha256: and 64 lower-case hex digits.", what, err)
	}
	return d, nil
}

// pageParam reads a page's cursor.
func pageParam(r *http.Request, count int) scheduler.Page {
	return scheduler.Page{Count: count, Cursor: r.URL.Query().Get("cursor")}
}

// nextURL is the link to the next page of the list on r's page.
func nextURL(r *http.Request, next string) string {
	if next == "" {
		return ""
	}
	q := r.URL.Query()
	q.Set("cursor", next)
	return r.URL.Path + "?" + q.Encode()
}
