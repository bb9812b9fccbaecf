package lantern

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Job is one rebuild to do: a source with a recipe. Every builder does every
// job once; the worker processes of one builder share its jobs.
//
// A job carries the signed source claim it was made from (Envelope), and
// every other field but Created derives from that claim (JobFromClaim): a
// worker checks the signature against the claim keys its operator accepts
// and rebuilds only a job that is exactly what its claim says, so that
// whoever can publish on the bus cannot make a builder build anything its
// operator would not have built anyway.
type Job struct {
	ID     string `json:"id"`
	Source Source `json:"source"`
	Recipe string `json:"recipe"`
	// Fetch is where the source archive can be downloaded.
	Fetch string `json:"fetch,omitempty"`
	// Published are the artefacts the source claim says the project
	// published, label → digest; rebuilds are compared with them.
	Published map[string]Digest `json:"published,omitempty"`
	// Build is the source claim's build spec, for the generic recipe.
	Build *BuildSpec `json:"build,omitempty"`
	// Go is the source claim's Go release and platforms, for the go recipe.
	Go *GoBuild `json:"go,omitempty"`
	// Claim is the digest of the source claim's envelope that made the job.
	Claim Digest `json:"claim"`
	// Envelope is that envelope, byte for byte as the farm received it
	// (base64 in the job's JSON): embedded as JSON, encoding/json would
	// compact it, and a claim posted with a newline at its end or indented
	// would no longer hash to Claim, so every worker would refuse its job.
	Envelope []byte    `json:"envelope,omitempty"`
	Created  time.Time `json:"created"`
}

// RecipeVersion is one version of a recipe as a farm checks attestations
// against it: its name, how attestations name it, and the labels of the
// outputs a build of a job with it makes.
type RecipeVersion struct {
	Name   string
	Ref    Recipe
	Labels func(Job) []string
}

// RecipeName returns the recipe that rebuilds the claim's source: the one it
// names, or "go" for a claim that names none and gives a Go module hash.
func (c *SourceClaim) RecipeName() string {
	if c.Recipe == "" && c.Source.GoSum != "" {
		return "go"
	}
	return c.Recipe
}

// JobFromClaim returns the job that the source claim c, whose envelope is
// envelope and whose signer is the key signer, makes. Created is left zero:
// it is the only field that does not derive from the claim.
func JobFromClaim(c *SourceClaim, envelope []byte, signer Digest) Job {
	recipe := c.RecipeName()
	return Job{
		ID:        JobID(c.Source, recipe, c.Build, c.Go, signer),
		Source:    c.Source,
		Recipe:    recipe,
		Fetch:     c.Fetch,
		Published: c.Artefacts,
		Build:     c.Build,
		Go:        c.Go,
		Claim:     DigestOf(envelope),
		Envelope:  envelope,
	}
}

// MatchesClaim reports, as an error naming the first field that differs,
// whether j is the job that claim (whose envelope is j.Envelope, signed by
// signer) makes. A job that does not match is not what its claimer signed.
func (j *Job) MatchesClaim(claim *SourceClaim, signer Digest) error {
	want := JobFromClaim(claim, j.Envelope, signer)
	switch {
	case j.Claim != want.Claim:
		return fmt.Errorf("claim: the job names claim %s, its envelope is %s", j.Claim, want.Claim)
	case j.ID != want.ID:
		return fmt.Errorf("id: the job is %q, its claim makes %q", j.ID, want.ID)
	case j.Source != want.Source:
		return fmt.Errorf("source: the job is about %s (%s), its claim about %s (%s)", j.Source, j.Source.Digest, want.Source, want.Source.Digest)
	case j.Recipe != want.Recipe:
		return fmt.Errorf("recipe: the job says %q, its claim %q", j.Recipe, want.Recipe)
	case j.Fetch != want.Fetch:
		return fmt.Errorf("fetch: the job says %q, its claim %q", truncate(j.Fetch), truncate(want.Fetch))
	case !maps.Equal(j.Published, want.Published):
		return fmt.Errorf("published: the job's artefacts are not its claim's")
	case (j.Build == nil) != (want.Build == nil):
		return fmt.Errorf("build: the job and its claim disagree on having a build spec")
	case j.Build != nil && j.Build.Digest() != want.Build.Digest():
		return fmt.Errorf("build: the job's build spec is %s, its claim's %s", j.Build.Digest(), want.Build.Digest())
	case !j.Go.equal(want.Go):
		return fmt.Errorf("go: the job's Go release and platforms are %s, its claim's %s", j.Go, want.Go)
	}
	return nil
}

// JobID names the job of a source built with a recipe and, for the generic
// recipe, a build spec (nil for the others), on behalf of the key that
// signed its claim. It covers every parameter the build depends on — for
// the go recipe the package path (the source's name) and version, for the
// generic recipe the spec — so that two commands of one module, or one
// source built two ways, make two jobs, and the same claim posted twice (or
// signed again by its author) makes one. It covers the signer too: a job
// carries one claim, and a builder builds only claims of keys it accepts,
// so a claim of one key must not stand in for another key's claim of the
// same build (whoever claimed first would decide, by its fetch URL and its
// key, whether the other claimer's build is done at all). For the go
// recipe it covers the claim's GoBuild (nil for the recipe's defaults): a
// job is what is built, and another Go release or platform is another
// build. A nil GoBuild adds nothing, so that the ids of jobs made before
// claims had one, and their attestations, stay as they were.
func JobID(source Source, recipe string, build *BuildSpec, gob *GoBuild, signer Digest) string {
	h := sha256.New()
	for _, s := range []string{"lantern job v3", source.Name, source.Version, source.Digest.String(), source.GoSum, recipe, signer.String()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if build != nil {
		h.Write([]byte(build.Digest().String()))
	}
	if gob != nil {
		// Each field length-prefixed, so that no two GoBuilds hash alike.
		fields := append([]string{"go", gob.Version, gob.Ldflags, strconv.Itoa(len(gob.Platforms))}, gob.Platforms...)
		fields = append(append(fields, strconv.Itoa(len(gob.Tags))), gob.Tags...)
		for _, s := range fields {
			fmt.Fprintf(h, "\x00%d:%s", len(s), s)
		}
	}
	return "j" + hex.EncodeToString(h.Sum(nil)[:16])
}

// String returns g as "go1.23.4 for linux/amd64,windows/amd64 with
// -tags=netgo", for errors.
func (g *GoBuild) String() string {
	if g == nil {
		return "the recipe's defaults"
	}
	v := "the default Go"
	if g.Version != "" {
		v = "go" + g.Version
	}
	p := "the default platform"
	if len(g.Platforms) > 0 {
		p = strings.Join(g.Platforms, ",")
	}
	if len(g.Tags) > 0 {
		p += " with -tags=" + strings.Join(g.Tags, ",")
	}
	return v + " for " + p
}

func (g *GoBuild) equal(o *GoBuild) bool {
	if g == nil || o == nil {
		return g == o
	}
	return g.Version == o.Version && g.Ldflags == o.Ldflags && slices.Equal(g.Platforms, o.Platforms) && slices.Equal(g.Tags, o.Tags)
}
