package lantern

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// GoBuild is how a source claim with the go recipe asks for its command to
// be built: with which Go release, for which platforms, and with which of
// the build flags a published binary may have been made with (-trimpath is
// always on, CGO_ENABLED always 0). A claim without one is built as the
// recipe's defaults say (go1.24.4, linux/amd64).
type GoBuild struct {
	// Version is the Go release, "1.23.4": one whose golang.org/toolchain
	// module exists (1.21.0 and later). Empty: the recipe's default.
	Version string `json:"version,omitempty"`
	// Platforms are the targets, GOOS/GOARCH as `go tool dist list` names
	// them ("linux/arm64"), sorted, each once. Each is built by the one job
	// and is its own label (recipes.GoLabel). Empty: the recipe's default.
	Platforms []string `json:"platforms,omitempty"`
	// Tags are the build tags, passed to go install as -tags in this
	// order: the go command records them in a binary as given, so their
	// order is part of what is built. Each is a tag name, once (CheckGoTags).
	Tags []string `json:"tags,omitempty"`
	// Ldflags are the -ldflags a binary was built with. The go recipe does
	// not apply them, and a binary built with -trimpath does not record
	// them (go.dev/issue/52372), so a claim with them is refused
	// (Validate): the field is here so that job ids cover it from the
	// start.
	Ldflags string `json:"ldflags,omitempty"`
}

// goRelease matches Go releases that have a golang.org/toolchain module:
// 1.21.0 and later, as x.y.z (release candidates are not releases).
var goRelease = regexp.MustCompile(`^1\.(2[1-9]|[3-9][0-9]|[1-9][0-9]{2,})\.(0|[1-9][0-9]{0,3})$`)

// GoPlatforms are the GOOS/GOARCH pairs the go command can build for, as
// `go tool dist list` (Go 1.26, cmd/dist's cgoEnabled less its broken
// ports) prints them. A release that lacks one of them fails to build it,
// which is the rebuild's result.
var GoPlatforms = []string{
	"aix/ppc64",
	"android/386", "android/amd64", "android/arm", "android/arm64",
	"darwin/amd64", "darwin/arm64",
	"dragonfly/amd64",
	"freebsd/386", "freebsd/amd64", "freebsd/arm", "freebsd/arm64",
	"illumos/amd64",
	"ios/amd64", "ios/arm64",
	"js/wasm",
	"linux/386", "linux/amd64", "linux/arm", "linux/arm64", "linux/loong64",
	"linux/mips", "linux/mips64", "linux/mips64le", "linux/mipsle",
	"linux/ppc64", "linux/ppc64le", "linux/riscv64", "linux/s390x",
	"netbsd/386", "netbsd/amd64", "netbsd/arm", "netbsd/arm64",
	"openbsd/386", "openbsd/amd64", "openbsd/arm", "openbsd/arm64",
	"openbsd/ppc64", "openbsd/riscv64",
	"plan9/386", "plan9/amd64", "plan9/arm",
	"solaris/amd64",
	"wasip1/wasm",
	"windows/386", "windows/amd64", "windows/arm64",
}

// ParseGoVersion returns the Go release s names, "1.23.4", accepting
// "go1.23.4" too, or an error that says what a release looks like.
func ParseGoVersion(s string) (string, error) {
	v := strings.TrimPrefix(s, "go")
	if !goRelease.MatchString(v) {
		return "", fmt.Errorf("go version %q: want a Go release of 1.21.0 or later, such as 1.23.4 or 1.24.0 (the golang.org/toolchain module of which builds it)", s)
	}
	return v, nil
}

// ParseGoPlatforms parses a comma-separated list of GOOS/GOARCH pairs
// ("linux/amd64,windows/amd64") into the sorted set GoBuild.Platforms
// holds; a pair named twice is an error.
func ParseGoPlatforms(s string) ([]string, error) {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if err := validGoPlatform(p); err != nil {
			return nil, err
		}
		if slices.Contains(out, p) {
			return nil, fmt.Errorf("platform %q: named twice", p)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

func validGoPlatform(p string) error {
	if slices.Contains(GoPlatforms, p) {
		return nil
	}
	return fmt.Errorf("platform %q: want GOOS/GOARCH as `go tool dist list` prints it, such as linux/amd64, linux/arm64, darwin/arm64 or windows/amd64", truncate(p))
}

// goTag is a build tag as the go recipe passes it in -tags: what a
// //go:build line can name, and dashes (-tags accepts them), never a
// comma, a space or a quote, which the go command would split on, nor a
// leading dash.
var goTag = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$`)

// MaxGoTags is the most build tags a GoBuild may have.
const MaxGoTags = 32

// CheckGoTags checks build tags for -tags: at most MaxGoTags, each a tag
// name ([A-Za-z0-9_.-], up to 64, not starting with a dash), each once.
// Their order is kept: it is part of the build.
func CheckGoTags(tags []string) error {
	if len(tags) > MaxGoTags {
		return fmt.Errorf("%d build tags: want at most %d", len(tags), MaxGoTags)
	}
	for i, t := range tags {
		if !goTag.MatchString(t) {
			return fmt.Errorf("[%d] %q: want a build tag name, letters, digits, '_', '.' and '-' (not first), no commas or spaces", i, truncate(t))
		}
		if slices.Contains(tags[:i], t) {
			return fmt.Errorf("[%d] %q: named twice", i, t)
		}
	}
	return nil
}

// Validate checks g strictly: a Go release, known platforms sorted and
// each once, build tags (CheckGoTags), and no -ldflags, which the go
// recipe does not apply.
func (g *GoBuild) Validate() error {
	if g.Version != "" && !goRelease.MatchString(g.Version) {
		return fmt.Errorf("version %q: want a Go release of 1.21.0 or later, such as 1.23.4 or 1.24.0", truncate(g.Version))
	}
	for i, p := range g.Platforms {
		if err := validGoPlatform(p); err != nil {
			return fmt.Errorf("platforms[%d]: %w", i, err)
		}
		if i > 0 && g.Platforms[i-1] >= p {
			return fmt.Errorf("platforms[%d] %q: want the platforms sorted, each once", i, p)
		}
	}
	if g.Ldflags != "" {
		return fmt.Errorf("ldflags: the go recipe does not apply -ldflags; leave them out")
	}
	if err := CheckGoTags(g.Tags); err != nil {
		return fmt.Errorf("tags: %w", err)
	}
	if g.Version == "" && len(g.Platforms) == 0 && len(g.Tags) == 0 {
		return fmt.Errorf("version, platforms, tags: all missing; leave go out for the recipe's defaults")
	}
	return nil
}
