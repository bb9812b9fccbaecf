package recipes

import (
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/lanternfarm/lantern"
)

// Labels returns the labels of the outputs a build of job with recipe r
// makes, sorted: for the go recipe the command's binary on the recipe's
// platform, for the generic recipe the outputs of the job's build spec. An
// attestation of the job under any other label answers a question nobody
// asked.
func (r *Recipe) Labels(job lantern.Job) []string {
	switch {
	case r.Go != nil:
		return r.goLabels(job)
	case r.Generic != nil && job.Build != nil:
		return slices.Sorted(maps.Keys(job.Build.Outputs))
	}
	return nil
}

// Versions returns every version of every recipe Lantern has, as a farm
// checks attestations against them.
func Versions() []lantern.RecipeVersion {
	var out []lantern.RecipeVersion
	for _, n := range Names() {
		vs, _ := versions(n)
		for _, v := range vs {
			r, err := LoadVersion(n, v)
			if err != nil {
				panic(err) // the embedded files are tested
			}
			out = append(out, lantern.RecipeVersion{Name: r.Name, Ref: r.Ref(), Labels: r.Labels})
		}
	}
	return out
}

var majorVersion = regexp.MustCompile(`^v[0-9]+$`)

// GoLabel returns the label of the binary that `go install pkg` makes for
// goos/goarch: the binary's name (the package path's last element, or the
// one before a major-version suffix such as /v2), then the platform, and
// ".exe" for windows, as the binary's own name ends: stringer-linux-arm64,
// stringer-windows-amd64.exe.
func GoLabel(pkg, goos, goarch string) string {
	name := path.Base(pkg)
	if dir := path.Dir(pkg); majorVersion.MatchString(name) && dir != "." && dir != "/" {
		name = path.Base(dir)
	}
	label := name + "-" + goos + "-" + goarch
	if goos == "windows" {
		label += ".exe"
	}
	return label
}

// goLabels are the labels of a go build of job: one per platform of the
// job's GoBuild, from go/v2 on. Version 1 builds only the defaults, so it
// makes no label for a job that asks for a Go release or platforms: an
// attestation under go/v1 cannot answer one.
func (r *Recipe) goLabels(job lantern.Job) []string {
	if job.Go == nil {
		return []string{GoLabel(job.Source.Name, r.Go.DefaultGOOS, r.Go.DefaultGOARCH)}
	}
	if r.Version < 2 {
		return nil
	}
	var out []string
	for _, p := range GoPlatforms(r, job) {
		out = append(out, GoLabel(job.Source.Name, p.GOOS, p.GOARCH))
	}
	slices.Sort(out)
	return out
}

// Platform is one GOOS/GOARCH target.
type Platform struct{ GOOS, GOARCH string }

// GoPlatforms returns the targets a go build of job with r makes, in the
// order of the job's GoBuild (sorted): its platforms, or the recipe's
// default.
func GoPlatforms(r *Recipe, job lantern.Job) []Platform {
	if job.Go == nil || len(job.Go.Platforms) == 0 {
		return []Platform{{r.Go.DefaultGOOS, r.Go.DefaultGOARCH}}
	}
	var out []Platform
	for _, p := range job.Go.Platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		out = append(out, Platform{goos, goarch})
	}
	return out
}

// GoVersion returns the Go release a go build of job with r uses: the
// job's, or the recipe's default.
func GoVersion(r *Recipe, job lantern.Job) string {
	if job.Go != nil && job.Go.Version != "" {
		return job.Go.Version
	}
	return r.Go.DefaultGoVersion
}

// GoTags returns the build tags a go build of job passes in -tags: the
// job's, in their order, or none.
func GoTags(job lantern.Job) []string {
	if job.Go == nil {
		return nil
	}
	return job.Go.Tags
}
