// Package claimtest holds sample claims of every kind, for the tests of the
// packages that sign, carry and read them.
package claimtest

import (
	"fmt"
	"time"

	"github.com/lanternfarm/lantern"
)

// Example is a sample claim with a name to run a subtest under.
type Example struct {
	Name  string
	Claim lantern.Claim
}

// Times the samples carry.
var (
	Started  = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	Finished = Started.Add(93 * time.Second)
)

// Stringer is the source most samples are about.
var Stringer = lantern.Source{
	Name:    "golang.org/x/tools/cmd/stringer",
	Version: "v0.30.0",
	Digest:  lantern.DigestOf([]byte("tools@v0.30.0.zip")),
	GoSum:   "h1:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq=",
}

const goBuildType = "https://lanternfarm.github.io/lantern/recipes/go/v1"

// Examples returns a valid claim of every kind, in a fixed order, with the
// optional fields set, both trust relations, revocations, and a time with a
// zone offset. The rebuilds and failed rebuilds name builder, so that they
// verify when builder signs them.
func Examples(builder lantern.Digest) []Example {
	d := func(s string) lantern.Digest { return lantern.DigestOf([]byte(s)) }
	recipe := lantern.Recipe{BuildType: goBuildType, Digest: d("go recipe v1")}
	return []Example{
		{"source", &lantern.SourceClaim{
			Source: Stringer,
			Fetch:  "https://proxy.golang.org/golang.org/x/tools/@v/v0.30.0.zip",
			Recipe: "go",
			Artefacts: map[string]lantern.Digest{
				"stringer-linux-amd64": d("stringer binary"),
				"stringer-linux-arm64": d("stringer arm binary"),
			},
			Time: Started,
		}},
		{"source-generic", &lantern.SourceClaim{
			Source: lantern.Source{Name: "hello", Version: "2.12.1", Digest: d("hello-2.12.1.tar.gz")},
			Fetch:  "https://ftp.gnu.org/gnu/hello/hello-2.12.1.tar.gz",
			Recipe: lantern.RecipeGeneric,
			Build: &lantern.BuildSpec{
				Image:      "registry.example/builders/debian:bookworm@sha256:" + d("image").Hex(),
				Commands:   []string{"./configure --prefix=/usr", "make", "cp hello \"$OUT/hello\""},
				Outputs:    map[string]string{"hello-linux-amd64": "hello"},
				Env:        map[string]string{"CFLAGS": "-O2"},
				SourceDate: Started.In(time.FixedZone("CET", 3600)),
			},
			Artefacts: map[string]lantern.Digest{"hello-linux-amd64": d("hello binary")},
			Time:      Started,
		}},
		{"rebuild", &lantern.Rebuild{
			Source:  Stringer,
			Label:   "stringer-linux-amd64",
			Output:  d("stringer binary"),
			Recipe:  recipe,
			Builder: builder,
			Claim:   d("the source claim's envelope"),
			Dependencies: []lantern.Dependency{
				{Name: "toolchain", URI: "pkg:golang/golang.org/toolchain@v0.0.1-go1.24.4.linux-amd64", Digest: d("toolchain")},
				{Name: "golang.org/x/mod@v0.23.0", Digest: d("mod")},
			},
			Environment: map[string]string{"GOOS": "linux", "GOARCH": "amd64", "CGO_ENABLED": "0", "SOURCE_DATE_EPOCH": "0"},
			JobID:       "job-42",
			Started:     Started,
			Finished:    Finished,
			Log:         d("build log"),
		}},
		{"rebuild-minimal", &lantern.Rebuild{
			Source:   lantern.Source{Name: "hello", Version: "1.0", Digest: d("hello.tar")},
			Label:    "hello",
			Output:   d("hello"),
			Recipe:   lantern.Recipe{BuildType: "https://lanternfarm.github.io/lantern/builds/maintainer/v1"},
			Builder:  builder,
			Finished: Finished,
		}},
		{"rebuild-failure", &lantern.RebuildFailure{
			Source:   Stringer,
			Label:    "stringer-linux-amd64",
			Recipe:   recipe,
			Builder:  builder,
			Claim:    d("the source claim's envelope"),
			Build:    d("a build spec"),
			Stage:    "verify-inputs",
			Reason:   "source archive does not match the claimed digest",
			Expected: Stringer.Digest,
			Actual:   d("something else"),
			JobID:    "job-43",
			Started:  Started,
			Finished: Finished,
			Log:      d("failure log"),
		}},
		{"trusted-builder", &lantern.Trust{Key: d("a builder key"), Relation: lantern.RelationTrustedBuilder, Time: Started}},
		{"author", &lantern.Trust{Key: d("an author key"), Relation: lantern.RelationAuthor, Name: Stringer.Name, Time: Started}},
		{"revoked-builder", &lantern.Trust{Key: d("a builder key"), Relation: lantern.RelationTrustedBuilder, Revoked: true, Time: Finished}},
		{"revoked-author", &lantern.Trust{Key: d("an author key"), Relation: lantern.RelationAuthor, Name: Stringer.Name, Revoked: true, Time: Finished}},
		{"yank", &lantern.Yank{Source: Stringer, Reason: "retagged upstream", Time: Finished}},
		// A time with a zone offset, as a person's own clock gives it.
		{"yank-zoned", &lantern.Yank{Source: Stringer, Time: Finished.In(time.FixedZone("IST", 5*3600+1800))}},
	}
}

// Get returns the example called name.
func Get(builder lantern.Digest, name string) lantern.Claim {
	for _, ex := range Examples(builder) {
		if ex.Name == name {
			return ex.Claim
		}
	}
	panic(fmt.Sprintf("claimtest: no example %q", name))
}

// Claims returns the claims of Examples, in order.
func Claims(builder lantern.Digest) []lantern.Claim {
	var out []lantern.Claim
	for _, ex := range Examples(builder) {
		out = append(out, ex.Claim)
	}
	return out
}
