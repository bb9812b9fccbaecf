package recipes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/lanternfarm/lantern"
)

// GoSpec names what the go recipe builds: a main package of a module
// version, for a target, with a Go version.
type GoSpec struct {
	// Module and Version are the module version, as in go.sum
	// (golang.org/x/tools, v0.30.0): the source.
	Module  string `json:"module"`
	Version string `json:"version"`
	// Package is the main package's import path, in Module
	// (golang.org/x/tools/cmd/stringer).
	Package string `json:"package"`
	// GoVersion is the Go release that builds it ("1.24.4"). Empty: the
	// recipe's default.
	GoVersion string `json:"goVersion,omitempty"`
	// GOOS and GOARCH are the target. Empty: the recipe's defaults.
	GOOS   string `json:"goos,omitempty"`
	GOARCH string `json:"goarch,omitempty"`
	// Tags are the build tags, passed as -tags in this order (the go
	// command records them so in the binary); only a recipe whose command
	// has {tagsFlag} applies them (go/v2 on).
	Tags []string `json:"tags,omitempty"`
	// SourceDigest and SourceGoSum, where set, are what a source claim says
	// the module's zip is: PrepareGo refuses a module that differs.
	SourceDigest lantern.Digest `json:"sourceDigest,omitzero"`
	SourceGoSum  string         `json:"sourceGoSum,omitempty"`
}

// GoInputs are the inputs of one go build, fetched and checked outside the
// sandbox by PrepareGo and checked again by VerifyGo.
type GoInputs struct {
	// Spec is the build, the recipe's defaults filled in.
	Spec GoSpec `json:"spec"`
	// Recipe is the recipe PrepareGo followed; GoLLB insists on the same.
	Recipe lantern.Recipe `json:"recipe"`
	// Source is the module zip of Spec.Module@Spec.Version.
	Source lantern.Source `json:"source"`
	// Toolchain is the golang.org/toolchain module that builds it.
	Toolchain GoToolchain `json:"toolchain"`
	// Modules are every module version the build reads from the file
	// GOPROXY, the source's module included, sorted by path and version.
	Modules []GoModule `json:"modules"`
	// ProxyDir is the file GOPROXY: Modules' .mod, .zip and .info files and
	// a list per module, laid out as a module cache's cache/download.
	ProxyDir string `json:"proxyDir"`
	// HostArch is the architecture of the machine the sandbox runs on, and
	// of the toolchain.
	HostArch string `json:"hostArch"`
	// Limits bound the build (PrepareOptions.Limits, defaults filled in).
	Limits Limits `json:"-"`
}

// GoToolchain is the toolchain module and its unpacked tree, which the
// sandbox mounts as its GOROOT.
type GoToolchain struct {
	Module  string `json:"module"`
	Version string `json:"version"`
	// Zip is the SHA-256 of the module zip, Sum its h1: hash, which the go
	// command checked against the checksum database.
	Zip lantern.Digest `json:"zip"`
	Sum string         `json:"sum"`
	// Tree is the h1: hash (dirhash.Hash1, names prefixed with
	// module@version) of Dir as mounted: the zip's files, and a go.mod beside
	// each _go.mod, as the go command's own toolchain switch leaves it.
	Tree string `json:"tree"`
	// Dir is the unpacked module, its commands made executable.
	Dir string `json:"dir"`

	// snapshot is what PrepareGo read of Dir, which lets VerifyGo skip
	// the files unchanged since (see treeHashSince).
	snapshot *treeSnapshot
	// zipStamp, where set, is the stamp the zip had before it was hashed
	// to Zip and checked against Sum: a later check in this process
	// (checkedToolchains) takes Zip and Tree from here for a zip that
	// still has it.
	zipStamp *fileStamp
	// fetchedStamps, of a toolchain not checked yet (PrepareOptions.Fetched),
	// is the stampsDigest of its files before it was sent to BuildKit.
	fetchedStamps string
}

// sourceKey names tc's tree for BuildKit's copy of it (llb.SharedKeyHint):
// the module's checked h1: hash and the stamps of every file, as the check
// found them (as the send found them, for a toolchain not checked yet).
// BuildKit reuses a copy, sending only what changed by size and time, only
// under the same key: for files with the very stamps that the check
// vouched for, unchanged since — so never a copy of files that were
// changed and put back while they were sent or checked. Where nothing
// vouches for every file, the key is new: a full copy.
func (tc GoToolchain) sourceKey() string {
	stamps := tc.fetchedStamps
	if tc.snapshot != nil {
		stamps = tc.snapshot.stampsKey()
	}
	if stamps == "" {
		stamps = "unvouched " + rand.Text()
	}
	return "go-toolchain " + tc.Module + "@" + tc.Version + " " + tc.Sum + " " + stamps
}

// GoModule is one module version the build reads.
type GoModule struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	// Zip is the SHA-256 of the module zip and Sum its h1: hash; both are
	// zero when the build reads only the module's go.mod.
	Zip lantern.Digest `json:"zip,omitzero"`
	Sum string         `json:"sum,omitempty"`
	// Mod is the SHA-256 of its go.mod and ModSum the h1: hash go.sum
	// lists for it (path version/go.mod).
	Mod    lantern.Digest `json:"mod"`
	ModSum string         `json:"modSum"`
}

func (m GoModule) String() string { return m.Path + "@" + m.Version }

// PrepareOptions are PrepareGo's settings.
type PrepareOptions struct {
	// Go is the go command that downloads the module and the toolchain.
	// Empty: "go" on the PATH.
	Go string
	// ModCache is the Go module cache to download into (GOMODCACHE). The go
	// command locks what it writes there, so builds may share one. Empty:
	// dir/modcache.
	ModCache string
	// Log receives what PrepareGo does, at debug level. Nil: nothing.
	Log *slog.Logger
	// Limits bound the build: its time (DefaultGoLimits.Time if zero) and
	// the size of its scratch tmpfs, which holds the build cache and the
	// unpacked modules (DefaultGoLimits.Tmp if zero). They are the
	// builder's, not the recipe's: they change no output.
	Limits Limits
	// Fetched, if set, is called by PrepareGoToolchain with the toolchain
	// once it is downloaded and its execute bits restored, before it is
	// checked: a worker sends it to BuildKit (ToolchainSend) while it is
	// checked and the rest prepared. Its key in BuildKit (sourceKey) is
	// made of the stamps its files had before the send, so that a build
	// reuses the copy only if the check vouches for the same stamps.
	Fetched func(tc GoToolchain)
	// Toolchain, if set, is the toolchain PrepareGoToolchain prepared and
	// checked for the same recipe and spec: PrepareGo takes it instead of
	// checking the toolchain again (VerifyGo checks it before the build
	// all the same).
	Toolchain *GoToolchain
	// Scratch is where the offline dry runs make their new module caches,
	// each of which unpacks every module the build reads: thousands of
	// files, created and removed in a second, which on a disk cost seconds
	// of kernel time. Empty: a new directory in /dev/shm (a tmpfs) where
	// that can be made, else dir. A dry run that fails in /dev/shm (which
	// may be full) is run again in dir.
	Scratch string
}

// DefaultGoLimits are the go recipe's limits where PrepareOptions sets none.
var DefaultGoLimits = Limits{Time: 2 * time.Hour, Tmp: 8 << 30}

// PrepareGo fetches the inputs of spec outside the sandbox and checks them,
// following r, the go recipe:
//
//  1. the go command ("go mod download", with GOPROXY and GOSUMDB as the
//     environment has them, but never "direct" nor a version-control tool,
//     in an environment of its own; GOSUMDB=off is refused) downloads the
//     module into the module cache and checks it against the checksum
//     database; PrepareGo hashes the zip and refuses one that is not what
//     spec's SourceDigest or SourceGoSum claim;
//  2. it downloads the toolchain module the same way, and restores the
//     execute bits and go.mod files of its tree as the go command's own
//     toolchain switch does; the tree must then hash to the zip's files;
//  3. the toolchain itself resolves the build, "go install -n
//     PACKAGE@VERSION" in the recipe's environment with the network, which
//     downloads and checks every module the build needs; then again
//     offline, from the module cache as a file GOPROXY, which names exactly
//     the modules it reads;
//  4. it lays those out as a file GOPROXY in dir/goproxy, listing for each
//     module only the versions the build reads (the latest version of the
//     source's module, which go install looks up for retractions, is then
//     the version being built), and checks with one more offline dry run
//     that the build needs nothing else.
//
// Everything it records is hashed from the files that will be mounted.
// dir belongs to this call: PrepareGo replaces dir/goproxy.
func PrepareGo(ctx context.Context, r *Recipe, spec GoSpec, dir string, opts PrepareOptions) (*GoInputs, error) {
	p, err := newPreparer(r, spec, dir, opts)
	if err != nil {
		return nil, err
	}
	in, err := p.prepare(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("prepare go build %s@%s: %w", p.spec.Package, p.spec.Version, err)
	}
	return in, nil
}

// PrepareGoToolchain is step 2 of PrepareGo alone: it downloads the
// toolchain that spec's build needs, following r, and checks it the same
// way. It needs nothing of the source, so a worker runs it while it looks
// up the source's module, and sends the toolchain to BuildKit
// (ToolchainSend) while PrepareGo, given it in PrepareOptions.Toolchain,
// does the rest. dir is a working directory of its own.
func PrepareGoToolchain(ctx context.Context, r *Recipe, spec GoSpec, dir string, opts PrepareOptions) (GoToolchain, error) {
	if spec.Module == "" {
		spec.Module = spec.Package // not known yet, and not needed
	}
	p, err := newPreparer(r, spec, dir, opts)
	if err != nil {
		return GoToolchain{}, err
	}
	tc, err := p.prepareToolchain(ctx)
	if err != nil {
		return GoToolchain{}, fmt.Errorf("prepare the go%s toolchain: %w", p.spec.GoVersion, err)
	}
	return tc, nil
}

func newPreparer(r *Recipe, spec GoSpec, dir string, opts PrepareOptions) (*preparer, error) {
	if r == nil || r.Go == nil {
		return nil, errors.New("prepare go build: want the go recipe")
	}
	spec, err := resolveSpec(r.Go, spec)
	if err != nil {
		return nil, fmt.Errorf("prepare go build: %w", err)
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("prepare go build %s: the toolchain runs in a Linux sandbox, and on this machine, which is %s", spec.Package, runtime.GOOS)
	}
	p := &preparer{r: r, spec: spec, log: opts.Log, limits: opts.Limits, fetched: opts.Fetched}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("prepare go build %s: %w", spec.Package, err)
	}
	p.modCache = opts.ModCache
	if p.modCache == "" {
		p.modCache = filepath.Join(p.dir, "modcache")
	}
	if p.modCache, err = filepath.Abs(p.modCache); err != nil {
		return nil, fmt.Errorf("prepare go build %s: %w", spec.Package, err)
	}
	p.goCmd = opts.Go
	if p.goCmd == "" {
		p.goCmd = "go"
	}
	if p.goCmd, err = exec.LookPath(p.goCmd); err != nil {
		return nil, fmt.Errorf("prepare go build %s: the go command downloads and checks the modules: %w", spec.Package, err)
	}
	return p, nil
}

// setUp makes the preparer's directories and reads the host's go env.
func (p *preparer) setUp(ctx context.Context) (cleanup func(), err error) {
	for _, d := range []string{p.dir, p.modCache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	p.work = filepath.Join(p.dir, "tmp")
	if err := removeAll(p.work); err != nil {
		return nil, err
	}
	if err := os.Mkdir(p.work, 0o755); err != nil {
		return nil, err
	}
	cleanup = func() { removeAll(p.work) }
	if err := p.readHostEnv(ctx); err != nil {
		cleanup()
		return nil, err
	}
	return cleanup, nil
}

// prepareToolchain downloads the toolchain module and checks it.
func (p *preparer) prepareToolchain(ctx context.Context) (GoToolchain, error) {
	tcMod, tcVersion, err := p.toolchainModule()
	if err != nil {
		return GoToolchain{}, err
	}
	fetched := p.fetched
	if prev := checkedToolchains.get(p.modCache, tcMod, tcVersion); fetched != nil && prev != nil {
		// Checked for an earlier build: sent from where it was, with the
		// stamps its files have now, while the go command looks it up.
		if stamps, err := treeStamps(prev.Dir); err == nil && stamps != "" {
			fetched(GoToolchain{Module: tcMod, Version: tcVersion, Sum: prev.Sum, Dir: prev.Dir, fetchedStamps: stamps})
			fetched = nil
		}
	}
	if p.hostEnv == nil {
		cleanup, err := p.setUp(ctx)
		if err != nil {
			return GoToolchain{}, err
		}
		defer cleanup()
	}
	tc, err := p.download(ctx, tcMod+"@"+tcVersion)
	if err != nil {
		return GoToolchain{}, err
	}
	start := time.Now()
	checked, err := p.toolchain(tc, fetched)
	if err != nil {
		return GoToolchain{}, err
	}
	p.log.Debug("checked the toolchain", "module", tc.Path+"@"+tc.Version, "tree", checked.Tree, "took", time.Since(start))
	return checked, nil
}

type preparer struct {
	r        *Recipe
	spec     GoSpec
	log      *slog.Logger
	dir      string
	modCache string
	goCmd    string
	work     string            // dir/tmp, removed at the end
	scratch  string            // the offline dry runs' module caches, removed at the end
	hostEnv  map[string]string // GOPROXY, GOSUMDB and GOPATH of the environment
	limits   Limits
	fetched  func(GoToolchain) // PrepareOptions.Fetched
}

func (p *preparer) prepare(ctx context.Context, opts PrepareOptions) (*GoInputs, error) {
	cleanup, err := p.setUp(ctx)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	// 1. The source.
	src, err := p.download(ctx, p.spec.Module+"@"+p.spec.Version)
	if err != nil {
		return nil, err
	}
	source, err := checkSource(p.spec, src)
	if err != nil {
		return nil, err
	}

	// 2. The toolchain.
	in := &GoInputs{Spec: p.spec, Recipe: p.r.Ref(), Source: source, HostArch: runtime.GOARCH, Limits: p.limits}
	if in.Limits.Time <= 0 {
		in.Limits.Time = DefaultGoLimits.Time
	}
	if in.Limits.Tmp <= 0 {
		in.Limits.Tmp = DefaultGoLimits.Tmp
	}
	tcMod, tcVersion, err := p.toolchainModule()
	if err != nil {
		return nil, err
	}
	if tc := opts.Toolchain; tc != nil && tc.Module == tcMod && tc.Version == tcVersion && tc.snapshot != nil {
		in.Toolchain = *tc // checked by PrepareGoToolchain, and again by VerifyGo
	} else if in.Toolchain, err = p.prepareToolchain(ctx); err != nil {
		return nil, err
	}

	// 3. What the build reads. Each of the three dry runs proves its own
	// part, and none can stand in for another:
	//   - "resolve", online, with the environment's GOPROXY and GOSUMDB and
	//     the shared module cache: every module the build needs is
	//     downloaded and checked against the checksum database (the zips'
	//     checked h1: hashes are what layOut compares with);
	//   - "resolve offline", from the shared module cache as a file GOPROXY
	//     into an empty module cache, as the sandbox does: what lands there
	//     is exactly what the build reads (the online run, whose cache is
	//     warm, cannot tell);
	//   - "check the file GOPROXY", after layOut, from the file GOPROXY the
	//     sandbox will mount into another empty module cache: that it
	//     needs nothing else (version lists cut down to what was read
	//     resolve the same), and reads all of it.
	// The two offline runs need empty module caches and fill them with the
	// unpacked modules: they go in the scratch directory, a tmpfs where
	// there is one.
	if err := p.dryRun(ctx, in, "resolve", p.work, "", filepath.Join(p.modCache, "cache", "download"), true); err != nil {
		return nil, err
	}
	p.scratch = p.scratchDir(opts.Scratch)
	defer removeAll(p.scratch)
	offline, err := p.offlineDryRun(ctx, in, "resolve offline", "offline-modcache", filepath.Join(p.modCache, "cache", "download"))
	if err != nil {
		return nil, err
	}
	read, err := scanDownloads(filepath.Join(offline, "cache", "download"))
	if err != nil {
		return nil, err
	}
	// Room on the tmpfs for the next one.
	if err := removeAll(offline); err != nil {
		return nil, err
	}

	// 4. The file GOPROXY.
	in.ProxyDir = filepath.Join(p.dir, "goproxy")
	start := time.Now()
	if in.Modules, err = p.layOut(read, in.ProxyDir); err != nil {
		return nil, err
	}
	p.log.Debug("laid out the file GOPROXY", "dir", in.ProxyDir, "modules", len(in.Modules), "took", time.Since(start))
	if err := checkPackageModule(p.spec, in.Modules); err != nil {
		return nil, err
	}
	check, err := p.offlineDryRun(ctx, in, "check the file GOPROXY", "check-modcache", in.ProxyDir)
	if err != nil {
		return nil, err
	}
	reread, err := scanDownloads(filepath.Join(check, "cache", "download"))
	if err != nil {
		return nil, err
	}
	if want := reads(in.Modules); !slices.Equal(reread, want) {
		return nil, fmt.Errorf("the build read %v from the file GOPROXY, which holds %v: the resolution is not stable", reread, want)
	}
	return in, nil
}

// LookupGoModules returns those of mods that the module proxy has at
// version, in their order: "go list -m" of each, all at the same time, in
// PrepareGo's environment (opts' go command and module cache). It checks
// nothing, which PrepareGo does: it lets a caller that knows a package but
// not its module skip the candidates that do not exist, each a round trip
// to the proxy. A module whose
// lookup failed for another reason is left out too; the error is for a go
// command that could not run at all.
func LookupGoModules(ctx context.Context, mods []string, version string, opts PrepareOptions) ([]string, error) {
	p := &preparer{log: opts.Log, modCache: opts.ModCache, goCmd: opts.Go}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.goCmd == "" {
		p.goCmd = "go"
	}
	var err error
	if p.goCmd, err = exec.LookPath(p.goCmd); err != nil {
		return nil, fmt.Errorf("look up modules: %w", err)
	}
	if p.modCache != "" {
		if p.modCache, err = filepath.Abs(p.modCache); err != nil {
			return nil, fmt.Errorf("look up modules: %w", err)
		}
	}
	// An empty directory: no go.mod around.
	if p.work, err = os.MkdirTemp("", "lantern-lookup-"); err != nil {
		return nil, fmt.Errorf("look up modules: %w", err)
	}
	defer os.RemoveAll(p.work)
	if err := p.readHostEnv(ctx); err != nil {
		return nil, fmt.Errorf("look up modules: %w", err)
	}
	found := make([]bool, len(mods))
	var wg sync.WaitGroup
	for i, mod := range mods {
		if module.Check(mod, version) != nil {
			continue
		}
		wg.Go(func() {
			_, err := p.runHostGo(ctx, "list", "-m", "-json", mod+"@"+version)
			found[i] = err == nil
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []string
	for i, mod := range mods {
		if found[i] {
			out = append(out, mod)
		}
	}
	return out, nil
}

// resolveSpec fills in the recipe's defaults and checks every field.
func resolveSpec(p *GoParams, s GoSpec) (GoSpec, error) {
	if s.GoVersion == "" {
		s.GoVersion = p.DefaultGoVersion
	}
	s.GoVersion = strings.TrimPrefix(s.GoVersion, "go")
	if s.GOOS == "" {
		s.GOOS = p.DefaultGOOS
	}
	if s.GOARCH == "" {
		s.GOARCH = p.DefaultGOARCH
	}
	if err := module.CheckPath(s.Module); err != nil {
		return s, fmt.Errorf("module %q: %v", s.Module, err)
	}
	if !semver.IsValid(s.Version) || semver.Canonical(s.Version) != strings.TrimSuffix(s.Version, "+incompatible") {
		return s, fmt.Errorf("version %q: want a canonical semantic version such as v1.2.3, as go.sum has it", s.Version)
	}
	if err := module.Check(s.Module, s.Version); err != nil {
		return s, fmt.Errorf("version %q: %v", s.Version, err)
	}
	if err := module.CheckImportPath(s.Package); err != nil {
		return s, fmt.Errorf("package %q: %v", s.Package, err)
	}
	if s.Package != s.Module && !strings.HasPrefix(s.Package, s.Module+"/") {
		return s, fmt.Errorf("package %q: not in module %s", s.Package, s.Module)
	}
	if !goVersionRE.MatchString(s.GoVersion) {
		return s, fmt.Errorf("goVersion %q: want a Go release such as 1.24.4", s.GoVersion)
	}
	if !goosArchRE.MatchString(s.GOOS) || !goosArchRE.MatchString(s.GOARCH) {
		return s, fmt.Errorf("goos/goarch %q/%q: want values of GOOS and GOARCH such as linux/amd64", s.GOOS, s.GOARCH)
	}
	if err := lantern.CheckGoTags(s.Tags); err != nil {
		return s, fmt.Errorf("tags: %w", err)
	}
	if len(s.Tags) > 0 && !p.appliesTags() {
		return s, errors.New("tags: this version of the go recipe builds without build tags; a build with -tags needs go/v2 or later")
	}
	if s.SourceGoSum != "" && !strings.HasPrefix(s.SourceGoSum, "h1:") {
		return s, fmt.Errorf("sourceGoSum %q: want Go's h1: hash, as in go.sum", s.SourceGoSum)
	}
	return s, nil
}

// readHostEnv asks the go command for the proxy, the checksum database and
// GOPATH that the environment and the user's go env file give, and refuses
// a switched-off checksum database: it is what the source and every
// dependency are checked against. It keeps the proxy list without its
// "direct" entries (proxyOnly).
func (p *preparer) readHostEnv(ctx context.Context) error {
	out, err := p.runHostGo(ctx, "env", "-json", "GOPROXY", "GOSUMDB", "GOPATH")
	if err != nil {
		return err
	}
	var env map[string]string
	if err := json.Unmarshal(out, &env); err != nil {
		return fmt.Errorf("go env: %w", err)
	}
	if env["GOSUMDB"] == "off" {
		return errors.New("GOSUMDB is off: the go recipe checks every module against the Go checksum database; unset GOSUMDB or set it to sum.golang.org")
	}
	proxy, err := proxyOnly(env["GOPROXY"])
	if err != nil {
		return err
	}
	env["GOPROXY"] = proxy
	p.hostEnv = env
	return nil
}

// proxyOnly returns the list of GOPROXY without its "direct" entries: the
// go recipe reaches modules through a proxy only, never from their
// origins, whose paths a claim chooses, with version-control tools.
func proxyOnly(goproxy string) (string, error) {
	var out strings.Builder
	first, sep := "", ""
	for rest := goproxy; rest != ""; {
		entry, next := rest, ""
		if i := strings.IndexAny(rest, ",|"); i >= 0 {
			entry, next, rest = rest[:i], rest[i:i+1], rest[i+1:]
		} else {
			rest = ""
		}
		if entry = strings.TrimSpace(entry); entry == "" || entry == "direct" {
			continue
		}
		if first == "" {
			first = entry
		}
		out.WriteString(sep + entry)
		sep = next
	}
	if first != "" && first != "off" {
		return out.String(), nil
	}
	return "", fmt.Errorf("GOPROXY %q names no proxy: the go recipe downloads modules through one, never directly from their origins; unset it or set it to https://proxy.golang.org", goproxy)
}

// lockedDown are the settings of every go command the go recipe runs that
// keep it to GOPROXY and GOSUMDB: no version-control tool (GOVCS), and no
// module that skips the proxy or the checksum database, whatever the
// environment or a go env file says.
var lockedDown = map[string]string{"GOVCS": "*:off", "GONOPROXY": "", "GONOSUMDB": "", "GOPRIVATE": "", "GOINSECURE": ""}

// hostNetworkEnv are the variables of the process's environment that say
// how to reach GOPROXY and GOSUMDB: the go commands outside the sandbox get
// them, and nothing else of the network's.
var hostNetworkEnv = []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"}

// hostGoEnv is the environment of the go command outside the sandbox, made
// anew: of the process's, only PATH, HOME, TMPDIR, XDG_CONFIG_HOME (where
// the go env file is) and hostNetworkEnv (no LANTERN_ variable, no secret);
// the module cache, GOFLAGS and lockedDown set; and once readHostEnv has
// read them, the proxy (without "direct") and checksum database it found,
// and nothing else from the user's go env file (GOENV=off).
func (p *preparer) hostGoEnv() []string {
	keep := append([]string{"PATH", "HOME", "TMPDIR", "XDG_CONFIG_HOME"}, hostNetworkEnv...)
	if p.hostEnv == nil {
		keep = append(keep, "GOENV", "GOPROXY", "GOSUMDB", "GOPATH") // for readHostEnv's go env
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); slices.Contains(keep, k) {
			env = append(env, kv)
		}
	}
	env = append(env,
		"GOFLAGS=-modcacherw",
		"GOMODCACHE="+p.modCache,
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		"GO111MODULE=on",
	)
	for _, k := range slices.Sorted(maps.Keys(lockedDown)) {
		env = append(env, k+"="+lockedDown[k])
	}
	if p.hostEnv != nil {
		env = append(env,
			"GOENV=off",
			"GOPROXY="+p.hostEnv["GOPROXY"],
			"GOSUMDB="+p.hostEnv["GOSUMDB"],
			"GOPATH="+p.hostEnv["GOPATH"],
		)
	}
	return env
}

func (p *preparer) runHostGo(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.goCmd, args...)
	cmd.Env = p.hostGoEnv()
	cmd.Dir = p.work // empty: no go.mod around
	return run(cmd, p.log)
}

// run runs cmd and returns its standard output; its standard error goes
// into the error.
func run(cmd *exec.Cmd, log *slog.Logger) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	log.Debug("ran", "cmd", strings.Join(cmd.Args, " "), "dir", cmd.Dir, "took", time.Since(start), "err", err)
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 4096 {
			msg = "..." + msg[len(msg)-4096:]
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// modDownload is what "go mod download -json" says of a module.
type modDownload struct {
	Path, Version, Error, Info, GoMod, Zip, Dir, Sum, GoModSum string
}

func (p *preparer) download(ctx context.Context, modVersion string) (*modDownload, error) {
	out, runErr := p.runHostGo(ctx, "mod", "download", "-json", modVersion)
	var m modDownload
	if err := json.Unmarshal(out, &m); err != nil {
		if runErr != nil {
			return nil, runErr
		}
		return nil, fmt.Errorf("go mod download %s: %w", modVersion, err)
	}
	if m.Error != "" {
		return nil, fmt.Errorf("go mod download %s: %s", modVersion, m.Error)
	}
	if runErr != nil {
		return nil, runErr
	}
	if m.Zip == "" || m.Sum == "" || m.GoMod == "" {
		return nil, fmt.Errorf("go mod download %s: no zip or no checksum in its report", modVersion)
	}
	return &m, nil
}

// checkSource hashes the source's zip, checks it against the h1: hash the go
// command checked, and against what the claim says.
func checkSource(spec GoSpec, m *modDownload) (lantern.Source, error) {
	input := m.Path + "@" + m.Version + " zip"
	digest, _, err := lantern.DigestFile(m.Zip)
	if err != nil {
		return lantern.Source{}, err
	}
	sums, err := zipSums(m.Zip)
	if err != nil {
		return lantern.Source{}, err
	}
	if got := hash1(sums); got != m.Sum {
		return lantern.Source{}, &DigestError{Input: input, Path: m.Zip, ExpectedSum: m.Sum, ActualSum: got,
			Hint: "the module cache's zip is not the one the go command checked; remove it and try again"}
	}
	if !spec.SourceDigest.IsZero() && spec.SourceDigest != digest {
		return lantern.Source{}, &DigestError{Input: input, Path: m.Zip, Expected: spec.SourceDigest, Actual: digest,
			Hint: "the module from GOPROXY, checked against the checksum database, is not the source the claim names"}
	}
	if spec.SourceGoSum != "" && spec.SourceGoSum != m.Sum {
		return lantern.Source{}, &DigestError{Input: input, Path: m.Zip, ExpectedSum: spec.SourceGoSum, ActualSum: m.Sum,
			Hint: "the checksum database's hash of the module is not the one the claim names"}
	}
	return lantern.Source{Name: spec.Module, Version: spec.Version, Digest: digest, GoSum: m.Sum}, nil
}

// placeholders are the values of the recipe's placeholders for one build;
// toolchain, goproxy, tmp and out are where the build sees them.
func (p *GoParams) placeholders(spec GoSpec, hostArch, toolchain, goproxy, tmp, out string) *strings.Replacer {
	return strings.NewReplacer(
		"{tagsFlag}", tagsFlag(spec.Tags),
		"{goVersion}", spec.GoVersion,
		"{goos}", spec.GOOS,
		"{goarch}", spec.GOARCH,
		"{package}", spec.Package,
		"{version}", spec.Version,
		"{hostArch}", hostArch,
		"{toolchain}", toolchain,
		"{goproxy}", goproxy,
		"{goproxyURL}", (&url.URL{Scheme: "file", Path: goproxy}).String(),
		"{tmp}", tmp,
		"{out}", out,
	)
}

// tagsFlag is {tagsFlag}: -tags=a,b, or nothing for no tags (an
// argument that is nothing is left out of the command).
func tagsFlag(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	return "-tags=" + strings.Join(tags, ",")
}

// appliesTags reports whether the recipe's command passes build tags on.
func (p *GoParams) appliesTags() bool {
	return slices.ContainsFunc(p.Args, func(a string) bool { return strings.Contains(a, "{tagsFlag}") })
}

func (p *preparer) toolchainModule() (string, string, error) {
	rep := p.r.Go.placeholders(p.spec, runtime.GOARCH, "", "", "", "")
	mod, version, ok := strings.Cut(rep.Replace(p.r.Go.Toolchain), "@")
	if !ok {
		return "", "", fmt.Errorf("recipe %s: toolchain %q: want module@version", p.r.BuildType, p.r.Go.Toolchain)
	}
	if err := module.Check(mod, version); err != nil {
		return "", "", fmt.Errorf("recipe %s: toolchain: %w", p.r.BuildType, err)
	}
	return mod, version, nil
}

// toolchain checks the toolchain's zip against the h1: hash the go command
// checked, makes its tree what the go command's toolchain switch makes of
// it, and checks the tree against the zip. What an earlier check in this
// process read and that has not changed since, by its stamps, is not read
// again (checkedToolchains); the toolchain checked is remembered for the
// next one, and one whose check failed forgotten.
func (p *preparer) toolchain(m *modDownload, fetched func(GoToolchain)) (_ GoToolchain, err error) {
	tc := GoToolchain{Module: m.Path, Version: m.Version, Sum: m.Sum, Dir: m.Dir}
	defer func() {
		if err != nil {
			checkedToolchains.forget(p.modCache, m.Path, m.Version)
		} else {
			checkedToolchains.put(p.modCache, tc)
		}
	}()
	if err := fixToolchain(m.Dir); err != nil {
		return tc, fmt.Errorf("restore the toolchain's execute bits: %w", err)
	}
	if fetched != nil {
		if stamps, err := treeStamps(m.Dir); err == nil && stamps != "" {
			f := tc
			f.fetchedStamps = stamps
			fetched(f)
		}
	}
	// What an earlier check of the same module version in the same place
	// read: its zip, if it has the stamp it had then, need not be hashed
	// again, nor the files of the tree that have theirs.
	prev := checkedToolchains.get(p.modCache, m.Path, m.Version)
	if prev != nil && prev.Dir != m.Dir {
		prev = nil
	}
	var prevSnap *treeSnapshot
	if prev != nil {
		prevSnap = prev.snapshot
	}
	if prev != nil && prev.Sum == m.Sum && prev.zipStamp != nil && sameStamp(m.Zip, *prev.zipStamp) {
		tc.Zip, tc.Tree, tc.zipStamp = prev.Zip, prev.Tree, prev.zipStamp
	} else if err := checkToolchainZip(&tc, m); err != nil {
		return tc, err
	}
	got, snap, err := treeHashSince(m.Dir, m.Path+"@"+m.Version, prevSnap)
	if err != nil {
		return tc, err
	}
	if got != tc.Tree {
		return tc, &DigestError{Input: "toolchain tree " + m.Path + "@" + m.Version, Path: m.Dir, ExpectedSum: tc.Tree, ActualSum: got,
			Hint: "the unpacked toolchain in the module cache is not its zip; remove " + m.Dir + " and try again"}
	}
	if err := checkExecutable(m.Dir); err != nil {
		return tc, err
	}
	tc.snapshot = snap
	return tc, nil
}

// checkToolchainZip hashes the toolchain's zip m.Zip into tc.Zip, checks
// it against the h1: hash the go command checked, and sets tc.Tree to the
// h1: hash of the tree the go command unpacks from it, plus a go.mod
// beside each _go.mod. It notes the zip's stamp from before it was read in
// tc.zipStamp, unless the zip was changed too recently to be vouched for
// by it (racyWindow).
func checkToolchainZip(tc *GoToolchain, m *modDownload) error {
	start := time.Now()
	// One open file, whose stamp is taken from it and checked again once
	// it is read: both hashes are of the file the stamp names, as it was
	// then, whatever is renamed on the way to it meanwhile.
	f, err := os.Open(m.Zip)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("module zip %s: not a regular file (%v)", m.Zip, info.Mode().Type())
	}
	stamp, stamped := stampOf(info)
	if beforeZipReadForTest != nil {
		beforeZipReadForTest()
	}
	if tc.Zip, _, err = lantern.DigestReader(io.NewSectionReader(f, 0, info.Size())); err != nil {
		return fmt.Errorf("module zip %s: %w", m.Zip, err)
	}
	sums, err := zipSumsAt(m.Zip, f, info.Size())
	if err != nil {
		return err
	}
	if stamped {
		sf := stampedFile{File: f, want: stamp}
		if err := sf.check(); err != nil {
			return fmt.Errorf("module zip %s: %w", m.Zip, err)
		}
	}
	if got := hash1(sums); got != m.Sum {
		return &DigestError{Input: m.Path + "@" + m.Version + " zip", Path: m.Zip, ExpectedSum: m.Sum, ActualSum: got,
			Hint: "the module cache's zip is not the one the go command checked; remove it and try again"}
	}
	want := make(map[string][32]byte, len(sums)+16)
	for name, sum := range sums {
		want[name] = sum
		if path.Base(name) == "_go.mod" {
			want[path.Join(path.Dir(name), "go.mod")] = sum
		}
	}
	tc.Tree = hash1(want)
	racy := start.Add(-racyWindow).UnixNano()
	if stamped && stamp.ctime < racy && stamp.mtime < racy {
		tc.zipStamp = &stamp
	}
	return nil
}

// beforeZipReadForTest, if set, is called by checkToolchainZip once it
// has the zip's stamp, before it reads the zip.
var beforeZipReadForTest func()

// sameStamp reports whether the file name has the stamp want.
func sameStamp(name string, want fileStamp) bool {
	info, err := os.Lstat(name)
	if err != nil || !info.Mode().IsRegular() {
		return false
	}
	stamp, ok := stampOf(info)
	return ok && stamp == want
}

// fixToolchain does what the go command does to a toolchain module it has
// just unpacked, before it runs it (cmd/go/internal/toolchain): module zips
// keep no file modes, so it sets the execute bits of the files in pkg/tool,
// of lib's go_*_*_exec scripts and of bin; and it copies each _go.mod to
// go.mod (a module zip cannot hold a nested go.mod, and the standard
// library's src/go.mod is one). Both are safe to race with another go
// command or PrepareGo doing the same.
func fixToolchain(dir string) error {
	allowExec := func(root, pattern string) error {
		return filepath.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if pattern != "" {
				if ok, _ := filepath.Match(pattern, d.Name()); !ok {
					return nil
				}
			}
			info, err := os.Stat(name)
			if err != nil {
				return err
			}
			if info.Mode()&0o111 == 0o111 {
				return nil
			}
			return os.Chmod(name, info.Mode()&0o777|0o111)
		})
	}
	// In the go command's order: pkg/tool and lib before bin, whose go is
	// what tells a racing go command that this is done.
	for _, s := range []struct{ root, pattern string }{
		{"pkg/tool", ""}, {"lib", "go_?*_?*_exec"}, {"bin/gofmt", ""}, {"bin", ""},
	} {
		if err := allowExec(filepath.Join(dir, s.root), s.pattern); err != nil {
			return err
		}
	}
	return filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "_go.mod" {
			return err
		}
		return copyIfDifferent(name, filepath.Join(filepath.Dir(name), "go.mod"))
	})
}

// copyIfDifferent makes dst a copy of src, read-only, by renaming a new file
// into place, so that a racing copy never sees half a file.
func copyIfDifferent(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return nil
	}
	dir := filepath.Dir(dst)
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if info.Mode()&0o200 == 0 { // a module cache made without -modcacherw
		if err := os.Chmod(dir, info.Mode()|0o200); err != nil {
			return err
		}
		defer os.Chmod(dir, info.Mode())
	}
	f, err := os.CreateTemp(dir, ".go.mod-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o444); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// checkExecutable checks that the commands in bin and pkg/tool can be run.
func checkExecutable(dir string) error {
	for _, root := range []string{"bin", "pkg/tool"} {
		err := filepath.WalkDir(filepath.Join(dir, root), func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode()&0o111 == 0 {
				return fmt.Errorf("toolchain command %s is not executable (mode %v): PrepareGo restores the execute bits", name, info.Mode())
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// scratchDir returns a new directory for the offline dry runs: in dir if
// it is set, else in /dev/shm if one can be made there, else p.work.
func (p *preparer) scratchDir(dir string) string {
	if dir == "" {
		dir = "/dev/shm"
	}
	if d, err := os.MkdirTemp(dir, "lantern-prepare-"); err == nil {
		return d
	}
	return p.work
}

// offlineDryRun runs dryRun offline, reading proxyDir, into a new module
// cache named name in the scratch directory, which it returns. One that
// fails there (a full tmpfs) is run again in p.work, on the disk; an error
// there is the dry run's.
func (p *preparer) offlineDryRun(ctx context.Context, in *GoInputs, what, name, proxyDir string) (string, error) {
	if p.scratch != p.work {
		modCache := filepath.Join(p.scratch, name)
		err := p.dryRun(ctx, in, what, p.scratch, modCache, proxyDir, false)
		if err == nil {
			return modCache, nil
		}
		if ctx.Err() != nil {
			return "", err
		}
		p.log.Debug("dry run failed in the scratch directory; again on the disk", "scratch", p.scratch, "err", err)
		if err := removeAll(modCache); err != nil {
			return "", err
		}
	}
	modCache := filepath.Join(p.work, name)
	if err := removeAll(modCache); err != nil {
		return "", err
	}
	return modCache, p.dryRun(ctx, in, what, p.work, modCache, proxyDir, false)
}

// dryRun runs the recipe's build command with -n (which resolves and
// downloads the modules but compiles nothing) in the recipe's environment,
// outside the sandbox, with the toolchain of in. Online, it uses the
// environment's GOPROXY and GOSUMDB and the shared module cache; offline,
// proxyDir as a file GOPROXY, no checksum database (what the sandbox does)
// and modCache, a new module cache, where the modules it read land. Its
// GOCACHE and output directory go in a new directory in base.
func (p *preparer) dryRun(ctx context.Context, in *GoInputs, what, base, modCache, proxyDir string, online bool) error {
	scratch, err := os.MkdirTemp(base, "dryrun-")
	if err != nil {
		return err
	}
	defer removeAll(scratch)
	tmp, out := filepath.Join(scratch, "tmp"), filepath.Join(scratch, "out")
	for _, d := range []string{tmp, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	args, env, dir, err := buildCommand(p.r, in, in.Toolchain.Dir, proxyDir, tmp, out)
	if err != nil {
		return err
	}
	args, err = dryRunArgs(args)
	if err != nil {
		return err
	}
	env["GOFLAGS"] = strings.TrimSpace(env["GOFLAGS"] + " -modcacherw")
	maps.Copy(env, lockedDown)
	if online {
		env["GOPROXY"] = p.hostEnv["GOPROXY"]
		env["GOSUMDB"] = p.hostEnv["GOSUMDB"]
		env["GOMODCACHE"] = p.modCache
		// The go command keeps the checksum database's latest signed tree
		// head in GOPATH/pkg/sumdb: the environment's, so that it is
		// compared with the one seen last time.
		env["GOPATH"] = p.hostEnv["GOPATH"]
		for _, k := range hostNetworkEnv {
			if v, ok := os.LookupEnv(k); ok {
				env[k] = v
			}
		}
	} else {
		env["GOMODCACHE"] = modCache
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := run(cmd, p.log); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// dryRunArgs adds -n after the go command's "install".
func dryRunArgs(args []string) ([]string, error) {
	i := slices.Index(args, "install")
	if i < 0 {
		return nil, fmt.Errorf("the recipe's command %q has no install", args)
	}
	return slices.Concat(args[:i+1], []string{"-n"}, args[i+1:]), nil
}

// buildCommand expands the recipe's command, environment and working
// directory for in, with the toolchain, the file GOPROXY, the scratch space
// and the output directory at the paths given.
func buildCommand(r *Recipe, in *GoInputs, toolchain, goproxy, tmp, out string) (args []string, env map[string]string, dir string, err error) {
	if r == nil || r.Go == nil {
		return nil, nil, "", errors.New("want the go recipe")
	}
	// The spec is checked again here, where it becomes a command: inputs
	// may come from elsewhere than PrepareGo.
	if err := lantern.CheckGoTags(in.Spec.Tags); err != nil {
		return nil, nil, "", fmt.Errorf("tags: %w", err)
	}
	if len(in.Spec.Tags) > 0 && !r.Go.appliesTags() {
		return nil, nil, "", fmt.Errorf("tags: recipe %s builds without build tags", r.BuildType)
	}
	rep := r.Go.placeholders(in.Spec, in.HostArch, toolchain, goproxy, tmp, out)
	for _, a := range r.Go.Args {
		// An argument that expands to nothing ({tagsFlag} without tags)
		// is left out: go install would take "" for a package.
		if a = rep.Replace(a); a != "" {
			args = append(args, a)
		}
	}
	env = make(map[string]string, len(r.Go.Env))
	for k, v := range r.Go.Env {
		env[k] = rep.Replace(v)
	}
	return args, env, rep.Replace(r.Go.Dir), nil
}

// modRead is a module version the go command read from a GOPROXY: its
// go.mod, and its zip or not.
type modRead struct {
	Path, Version string
	Zip           bool
}

func (m modRead) String() string {
	if m.Zip {
		return m.Path + "@" + m.Version
	}
	return m.Path + "@" + m.Version + "/go.mod"
}

// scanDownloads lists the module versions whose go.mod is in a module
// cache's cache/download, sorted.
func scanDownloads(root string) ([]modRead, error) {
	var list []modRead
	err := filepath.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "sumdb" && filepath.Dir(name) == root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".mod") || filepath.Base(filepath.Dir(name)) != "@v" {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(filepath.Dir(name)))
		if err != nil {
			return err
		}
		mod, err := module.UnescapePath(filepath.ToSlash(rel))
		if err != nil {
			return fmt.Errorf("module cache entry %s: %w", name, err)
		}
		version, err := module.UnescapeVersion(strings.TrimSuffix(filepath.Base(name), ".mod"))
		if err != nil {
			return fmt.Errorf("module cache entry %s: %w", name, err)
		}
		_, err = os.Stat(strings.TrimSuffix(name, ".mod") + ".zip")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		list = append(list, modRead{Path: mod, Version: version, Zip: err == nil})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the modules the build read: %w", err)
	}
	sortReads(list)
	return list, nil
}

func sortReads(list []modRead) {
	slices.SortFunc(list, func(a, b modRead) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return semver.Compare(a.Version, b.Version)
	})
}

// reads returns what a build of mods reads.
func reads(mods []GoModule) []modRead {
	var list []modRead
	for _, m := range mods {
		list = append(list, modRead{Path: m.Path, Version: m.Version, Zip: !m.Zip.IsZero()})
	}
	sortReads(list)
	return list
}

// layOut makes the file GOPROXY in dst from the shared module cache: for
// each module version the build read, its go.mod, its zip if it read one, a
// made-up .info (the version, nothing else: no proxy's word on times goes
// in) and a list of the versions of the module it read. Versions of the
// source's module above the one being built are left out: go install looks
// up the latest version only to warn of retractions.
func (p *preparer) layOut(read []modRead, dst string) ([]GoModule, error) {
	if err := removeAll(dst); err != nil {
		return nil, err
	}
	src := filepath.Join(p.modCache, "cache", "download")
	var mods []GoModule
	for _, r := range read {
		mod, version := r.Path, r.Version
		if mod == p.spec.Module && semver.Compare(version, p.spec.Version) > 0 {
			continue
		}
		m := GoModule{Path: mod, Version: version}
		srcBase, err := downloadBase(src, mod, version)
		if err != nil {
			return nil, err
		}
		dstBase, err := downloadBase(dst, mod, version)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(dstBase), 0o755); err != nil {
			return nil, err
		}
		if err := copyFile(srcBase+".mod", dstBase+".mod"); err != nil {
			return nil, err
		}
		if m.Mod, m.ModSum, err = hashGoMod(dstBase + ".mod"); err != nil {
			return nil, err
		}
		if r.Zip {
			if err := copyFile(srcBase+".zip", dstBase+".zip"); err != nil {
				return nil, err
			}
			if m.Zip, _, err = lantern.DigestFile(dstBase + ".zip"); err != nil {
				return nil, err
			}
			sums, err := zipSums(dstBase + ".zip")
			if err != nil {
				return nil, err
			}
			m.Sum = hash1(sums)
			// The h1: hash the go command checked against the checksum
			// database when it downloaded the zip.
			checked, err := os.ReadFile(srcBase + ".ziphash")
			if err != nil {
				return nil, fmt.Errorf("%s: the go command left no checked hash of its zip: %w", m, err)
			}
			if want := strings.TrimSpace(string(checked)); m.Sum != want {
				return nil, &DigestError{Input: m.String() + " zip", Path: srcBase + ".zip", ExpectedSum: want, ActualSum: m.Sum,
					Hint: "the module cache's zip is not the one the go command checked; remove it and try again"}
			}
		}
		if err := os.WriteFile(dstBase+".info", infoFile(version), 0o644); err != nil {
			return nil, err
		}
		mods = append(mods, m)
	}
	sortModules(mods)
	if len(mods) == 0 || !slices.ContainsFunc(mods, func(m GoModule) bool {
		return m.Path == p.spec.Module && m.Version == p.spec.Version && !m.Zip.IsZero()
	}) {
		return nil, fmt.Errorf("the build did not read %s@%s: is %s a package of it?", p.spec.Module, p.spec.Version, p.spec.Package)
	}
	for mod, list := range versionLists(mods) {
		base, err := downloadBase(dst, mod, "v0.0.0")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(base), "list"), list, 0o644); err != nil {
			return nil, err
		}
	}
	return mods, nil
}

// downloadBase returns root/<escaped path>/@v/<escaped version>, to which
// .mod, .zip and .info are added.
func downloadBase(root, mod, version string) (string, error) {
	ep, err := module.EscapePath(mod)
	if err != nil {
		return "", err
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, filepath.FromSlash(ep), "@v", ev), nil
}

func infoFile(version string) []byte {
	b, _ := json.Marshal(struct{ Version string }{version})
	return append(b, '\n')
}

// versionLists returns the @v/list file of each module path of mods.
func versionLists(mods []GoModule) map[string][]byte {
	lists := map[string][]byte{}
	for _, m := range mods { // sorted by path, then version
		lists[m.Path] = append(lists[m.Path], m.Version+"\n"...)
	}
	return lists
}

func sortModules(mods []GoModule) {
	slices.SortFunc(mods, func(a, b GoModule) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return semver.Compare(a.Version, b.Version)
	})
}

// checkPackageModule refuses a package that the build found in a module
// other than the source's: a nested module, whose zip is not the source.
func checkPackageModule(spec GoSpec, mods []GoModule) error {
	for _, m := range mods {
		if m.Zip.IsZero() || len(m.Path) <= len(spec.Module) {
			continue
		}
		if spec.Package == m.Path || strings.HasPrefix(spec.Package, m.Path+"/") {
			return fmt.Errorf("package %s is in module %s, not %s: build that module's version", spec.Package, m.Path, spec.Module)
		}
	}
	return nil
}

func hashGoMod(name string) (lantern.Digest, string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return lantern.Digest{}, "", err
	}
	d := lantern.DigestOf(data)
	return d, hash1(map[string][32]byte{"go.mod": d.Sum()}), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// removeAll removes dir, made writable first: module caches are read-only.
func removeAll(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(name, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
