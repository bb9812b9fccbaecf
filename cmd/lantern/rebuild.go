package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/goproxy"
	"github.com/lanternfarm/lantern/recipes"
)

// upAPIFile is the file in DATA/up where a running 'lantern up' keeps its
// API's URL.
const upAPIFile = "api"

func rebuildCommand() command {
	return command{
		name:    "rebuild",
		args:    "NAME@VERSION | [PKG@VERSION] --published FILE...",
		summary: "claim a source, post it to a farm and wait for its builders' verdict",
		long: `Rebuild asks a farm to rebuild a source: it makes the source claim, signs
it, posts it, and with --wait follows the builders until the verdict, for CI
and people alike.

A Go command is named PKG@VERSION (golang.org/x/tools/cmd/stringer@v0.30.0).
Rebuild finds the module that holds PKG through the module proxy (--goproxy)
as the go command does, downloads its zip and checks it against the Go
checksum database (--gosumdb) itself, verifying the database's signed log,
before it signs anything: the claim's source is the zip's sha256 and h1:
hash, built with the go recipe. --go names the Go release that builds it
(default 1.24.4) and --platform the platforms, GOOS/GOARCH separated by
commas (default linux/amd64): one job builds them all, each its own label,
NAME-GOOS-GOARCH, with .exe for windows (stringer-linux-arm64,
stringer-windows-amd64.exe).

Any other source is a tarball: NAME@VERSION --fetch URL --build SPEC.json,
the generic recipe (see 'lantern claim sign --help' for the spec). Rebuild
downloads the tarball itself and claims its sha256. It fetches over https
only, unless --allow-http-fetch; the farm's builders fetch the same URL under
their own policy. The tarball may be at most the generic recipe's source
limit.

Published Go binaries are claimed with --published FILE, once per file
(a release's dist/*): rebuild reads each binary's build information (what
'go version -m FILE' shows) and claims what it says, PKG@VERSION given or
not: its package and module version, the Go release that built it, its
platform and its build tags (-tags, passed on in the order recorded), with
the file's sha256 as the published artefact of its label. Binaries of one
package version, Go release and tags make one claim, one label each; others,
claims of their own. The rebuild must then equal the published file: 0 only
when every label of every claim is reproduced and equal to it, 3 if one is
not. What a plain go install,
  GOTOOLCHAIN=goVERSION GOFLAGS=-trimpath CGO_ENABLED=0 go install PKG@VERSION,
cannot reproduce is refused before anything is signed or posted, naming
the file and why, and exits 2 as every input the command line gets wrong
does: a binary built with cgo, without -trimpath, from a version-control
checkout or a module directory rather than a module version, with a
replaced module, with other build settings (-gcflags, -race, GOAMD64=v3,
...), by a release candidate; a binary of another PKG@VERSION than the one
given; two binaries of one label. Binaries built with -ldflags (such as
-X main.version=...) are not refused, as they cannot be told: a binary
built with -trimpath does not record its -ldflags (go.dev/issue/52372), and
the go recipe applies none, so such a binary reads as a plain build and its
rebuild as a mismatch. Build releases without -ldflags to have them
reproduced (the version is in the build information: debug.ReadBuildInfo).
With --json and --published, rebuild prints {"status": ..., "claims": [...]},
one result per claim, status the worst of theirs.

The farm and the claim key default to those of a 'lantern up' running on
this machine (its DATA/up/api and DATA/up/claimer.key, whose password is
$LANTERN_PASSWORD, empty if unset, as up makes it), so that after 'make run'
nothing else needs to be given: without --data, $LANTERN_DATA, --farm and
--key, the up of the default data dir, else the up running with a data dir
of its own (make run's .lantern-demo), which names that dir in the default
one while it runs; only a running up's, with its files yours alone.

With --wait it shows each builder's progress (redrawn on a terminal, a line
per change otherwise), then the verdict per label and the dashboard's page.
It exits 0 when every label is reproduced (and is the published artefact,
where the claim gives one); 1 when one failed, or is not reproduced when the
time runs out, or every builder answered and too few agree; 3 on a mismatch
or a conflict; 2 when the command line is wrong. Without --wait it exits 0
once the farm accepted the claim.

Examples:
  lantern rebuild golang.org/x/tools/cmd/stringer@v0.30.0 --wait 10m
  lantern rebuild golang.org/x/tools/cmd/stringer@v0.30.0 --go 1.23.4 \
    --platform linux/amd64,linux/arm64,windows/amd64 --wait 20m
  lantern rebuild --published dist/hello-linux-amd64 --published dist/hello-windows-amd64.exe --wait 30m
  lantern rebuild example.org/hello@v1.2.0 --fetch https://example.org/hello-1.2.0.tar.gz \
    --build hello.build.json --farm https://farm.example --key ci.key --wait 30m --json`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			data := f.String("data", envOr("LANTERN_DATA", defaultDataDir()), "data `DIR` of a 'lantern up' on this machine, whose farm and claim key are the defaults; the checksum database's latest tree head is kept in DIR/sumdb (default $LANTERN_DATA, else ~/.local/share/lantern or, when no up runs there, that of the up running with another --data)")
			farm := f.String("farm", os.Getenv("LANTERN_API"), "the farm's API `URL`, such as https://farm.example (default $LANTERN_API, else the running 'lantern up' of --data)")
			key := f.String("key", os.Getenv("LANTERN_KEY"), "the claim's private key `FILE` (default $LANTERN_KEY, else DATA/up/claimer.key)")
			wait := f.Duration("wait", 0, "wait up to `DURATION` for the verdict, showing progress (default: post and exit)")
			asJSON := f.Bool("json", false, "print the result as JSON")
			out := f.String("o", "", "also write the signed claim's envelope to `FILE`")
			proxy := f.String("goproxy", goproxy.FirstProxy(os.Getenv("GOPROXY")), "the Go module proxy's `URL` (default the first proxy of $GOPROXY, else "+goproxy.DefaultProxy+")")
			sumdb := f.String("gosumdb", envOr("GOSUMDB", goproxy.DefaultSumDB), "the Go checksum database, as `GOSUMDB` names it: "+goproxy.DefaultSumDB+", or NAME+HASH+KEY [URL] (default $GOSUMDB)")
			fetch := f.String("fetch", "", "a tarball's `URL` (the generic recipe; with --build)")
			build := f.String("build", "", "the generic recipe's build spec, a JSON `FILE` (with --fetch)")
			var gob goBuildFlags
			gob.register(f)
			allowHTTP := f.Bool("allow-http-fetch", envBool("LANTERN_ALLOW_HTTP_FETCH"), "download --fetch over plain http too, not only https (default $LANTERN_ALLOW_HTTP_FETCH)")
			var published listFlag
			f.Var(&published, "published", "a published Go binary `FILE` to claim and compare the rebuild with; repeat it for each (see above)")
			return func(ctx context.Context, io *stdio, args []string) error {
				// Whose farm and claim key are the defaults: --data's up,
				// or the one running elsewhere when nothing says which. The
				// checksum database's tree head stays in --data's dir.
				up := *data
				if !flagGiven(f, "data") && os.Getenv("LANTERN_DATA") == "" && *farm == "" && *key == "" {
					up = runningUpData(io, *data)
				}
				if len(published) > 0 {
					switch {
					case gob != (goBuildFlags{}):
						return usagef("--go and --platform come from the --published binaries themselves; leave them out")
					case *fetch != "" || *build != "":
						return usagef("--published is for Go binaries a go install of PKG@VERSION makes, not a tarball built with --fetch and --build")
					case len(args) > 1:
						return usagef("rebuild --published takes at most one PKG@VERSION, which every binary must be; got %d arguments", len(args))
					case *wait < 0:
						return usagef("--wait %s: want a positive duration, such as 10m", *wait)
					}
					var pkg, version string
					if len(args) == 1 {
						var ok bool
						pkg, version, ok = strings.Cut(args[0], "@")
						if !ok || pkg == "" || version == "" || strings.Contains(version, "@") {
							return usagef("rebuild %q: want PKG@VERSION, such as golang.org/x/tools/cmd/stringer@v0.30.0", args[0])
						}
					}
					return rebuildPublished(ctx, io, published, pkg, version, rebuildTarget{
						data: *data, up: up, farm: *farm, key: *key, proxy: *proxy, sumdb: *sumdb, out: *out, wait: *wait, asJSON: *asJSON})
				}
				if len(args) != 1 {
					return usagef("rebuild takes one NAME@VERSION, such as golang.org/x/tools/cmd/stringer@v0.30.0; got %d arguments", len(args))
				}
				name, version, ok := strings.Cut(args[0], "@")
				if !ok || name == "" || version == "" || strings.Contains(version, "@") {
					return usagef("rebuild %q: want NAME@VERSION, such as golang.org/x/tools/cmd/stringer@v0.30.0", args[0])
				}
				if *wait < 0 {
					return usagef("--wait %s: want a positive duration, such as 10m", *wait)
				}
				goBuild, err := gob.parse()
				if err != nil {
					return err
				}
				var spec *lantern.BuildSpec
				switch {
				case goBuild != nil && *build != "":
					return usagef("--go and --platform are for a Go command (PKG@VERSION), not a tarball built with --build")
				case (*fetch == "") != (*build == ""):
					return usagef("a tarball needs both --fetch URL and --build SPEC.json; a Go command (PKG@VERSION) neither")
				case *build != "":
					if spec, err = readBuildSpec(*build); err != nil {
						return usagef("--build %s: %v", *build, err)
					}
					if err := checkFetchURL(*fetch, *allowHTTP); err != nil {
						return err
					}
				}
				api, err := farmURL(*farm, up)
				if err != nil {
					return err
				}
				k, err := claimKey(io, *key, up)
				if err != nil {
					return err
				}

				var c *lantern.SourceClaim
				if spec == nil {
					m, err := resolveGo(ctx, name, version, *proxy, *sumdb, *data)
					if err != nil {
						return err
					}
					c = goSource{Package: name, Module: *m, Build: goBuild}.claim(time.Now())
				} else {
					d, err := hashDownload(ctx, *fetch, *allowHTTP)
					if err != nil {
						return err
					}
					c = tarballClaim(name, version, *fetch, d, spec, time.Now())
				}
				if err := c.Validate(); err != nil {
					return usagef("%v", err)
				}
				b, err := signClaim(io, c, k, *out, "")
				if err != nil {
					return err
				}
				// The job is the claim's, whatever the farm answers: a farm
				// that named another job (one already reproduced, of another
				// Go release or platform) would have its verdict stand for
				// this claim's.
				want, err := claimJob(b, k.Public())
				if err != nil {
					return err
				}
				labels, err := jobLabels(want)
				if err != nil {
					return err
				}
				job, dup, err := postClaim(ctx, api, b)
				if err != nil {
					return err
				}
				if job != want.ID {
					return fmt.Errorf("post the claim: the farm at %s answered job %q, but the claim makes job %s: not this claim's job; ask the farm's operator", api, printable(truncateBytes([]byte(job))), want.ID)
				}
				what := "claim accepted"
				if dup {
					what = "already claimed"
				}
				fmt.Fprintf(io.err, "%s: %s (source %s); job %s\n", c.Source, what, c.Source.Digest, job)
				r := rebuildRun{api: api, source: c.Source.String(), job: job, claim: lantern.DigestOf(b), gob: c.Go, labels: labels}
				if *wait == 0 {
					return r.report(io, nil, *asJSON, errNotWaited)
				}
				return r.wait(ctx, io, *wait, *asJSON)
			}
		},
	}
}

// claimJob returns the job that a farm makes of the signed claim b, signed
// with pub's key: read back from b as the farm reads it, so that it is the
// farm's to the byte.
func claimJob(b []byte, pub *keys.Public) (lantern.Job, error) {
	env, err := dsse.Unmarshal(b)
	if err != nil {
		return lantern.Job{}, err
	}
	v, err := attest.Verify(env, pub)
	if err != nil {
		return lantern.Job{}, err
	}
	c, ok := v.Claim.(*lantern.SourceClaim)
	if !ok {
		return lantern.Job{}, fmt.Errorf("signed a %s claim, not a source claim", v.Claim.Kind())
	}
	return lantern.JobFromClaim(c, b, v.Signer), nil
}

// jobLabels returns the labels of the outputs that the newest version of
// job's recipe makes: the verdicts rebuild --wait waits for.
func jobLabels(job lantern.Job) ([]string, error) {
	r, err := recipes.Load(job.Recipe)
	if err != nil {
		return nil, err
	}
	return r.Labels(job), nil
}

// rebuildTarget is where rebuild posts and how it waits: the flags
// every kind of source shares.
type rebuildTarget struct {
	// data is --data's dir, up that of the up whose farm and claim key
	// are the defaults (runningUpData).
	data, up, farm, key, proxy, sumdb, out string
	wait                                   time.Duration
	asJSON                                 bool
}

// rebuildPublished claims the published Go binaries files (of pkg@version,
// where given): every file is read and checked, and each build's module
// resolved and checked against the checksum database, before any claim is
// signed or posted. It posts one claim per build (readPublished) and, with
// a wait, follows them all to their verdicts.
func rebuildPublished(ctx context.Context, io *stdio, files []string, pkg, version string, t rebuildTarget) error {
	builds, err := readPublished(files, pkg, version)
	if err != nil {
		return err
	}
	if t.out != "" && len(builds) > 1 {
		return usagef("-o writes one claim, and the --published binaries make %d (one per package version, Go release and build tags): leave out -o, or claim each build apart", len(builds))
	}
	api, err := farmURL(t.farm, t.up)
	if err != nil {
		return err
	}
	k, err := claimKey(io, t.key, t.up)
	if err != nil {
		return err
	}
	now := time.Now()
	modules := map[string]*goproxy.Module{}
	claims := make([]*lantern.SourceClaim, len(builds))
	for i, b := range builds {
		m := modules[b.source()]
		if m == nil {
			if m, err = resolveGo(ctx, b.Package, b.Version, t.proxy, t.sumdb, t.data); err != nil {
				return err
			}
			modules[b.source()] = m
		}
		if claims[i], err = b.claim(m, now); err != nil {
			return err
		}
		if err := claims[i].Validate(); err != nil {
			return usagef("%v", err)
		}
	}
	envelopes := make([][]byte, len(claims))
	jobs := make([]lantern.Job, len(claims))
	labels := make([][]string, len(claims))
	for i, c := range claims {
		if envelopes[i], err = signClaim(io, c, k, t.out, ""); err != nil {
			return err
		}
		// The job is the claim's, whatever the farm answers (see the
		// rebuild of one source).
		if jobs[i], err = claimJob(envelopes[i], k.Public()); err != nil {
			return err
		}
		if labels[i], err = jobLabels(jobs[i]); err != nil {
			return err
		}
	}
	runs := make([]rebuildRun, len(claims))
	for i, c := range claims {
		job, dup, err := postClaim(ctx, api, envelopes[i])
		if err != nil {
			return err
		}
		if job != jobs[i].ID {
			return fmt.Errorf("post the claim: the farm at %s answered job %q, but the claim makes job %s: not this claim's job; ask the farm's operator", api, printable(truncateBytes([]byte(job))), jobs[i].ID)
		}
		what := "claim accepted"
		if dup {
			what = "already claimed"
		}
		fmt.Fprintf(io.err, "%s (%s): %s (source %s); job %s\n", c.Source, c.Go, what, c.Source.Digest, job)
		runs[i] = rebuildRun{api: api, source: c.Source.String(), job: job, claim: lantern.DigestOf(envelopes[i]),
			gob: c.Go, labels: labels[i], published: c.Artefacts, files: builds[i].Files}
	}
	return waitAll(ctx, io, runs, t.wait, t.asJSON)
}

func envBool(name string) bool { b, _ := strconv.ParseBool(os.Getenv(name)); return b }

// upElsewhereFile is the file in the default data dir where a 'lantern up'
// running with another data dir (make run's .lantern-demo) names that dir,
// so that rebuild finds its farm and claim key with no --data; up removes
// it when it stops.
const upElsewhereFile = "running-up"

// runningUpData returns the data dir whose 'lantern up' gives rebuild its
// farm and claim key when none of --data, $LANTERN_DATA, --farm and --key
// is given: def, the default, if an up runs there or none runs elsewhere;
// else the data dir that an up running elsewhere named in def's
// upElsewhereFile. That name is taken only if it is an absolute, clean,
// printable path; if the file, the directory and its up's files are the
// user's own and writable by nobody else; and if an up holds that
// directory's lock, that is, runs there now: a name left by an up that was
// killed, of a directory someone else has made since, is not taken.
func runningUpData(io *stdio, def string) string {
	if upRunning(filepath.Join(def, "up")) {
		return def
	}
	file := filepath.Join(def, upElsewhereFile)
	if !ownFile(file) {
		return def
	}
	dir := upElsewhereName(file)
	if !plainPath(dir) || !ownDir(dir) {
		return def
	}
	up := filepath.Join(dir, "up")
	for _, p := range []string{up, filepath.Join(up, upAPIFile), filepath.Join(up, "claimer.key"), filepath.Join(up, upLockFile)} {
		if !ownFile(p) {
			return def
		}
	}
	if !upRunning(up) {
		return def
	}
	fmt.Fprintf(io.err, "the farm and claim key of the lantern up running with --data %s\n", printable(dir))
	return dir
}

// flagGiven says whether the command line set the flag name.
func flagGiven(f *flag.FlagSet, name string) bool {
	given := false
	f.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}

// farmURL returns the farm's API: the one given, else that of the 'lantern
// up' running with data dir data.
func farmURL(given, data string) (string, error) {
	if given != "" {
		if _, err := apiURL(given, ""); err != nil {
			return "", usagef("--farm %q: want the farm's API URL, such as https://farm.example or http://127.0.0.1:8080", given)
		}
		return given, nil
	}
	file := filepath.Join(data, "up", upAPIFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", usagef("no farm: give --farm URL (or $LANTERN_API), or start 'lantern up' (with --data %s, or give rebuild its --data)", data)
	}
	if err != nil {
		return "", err
	}
	api := strings.TrimSpace(string(b))
	if _, err := apiURL(api, ""); err != nil {
		return "", fmt.Errorf("%s: %q is not a farm's URL; remove the file, or give --farm", printable(file), api)
	}
	// A left-over API file (an up killed) may name a port that anyone on
	// the machine can listen on now: only a running up's is taken.
	if !upRunning(filepath.Join(data, "up")) {
		return "", usagef("%s is left from a lantern up that no longer runs (it did not stop cleanly): start 'lantern up --data %s' again, or give --farm URL", printable(file), printable(data))
	}
	return api, nil
}

// claimKey loads the claim key: the one given, else the claim key of
// 'lantern up' in data, with $LANTERN_PASSWORD or, as up makes it when
// that is unset, the empty password.
func claimKey(io *stdio, given, data string) (*keys.Private, error) {
	if given != "" {
		return loadPrivate(io, given)
	}
	file := filepath.Join(data, "up", "claimer.key")
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usagef("no claim key: give --key FILE (or $LANTERN_KEY), or run 'lantern up', which makes DATA/up/claimer.key (no %s)", file)
	}
	if err != nil {
		return nil, fmt.Errorf("read the claim key: %w", err)
	}
	k, err := keys.ParsePrivate(b, []byte(os.Getenv(passwordEnv)))
	if errors.Is(err, keys.ErrPassword) {
		return nil, fmt.Errorf("%s: %w: set %s to the password lantern up was started with", file, err, passwordEnv)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return k, nil
}

// goSource is a Go command resolved to its module, checked against the
// checksum database: what a go-recipe claim says.
type goSource struct {
	Package string
	Module  goproxy.Module
	// Build is the Go release and platforms (--go, --platform); nil: the
	// go recipe's defaults.
	Build *lantern.GoBuild
}

// claim returns the source claim of g, made at t.
func (g goSource) claim(t time.Time) *lantern.SourceClaim {
	return &lantern.SourceClaim{
		Source: lantern.Source{Name: g.Package, Version: g.Module.Version, Digest: g.Module.Zip, GoSum: g.Module.Sum},
		Fetch:  g.Module.URL,
		Recipe: "go",
		Go:     g.Build,
		Time:   t.UTC().Truncate(time.Second),
	}
}

// tarballClaim returns the source claim of a tarball whose sha256 is d,
// built with the generic recipe by spec.
func tarballClaim(name, version, fetch string, d lantern.Digest, spec *lantern.BuildSpec, t time.Time) *lantern.SourceClaim {
	return &lantern.SourceClaim{
		Source: lantern.Source{Name: name, Version: version, Digest: d},
		Fetch:  fetch,
		Recipe: lantern.RecipeGeneric,
		Build:  spec,
		Time:   t.UTC().Truncate(time.Second),
	}
}

func resolveGo(ctx context.Context, pkg, version, proxy, gosumdb, data string) (*goproxy.Module, error) {
	db, err := goproxy.NewSumDB(gosumdb, proxy, filepath.Join(data, "sumdb"), nil)
	if err != nil {
		return nil, usagef("--gosumdb: %v", err)
	}
	r, err := goproxy.NewResolver(proxy, db, nil, "")
	if err != nil {
		return nil, usagef("--goproxy: %v", err)
	}
	m, err := r.Resolve(ctx, pkg, version)
	switch {
	case errors.Is(err, goproxy.ErrInvalid):
		return nil, usagef("%v; a tarball is claimed with --fetch URL --build SPEC.json", err)
	case errors.Is(err, goproxy.ErrNoModule):
		return nil, usagef("%v", err)
	}
	return m, err
}

// checkFetchURL checks a tarball's URL: https, or http with allowHTTP.
func checkFetchURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return usagef("--fetch %q: want the tarball's https URL", raw)
	case u.Scheme == "http" && !allowHTTP:
		return usagef("--fetch %q: plain http; give an https URL, or --allow-http-fetch (the farm's builders must allow it too)", raw)
	}
	return nil
}

// hashDownload downloads the tarball at raw and returns its sha256. It
// reads at most the generic recipe's source limit, the most a build of
// it may fetch, and follows redirects only as checkFetchURL allows.
func hashDownload(ctx context.Context, raw string, allowHTTP bool) (lantern.Digest, error) {
	r, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		return lantern.Digest{}, err
	}
	max := r.Generic.Limits.SourceMiB << 20
	hc := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return checkFetchURL(req.URL.String(), allowHTTP)
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %w", raw, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %w", raw, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %s", raw, resp.Status)
	}
	if resp.ContentLength > max {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %d bytes, more than the generic recipe's source limit of %d MiB", raw, resp.ContentLength, max>>20)
	}
	d, n, err := lantern.DigestReader(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %w", raw, err)
	}
	if n > max {
		return lantern.Digest{}, fmt.Errorf("fetch %s: more than the generic recipe's source limit of %d MiB", raw, max>>20)
	}
	return d, nil
}
