// Package gobinary reads a published Go binary's build information (the
// go command's debug/buildinfo) and says what rebuild would match it: the
// main package and its module version, the Go release, the platform and
// the build tags, with the file's digest as the published artefact of its
// label.
//
// The go recipe rebuilds what anyone can check with
//
//	GOTOOLCHAIN=go<version> GOFLAGS=-trimpath CGO_ENABLED=0 GOOS=<goos> GOARCH=<goarch> go install <package>@<version>
//
// so Read refuses, before anything is claimed, a binary that no such
// command can make: built with cgo, from a version-control checkout or a
// local module rather than a module version, with a replaced module,
// without -trimpath, as other than an executable, with settings that such a
// command does not set (-gcflags, -race, GOEXPERIMENT, ...), or by a Go
// release older than the golang.org/toolchain modules (go1.21.0). Its
// errors are a *RefusedError per reason, each wrapping one of the Err
// sentinels, so that a caller can branch on the reason.
//
// What a binary cannot say: the go command does not record -ldflags in a
// binary built with -trimpath (go.dev/issue/52372, as paths may hide in
// them), so Read cannot see a `-ldflags=-X main.version=...` of an accepted
// binary; a rebuild of such a binary is simply different from it. Nor does
// it record which versions of its dependencies the go command would select
// for a go install today, only the ones it used: a binary built with go
// build of a dependency's command, inside another module that selects
// other versions, reads as a module version all the same.
package gobinary

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"go/version"
	"io"
	"io/fs"
	"os"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/recipes"
)

// MaxSize bounds the file Read reads: it reads the whole file once, so that
// the digest it records is of the very bytes whose build information it
// read.
var MaxSize int64 = 1 << 30

// MinGoVersion is the oldest Go release with golang.org/toolchain modules,
// which the go recipe builds with.
const MinGoVersion = "1.21.0"

// The reasons Read refuses a file. Each comes wrapped in a *RefusedError
// that says what the build information shows and what to do.
var (
	// ErrNotGoBinary: the file is no executable the go command built, or its
	// build information cannot be read.
	ErrNotGoBinary = errors.New("not a Go binary")
	// ErrNoModule: a Go binary without a module version of its main package
	// (built in GOPATH mode, or from files named on the command line).
	ErrNoModule = errors.New("no module version in the build information")
	// ErrGoVersion: built by a Go release the go recipe cannot install (a
	// development build, an experiment, or one before go1.21.0).
	ErrGoVersion = errors.New("Go release not available as a toolchain module")
	// ErrCgo: built with CGO_ENABLED=1.
	ErrCgo = errors.New("built with cgo")
	// ErrNoTrimpath: built without -trimpath.
	ErrNoTrimpath = errors.New("built without -trimpath")
	// ErrVCS: built in a version-control checkout or a local module rather
	// than from a module version.
	ErrVCS = errors.New("built from a checkout, not a module version")
	// ErrReplaced: the main module or a dependency is replaced.
	ErrReplaced = errors.New("built with a replaced module")
	// ErrBuildMode: built with a -buildmode other than exe.
	ErrBuildMode = errors.New("not built as a plain executable")
	// ErrSetting: built with a setting a plain go install does not use
	// (-gcflags, -race, GOEXPERIMENT, a setting unknown to Lantern, ...).
	ErrSetting = errors.New("built with a setting the go recipe does not reproduce")
)

// A RefusedError says why Read refuses File: Reason is one of the Err
// sentinels, Detail what the build information shows and what to do.
type RefusedError struct {
	File   string
	Reason error
	Detail string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("published binary %s: %v: %s", Show(e.File), e.Reason, e.Detail)
}

// Unwrap returns Reason.
func (e *RefusedError) Unwrap() error { return e.Reason }

// Published is what a published Go binary says of its build: what a claim
// needs to rebuild it with a plain go install, and its digest.
type Published struct {
	// File is the path Read read.
	File string
	// Digest is the SHA-256 of the file and Size its length in bytes: the
	// published artefact a rebuild must equal.
	Digest lantern.Digest
	Size   int64

	// Package is the main package's import path
	// (golang.org/x/tools/cmd/stringer).
	Package string
	// Module and Version are the module version it belongs to
	// (golang.org/x/tools, v0.30.0), and Sum the module zip's h1: hash as
	// go.sum has it; Sum is empty for a build that did not record one (a
	// vendored build).
	Module  string
	Version string
	Sum     string

	// GoVersion is the Go release that built it, without the "go" prefix
	// ("1.23.4", or a pre-release such as "1.24rc1").
	GoVersion string
	// GOOS and GOARCH are its platform.
	GOOS   string
	GOARCH string
	// ArchVar and ArchLevel are the architecture's variant setting as the
	// go command recorded it (GOAMD64 and "v1", GOARM64 and "v8.0", GOARM
	// and "7"), or empty for an architecture without one. A rebuild matches
	// only with the same value in its environment; each toolchain has a
	// default (GOAMD64=v1), which a go install with the variable unset uses.
	ArchVar   string
	ArchLevel string
	// Tags are the build tags (-tags), in the order recorded; a rebuild
	// needs the same -tags.
	Tags []string

	// Info is the build information as read, for display (what go version
	// -m prints).
	Info *debug.BuildInfo
}

// Label returns the label of p's binary, as the go recipe names the
// output of a go install of p.Package for p's platform.
func (p *Published) Label() string {
	return recipes.GoLabel(p.Package, p.GOOS, p.GOARCH)
}

// Read reads the Go binary at file and returns what it says of its build,
// or a *RefusedError (several, joined, where there are several reasons)
// for a binary a go install of a module version cannot reproduce; other
// errors are the file's (missing, unreadable, too large).
func Read(file string) (*Published, error) {
	// The file's name is shown escaped (Show), and an error of the file
	// system without it: the name may be as hostile as the file.
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read published binary %s: %w", Show(file), withoutPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read published binary %s: %w", Show(file), withoutPath(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read published binary %s: not a regular file", Show(file))
	}
	if st.Size() > MaxSize {
		return nil, fmt.Errorf("read published binary %s: %d bytes, more than the %d Lantern reads", Show(file), st.Size(), MaxSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read published binary %s: %w", Show(file), withoutPath(err))
	}
	if int64(len(data)) > MaxSize {
		return nil, fmt.Errorf("read published binary %s: more than the %d bytes Lantern reads", Show(file), MaxSize)
	}
	info, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return nil, &RefusedError{File: file, Reason: ErrNotGoBinary,
			Detail: fmt.Sprintf("%v; give a binary the go command built (go version -m FILE shows its build information)", err)}
	}
	p, err := fromInfo(file, info)
	if err != nil {
		return nil, err
	}
	p.Digest = lantern.DigestOf(data)
	p.Size = int64(len(data))
	return p, nil
}

// The shapes of what a binary says, checked because they go into claims
// and labels.
var (
	platformPart = regexp.MustCompile(`^[a-z0-9]{1,32}$`)
	archLevel    = regexp.MustCompile(`^[a-z0-9.,_]{1,32}$`)
	// buildTag is lantern.CheckGoTags' shape of a tag (a dash, but not
	// first), so that what go/v2 rebuilds is not refused here.
	buildTag = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$`)
	// goRelease is a Go release's name (go1.23.4, go1.24rc1, go1.19): no
	// development build, no GOEXPERIMENT (" X:..."), no vendor's suffix.
	goRelease = regexp.MustCompile(`^go1\.(0|[1-9][0-9]{0,3})(\.(0|[1-9][0-9]{0,3})|(rc|beta)[1-9][0-9]{0,3})?$`)
)

// archVars are the architecture variant settings the go command records
// (cmd/go/internal/cfg.GetArchEnv), by GOARCH.
var archVars = map[string]string{
	"arm": "GOARM", "arm64": "GOARM64", "386": "GO386", "amd64": "GOAMD64",
	"mips": "GOMIPS", "mipsle": "GOMIPS", "mips64": "GOMIPS64", "mips64le": "GOMIPS64",
	"ppc64": "GOPPC64", "ppc64le": "GOPPC64", "riscv64": "GORISCV64", "wasm": "GOWASM",
}

// fromInfo checks info, read from file, and returns what it says.
func fromInfo(file string, info *debug.BuildInfo) (*Published, error) {
	var errs []error
	refuse := func(reason error, format string, args ...any) {
		errs = append(errs, &RefusedError{File: file, Reason: reason, Detail: fmt.Sprintf(format, args...)})
	}
	p := &Published{File: file, Info: info}

	// The module version. Main.Path is empty in GOPATH mode or for a
	// binary built from files named on the command line, whose Path is
	// command-line-arguments.
	main := info.Main
	switch {
	case main.Path == "" || info.Path == "" || info.Path == "command-line-arguments":
		refuse(ErrNoModule, "the binary names no main package in a module (package %s, module %s): it was built in GOPATH mode or from files; build it with go install PACKAGE@VERSION", strconv.Quote(cut(info.Path)), strconv.Quote(cut(main.Path)))
		return nil, errors.Join(errs...)
	case main.Replace != nil:
		refuse(ErrReplaced, "its module %s %s is replaced by %s; go install PACKAGE@VERSION builds the module version itself, never a replacement: publish a build of a module version", Show(main.Path), Show(main.Version), describeModule(main.Replace))
	case main.Version == "" || main.Version == "(devel)":
		refuse(ErrVCS, "its module %s has no version (%q): it was built in the module's own directory, not installed from a module version; tag a release and build it with go install %s@VERSION", Show(main.Path), Show(main.Version), Show(info.Path))
	default:
		if err := module.Check(main.Path, main.Version); err != nil {
			refuse(ErrNoModule, "its module version %s %s is not valid: %s", Show(main.Path), Show(main.Version), Show(errors.Unwrap(err).Error()))
		} else if !canonical(main.Version) {
			refuse(ErrNoModule, "its module version %s %s is not canonical, as a go install records it", main.Path, main.Version)
		} else if err := module.CheckImportPath(info.Path); err != nil || (info.Path != main.Path && !strings.HasPrefix(info.Path, main.Path+"/")) {
			refuse(ErrNoModule, "its main package %s is no package of its module %s", strconv.Quote(cut(info.Path)), Show(main.Path))
		}
	}
	// Copies: the build information of a large binary is not kept alive by them.
	p.Package, p.Module, p.Version, p.Sum = strings.Clone(info.Path), strings.Clone(main.Path), strings.Clone(main.Version), strings.Clone(main.Sum)
	var replaced []string
	for _, d := range info.Deps {
		if d != nil && d.Replace != nil {
			replaced = append(replaced, Show(d.Path)+" "+Show(d.Version)+" is replaced by "+describeModule(d.Replace))
		}
	}
	if len(replaced) > 0 {
		refuse(ErrReplaced, "its dependency %s; go install PACKAGE@VERSION refuses a module with replace directives, so this build came from another module's go.mod or a go.work: publish a go install of a module version", list(replaced))
	}

	// The Go release.
	gv := info.GoVersion
	switch {
	case !goRelease.MatchString(gv):
		refuse(ErrGoVersion, "it was built by %s, not a Go release (a development or experimental toolchain); build it with a Go release", strconv.Quote(cut(gv)))
	case version.Compare(gv, "go"+MinGoVersion) < 0:
		refuse(ErrGoVersion, "it was built by %s; the go recipe builds with golang.org/toolchain modules, which exist from go%s on: build it with a newer Go release", gv, MinGoVersion)
	case strings.Count(gv, ".") == 1 && !strings.ContainsAny(gv, "rb"):
		// go1.22 is a language version; the releases are go1.22.0 on.
		refuse(ErrGoVersion, "it was built by %q, not a Go release (from go1.21.0 on, releases are named go1.N.P); build it with a Go release", gv)
	default:
		p.GoVersion = strings.Clone(strings.TrimPrefix(gv, "go"))
	}

	// The settings.
	settings := make(map[string]string, len(info.Settings))
	var dups []string
	for _, s := range info.Settings {
		if _, dup := settings[s.Key]; dup {
			dups = append(dups, Show(s.Key))
		}
		settings[s.Key] = s.Value
	}
	if len(dups) > 0 {
		refuse(ErrSetting, "its build information lists %s twice", list(dups))
	}
	var vcs, unsupported []string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs" || strings.HasPrefix(s.Key, "vcs."):
			vcs = append(vcs, Show(s.Key)+"="+Show(s.Value))
		case s.Key == "-buildmode", s.Key == "-compiler", s.Key == "-trimpath", s.Key == "CGO_ENABLED",
			s.Key == "GOOS", s.Key == "GOARCH", s.Key == "-tags", s.Key == "DefaultGODEBUG":
			// Checked below, or (DefaultGODEBUG) set by the module's own
			// go.mod, which a go install reads too.
		case s.Key != "" && s.Key == archVars[settings["GOARCH"]]:
			// The architecture's variant, checked below.
		case s.Key == "-pgo" && s.Value == "default.pgo":
			// -pgo=auto (the default) found the main package's
			// default.pgo, which is in the module and which a go install
			// finds too.
		case strings.HasPrefix(s.Key, "CGO_") && settings["CGO_ENABLED"] != "0":
			// CGO_CFLAGS and the like, recorded only with cgo on and no
			// -trimpath: refused for those.
		default:
			unsupported = append(unsupported, Show(s.Key)+"="+Show(s.Value))
		}
	}
	// Since go1.24 a go build in a checkout at a tag records the tag as
	// the module's version: only the vcs stamps tell it from a go install.
	if len(vcs) > 0 {
		refuse(ErrVCS, "it was built in a version-control checkout (%s), which stamps the binary with what a go install of a module version never has; build it with go install %s@%s outside the checkout", list(vcs), Show(p.Package), Show(orPlaceholder(p.Version)))
	}
	if v := settings["CGO_ENABLED"]; v != "0" {
		refuse(ErrCgo, "CGO_ENABLED=%s: a cgo build links the C toolchain and libraries of the machine that built it, which a rebuild cannot have; build it with CGO_ENABLED=0 (the go recipe always does)", Show(orPlaceholder(v)))
	}
	if settings["-trimpath"] != "true" {
		refuse(ErrNoTrimpath, "without -trimpath the binary embeds the builder's own file paths (GOROOT, the module cache), and the go recipe always builds with -trimpath, so a rebuild could never equal it; build it with GOFLAGS=-trimpath")
	}
	if v := settings["-buildmode"]; v != "exe" {
		refuse(ErrBuildMode, "-buildmode=%s; the go recipe builds the executable go install makes by default (-buildmode=exe)", Show(orPlaceholder(v)))
	}
	if v := settings["-compiler"]; v != "gc" {
		refuse(ErrSetting, "-compiler=%s; the go recipe builds with the gc compiler of a Go release", Show(orPlaceholder(v)))
	}
	if len(unsupported) > 0 {
		refuse(ErrSetting, "%s; the go recipe builds with a plain go install, which sets none of these: build it without them", list(unsupported))
	}

	// The platform.
	p.GOOS, p.GOARCH = settings["GOOS"], settings["GOARCH"]
	if !platformPart.MatchString(p.GOOS) || !platformPart.MatchString(p.GOARCH) {
		refuse(ErrSetting, "its platform GOOS=%s GOARCH=%s is not one the go command names", strconv.Quote(cut(p.GOOS)), strconv.Quote(cut(p.GOARCH)))
	}
	if v, ok := archVars[p.GOARCH]; ok {
		if l, set := settings[v]; set {
			if !archLevel.MatchString(l) {
				refuse(ErrSetting, "%s=%s is not a value the go command records", v, strconv.Quote(cut(l)))
			}
			p.ArchVar, p.ArchLevel = v, l
		}
	}
	if t, ok := settings["-tags"]; ok {
		p.Tags = strings.Split(strings.Clone(t), ",")
		if slices.ContainsFunc(p.Tags, func(t string) bool { return !buildTag.MatchString(t) }) {
			refuse(ErrSetting, "-tags=%s is not a list of build tags", strconv.Quote(cut(t)))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// canonical reports whether v is a module version as the go command records
// one: canonical semantic version, perhaps +incompatible.
func canonical(v string) bool {
	base := strings.TrimSuffix(v, "+incompatible")
	return semver.Canonical(base) == base
}

func describeModule(m *debug.Module) string {
	if m.Version == "" || m.Version == "(devel)" {
		return Show(m.Path)
	}
	return Show(m.Path) + " " + Show(m.Version)
}

// maxShown bounds a string of a binary Show shows, and maxListed how many
// of a list list names: a binary's build information is as long as its
// maker likes, and what Read says of it goes to a terminal or a CI log.
const (
	maxShown  = 200
	maxListed = 10
)

// Show returns s, a name or a value a binary (or whoever named its file)
// chose, fit to print in a message: as it is when it is printable ASCII,
// else quoted as Go quotes it, so that no control character, terminal
// escape or line of its own gets through; cut short past maxShown bytes.
func Show(s string) string {
	c := cut(s)
	for i := 0; i < len(c); i++ {
		if c[i] < 0x20 || c[i] >= 0x7f {
			return strconv.Quote(c)
		}
	}
	return c
}

// cut returns s cut to maxShown bytes (on a rune boundary), marked "...".
func cut(s string) string {
	if len(s) <= maxShown {
		return s
	}
	s = s[:maxShown]
	for len(s) > 0 && !utf8.RuneStart(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && !utf8.ValidString(s[len(s)-1:]) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// list joins the first maxListed of items, shown already, and counts the
// rest.
func list(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxListed], ", "), len(items)-maxListed)
}

// withoutPath returns err of the file system without the file's name,
// which the caller shows itself.
func withoutPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

func orPlaceholder(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}
