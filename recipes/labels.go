package recipes

import (
	"maps"
	"path"
	"regexp"
	"slices"

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
		return []string{GoLabel(job.Source.Name, r.Go.DefaultGOOS, r.Go.DefaultGOARCH)}
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
// one before a major-version suffix such as /v2), then the platform.
func GoLabel(pkg, goos, goarch string) string {
	name := path.Base(pkg)
	if dir := path.Dir(pkg); majorVersion.MatchString(name) && dir != "." && dir != "/" {
		name = path.Base(dir)
	}
	return name + "-" + goos + "-" + goarch
}
