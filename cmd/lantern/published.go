package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/gobinary"
	"github.com/lanternfarm/lantern/internal/goproxy"
)

// publishedBuild is one claim of rebuild --published: the published
// binaries of one package version that one Go release built with the same
// build tags, one per platform.
type publishedBuild struct {
	Package, Module, Version string
	// Sum is the module's h1: hash as the binaries record it; empty when
	// none does (a vendored build).
	Sum string
	// Go is the claim's Go release, platforms (sorted) and tags.
	Go lantern.GoBuild
	// Artefacts are the files' digests and Files the files, by label.
	Artefacts map[string]lantern.Digest
	Files     map[string]string
}

// source returns "PKG@VERSION".
func (b *publishedBuild) source() string { return b.Package + "@" + b.Version }

// defaultArchLevels are the architecture variants every Go release from
// go1.21.0 on builds with when the variable is unset, as go install with
// the go recipe's environment does: a binary built with another level
// cannot be reproduced. GOARM is missing: its default depends on the
// release (5 for a cross-compiling toolchain before go1.22, 7 since).
var defaultArchLevels = map[string]string{
	"GOAMD64":   "v1",
	"GOARM64":   "v8.0",
	"GO386":     "sse2",
	"GOMIPS":    "hardfloat",
	"GOMIPS64":  "hardfloat",
	"GOPPC64":   "power8",
	"GORISCV64": "rva20u64",
}

// readPublished reads the published Go binaries files and groups them
// into the builds that reproduce them: by package, module version, Go
// release and build tags, each build's platforms those of its binaries. A
// binary a go install of a module version cannot reproduce (gobinary.Read's
// refusals, and a Go release, platform or architecture variant the go
// recipe does not build), two binaries of one label in one build, or,
// where pkg and version are given (the command's PKG@VERSION), a binary of
// another package or version, is a usage error naming every file at fault:
// nothing is claimed unless every file can be.
func readPublished(files []string, pkg, version string) ([]*publishedBuild, error) {
	type key struct{ pkg, version, goVersion, tags string }
	builds := map[key]*publishedBuild{}
	var errs []error
	for _, file := range files {
		p, err := gobinary.Read(file)
		if err != nil {
			if _, ok := errors.AsType[*gobinary.RefusedError](err); ok || errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			return nil, err // not the file's fault: unreadable here
		}
		if err := checkPublished(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if pkg != "" && (p.Package != pkg || p.Version != version) {
			errs = append(errs, fmt.Errorf("published binary %s is %s@%s, not %s@%s: give the binaries of %s@%s, or leave out PKG@VERSION to claim what each binary says", gobinary.Show(file), p.Package, p.Version, pkg, version, pkg, version))
			continue
		}
		k := key{p.Package, p.Version, p.GoVersion, strings.Join(p.Tags, ",")}
		b := builds[k]
		if b == nil {
			b = &publishedBuild{Package: p.Package, Module: p.Module, Version: p.Version,
				Go:        lantern.GoBuild{Version: p.GoVersion, Tags: p.Tags},
				Artefacts: map[string]lantern.Digest{}, Files: map[string]string{}}
			builds[k] = b
		}
		label := p.Label()
		if other, ok := b.Files[label]; ok {
			errs = append(errs, fmt.Errorf("published binaries %s and %s are both %s (%s, go%s for %s/%s): a claim publishes one artefact per label; give one of them", gobinary.Show(other), gobinary.Show(file), label, b.source(), p.GoVersion, p.GOOS, p.GOARCH))
			continue
		}
		if b.Module != p.Module {
			errs = append(errs, fmt.Errorf("published binary %s says %s is in module %s, %s says %s", gobinary.Show(file), p.Package, p.Module, gobinary.Show(b.Files[firstLabel(b)]), b.Module))
			continue
		}
		if b.Sum != "" && p.Sum != "" && b.Sum != p.Sum {
			errs = append(errs, fmt.Errorf("published binaries %s and %s were built from different %s@%s: %s and %s", gobinary.Show(b.Files[firstLabel(b)]), gobinary.Show(file), p.Module, p.Version, gobinary.Show(b.Sum), gobinary.Show(p.Sum)))
			continue
		}
		b.Sum = cmp.Or(b.Sum, p.Sum)
		b.Files[label] = file
		b.Artefacts[label] = p.Digest
		b.Go.Platforms = append(b.Go.Platforms, p.GOOS+"/"+p.GOARCH)
	}
	if len(errs) > 0 {
		return nil, &usageError{msg: fmt.Sprintf("--published: %v\nnothing was claimed", errors.Join(errs...))}
	}
	out := slices.SortedFunc(maps.Values(builds), func(a, b *publishedBuild) int {
		return cmp.Or(strings.Compare(a.Package, b.Package), strings.Compare(a.Version, b.Version),
			strings.Compare(a.Go.Version, b.Go.Version), slices.Compare(a.Go.Tags, b.Go.Tags))
	})
	for _, b := range out {
		slices.Sort(b.Go.Platforms)
	}
	return out, nil
}

// fileList names b's files, shown escaped: a file's name is as hostile
// as the file.
func (b *publishedBuild) fileList() string {
	var names []string
	for _, f := range slices.Sorted(maps.Values(b.Files)) {
		names = append(names, gobinary.Show(f))
	}
	return strings.Join(names, ", ")
}

func firstLabel(b *publishedBuild) string {
	return slices.Sorted(maps.Keys(b.Files))[0]
}

// checkPublished refuses what gobinary.Read accepts and the go recipe
// still cannot build: a Go release that is not one (a release candidate),
// a platform it does not know, an architecture variant other than the
// default, tags a claim cannot carry.
func checkPublished(p *gobinary.Published) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("published binary %s: %s", gobinary.Show(p.File), fmt.Sprintf(format, args...))
	}
	if _, err := lantern.ParseGoVersion(p.GoVersion); err != nil {
		return refuse("built by go%s: the go recipe builds with Go releases of 1.21.0 or later (go1.N.P), not release candidates; publish a build of a release", p.GoVersion)
	}
	if _, err := lantern.ParseGoPlatforms(p.GOOS + "/" + p.GOARCH); err != nil {
		return refuse("built for %s/%s: %v", p.GOOS, p.GOARCH, err)
	}
	if def, ok := defaultArchLevels[p.ArchVar]; ok && p.ArchLevel != def {
		return refuse("built with %s=%s; the go recipe builds with the default, %s=%s, so a rebuild could never equal it: build it with %s unset", p.ArchVar, p.ArchLevel, p.ArchVar, def, p.ArchVar)
	}
	if err := lantern.CheckGoTags(p.Tags); err != nil {
		return refuse("built with -tags=%s: %v", strings.Join(p.Tags, ","), err)
	}
	return nil
}

// claim returns the source claim of b, whose module m the module proxy
// and the checksum database gave, made at t: b's Go release, platforms and
// tags, and the files' digests as the published artefacts. A module that is
// not the one the binaries were built from is an error; one whose hash the
// checksum database contradicts, a *contradictedError.
func (b *publishedBuild) claim(m *goproxy.Module, t time.Time) (*lantern.SourceClaim, error) {
	if m.Path != b.Module {
		return nil, &usageError{msg: fmt.Sprintf("--published %s: built from module %s, and go install %s resolves %s to module %s today: a go install of %s cannot reproduce it",
			b.fileList(), b.Module, b.source(), b.Package, m.Path, b.source())}
	}
	if b.Sum != "" && b.Sum != m.Sum {
		return nil, &contradictedError{fmt.Sprintf("--published %s: built from %s@%s with hash %s, and the Go checksum database says that module version is %s: the binaries were not built from the published module",
			b.fileList(), b.Module, b.Version, gobinary.Show(b.Sum), m.Sum)}
	}
	gob := b.Go
	c := goSource{Package: b.Package, Module: *m, Build: &gob}.claim(t)
	c.Artefacts = maps.Clone(b.Artefacts)
	return c, nil
}
