package lantern

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind names what a claim says. Each Kind has its own in-toto predicate type.
type Kind string

// The kinds of claim Lantern signs and reads.
const (
	KindSource         Kind = "source"          // name@version is source S
	KindRebuild        Kind = "rebuild"         // builder K rebuilt S to label → Y
	KindRebuildFailure Kind = "rebuild-failure" // builder K could not rebuild S
	KindTrust          Kind = "trust"           // key K is (or is no longer) a trusted builder / an author
	KindYank           Kind = "yank"            // name@version is NOT S
)

// Claim is one signed statement: "(actor) claims (fact) about (object) at
// (time)". The actor is the key that signs the envelope carrying it.
type Claim interface {
	Kind() Kind
	// Validate reports the first field that is missing or malformed, named as
	// the JSON field, so that errors tell a user what to fix.
	Validate() error
}

// Source names a source by name, version and the digest of its archive.
type Source struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Digest is the SHA-256 of the source archive (for Go, the module zip).
	Digest Digest `json:"digest"`
	// GoSum is Go's "h1:" hash of the module, where the source is a Go module.
	// It is recorded beside Digest, never instead of it.
	GoSum string `json:"goSum,omitempty"`
}

// String returns "name@version".
func (s Source) String() string { return s.Name + "@" + s.Version }

// Validate checks the fields of s.
func (s Source) Validate() error {
	if err := validName("name", s.Name); err != nil {
		return err
	}
	if err := validName("version", s.Version); err != nil {
		return err
	}
	if s.Digest.IsZero() {
		return fmt.Errorf("digest: missing: give the sha256 of the source archive")
	}
	if s.GoSum != "" {
		if err := validGoSum(s.GoSum); err != nil {
			return err
		}
	}
	return nil
}

// SourceClaim says "name@version is source S", optionally with the artefacts
// the project published, by label.
type SourceClaim struct {
	Source Source `json:"source"`
	// Fetch is where the source archive can be downloaded.
	Fetch string `json:"fetch,omitempty"`
	// Recipe names the recipe that rebuilds it ("go", "generic").
	Recipe string `json:"recipe,omitempty"`
	// Artefacts are the published outputs, label → digest.
	Artefacts map[string]Digest `json:"artefacts,omitempty"`
	// Build says how the generic recipe builds the source; only claims
	// with that recipe have one, and they must.
	Build *BuildSpec `json:"build,omitempty"`
	// Go says which Go release and platforms the go recipe builds the
	// command with; only claims with that recipe may have one. Nil: the
	// recipe's defaults.
	Go   *GoBuild  `json:"go,omitempty"`
	Time time.Time `json:"time"`
}

// Kind implements Claim.
func (*SourceClaim) Kind() Kind { return KindSource }

// Validate implements Claim.
func (c *SourceClaim) Validate() error {
	if err := c.Source.Validate(); err != nil {
		return fmt.Errorf("source.%w", err)
	}
	if c.Fetch != "" {
		if err := validURL("fetch", c.Fetch); err != nil {
			return err
		}
	}
	if c.Recipe != "" {
		if err := validName("recipe", c.Recipe); err != nil {
			return err
		}
	}
	if c.Go != nil {
		if r := c.RecipeName(); r != "go" {
			return fmt.Errorf("go: only claims with recipe \"go\" name a Go release and platforms, not %q", r)
		}
		if err := c.Go.Validate(); err != nil {
			return fmt.Errorf("go.%w", err)
		}
	}
	switch {
	case c.Recipe == RecipeGeneric && c.Build == nil:
		return fmt.Errorf("build: missing: the generic recipe needs a build spec (image, commands, outputs)")
	case c.Recipe != RecipeGeneric && c.Build != nil:
		return fmt.Errorf("build: only claims with recipe %q have a build spec, not %q", RecipeGeneric, c.Recipe)
	case c.Build != nil:
		if err := c.Build.Validate(); err != nil {
			return fmt.Errorf("build.%w", err)
		}
		if c.Fetch == "" {
			return fmt.Errorf("fetch: missing: the generic recipe downloads the source tarball from it")
		}
	}
	for label, d := range c.Artefacts {
		if err := validName("artefacts label", label); err != nil {
			return err
		}
		if d.IsZero() {
			return fmt.Errorf("artefacts[%q]: missing digest", label)
		}
	}
	if c.Time.IsZero() {
		return fmt.Errorf("time: missing")
	}
	return nil
}

// Dependency is one input of a build other than the source: a toolchain, a
// builder image, a module, each by digest.
type Dependency struct {
	Name   string `json:"name"`
	URI    string `json:"uri,omitempty"`
	Digest Digest `json:"digest"`
}

// Recipe names the recipe a build followed, by name and content digest.
type Recipe struct {
	// BuildType is the URI that names the recipe and its version.
	BuildType string `json:"buildType"`
	// Digest is the digest of the recipe file; changing a recipe changes it.
	Digest Digest `json:"digest,omitzero"`
}

// Rebuild says "builder K rebuilt S with recipe R and got label → Output".
// It is one output; a build with several outputs makes several Rebuilds.
type Rebuild struct {
	Source  Source `json:"source"`
	Label   string `json:"label"`
	Output  Digest `json:"output"`
	Recipe  Recipe `json:"recipe"`
	Builder Digest `json:"builder"` // key id of the builder
	// Claim is the digest of the source claim's envelope the rebuild
	// answers, so that anyone can follow author → claim → rebuild.
	Claim Digest `json:"claim,omitzero"`
	// Build is the digest of the build spec followed (generic recipe).
	Build Digest `json:"build,omitzero"`
	// Dependencies are the resolved inputs besides the source.
	Dependencies []Dependency      `json:"dependencies,omitempty"`
	Environment  map[string]string `json:"environment,omitempty"`
	JobID        string            `json:"jobId,omitempty"`
	Started      time.Time         `json:"started,omitzero"`
	Finished     time.Time         `json:"finished"`
	Log          Digest            `json:"log,omitzero"`
}

// Kind implements Claim.
func (*Rebuild) Kind() Kind { return KindRebuild }

// Validate implements Claim.
func (r *Rebuild) Validate() error {
	if err := r.Source.Validate(); err != nil {
		return fmt.Errorf("source.%w", err)
	}
	if err := validName("label", r.Label); err != nil {
		return err
	}
	if r.Output.IsZero() {
		return fmt.Errorf("output: missing digest")
	}
	if err := r.Recipe.validate(); err != nil {
		return err
	}
	if r.Builder.IsZero() {
		return fmt.Errorf("builder: missing key id")
	}
	for i, d := range r.Dependencies {
		if d.Name == "" || d.Digest.IsZero() {
			return fmt.Errorf("dependencies[%d]: want a name and a digest", i)
		}
	}
	return validTimes(r.Started, r.Finished)
}

// RebuildFailure says "builder K could not rebuild S: reason". Failures are
// signed too, so that absence of evidence is never silent.
type RebuildFailure struct {
	Source  Source `json:"source"`
	Label   string `json:"label,omitempty"`
	Recipe  Recipe `json:"recipe"`
	Builder Digest `json:"builder"`
	// Claim and Build are as in Rebuild: the source claim answered and the
	// build spec followed.
	Claim Digest `json:"claim,omitzero"`
	Build Digest `json:"build,omitzero"`
	// Stage is where it failed: "fetch", "verify-inputs", "build", "export".
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
	// Expected and Actual are set when an input did not match its claimed digest.
	Expected Digest    `json:"expected,omitzero"`
	Actual   Digest    `json:"actual,omitzero"`
	JobID    string    `json:"jobId,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished"`
	Log      Digest    `json:"log,omitzero"`
}

// Kind implements Claim.
func (*RebuildFailure) Kind() Kind { return KindRebuildFailure }

// Validate implements Claim.
func (f *RebuildFailure) Validate() error {
	if err := f.Source.Validate(); err != nil {
		return fmt.Errorf("source.%w", err)
	}
	if f.Label != "" {
		if err := validName("label", f.Label); err != nil {
			return err
		}
	}
	if err := f.Recipe.validate(); err != nil {
		return err
	}
	if f.Builder.IsZero() {
		return fmt.Errorf("builder: missing key id")
	}
	if f.Stage == "" {
		return fmt.Errorf("stage: missing")
	}
	if f.Reason == "" {
		return fmt.Errorf("reason: missing")
	}
	return validTimes(f.Started, f.Finished)
}

// Relation is what a trust claim says a key is.
type Relation string

// The relations a trust claim can state.
const (
	RelationTrustedBuilder Relation = "trusted-builder"
	RelationAuthor         Relation = "author"
)

// Trust says "key K is a trusted builder" or "key K is an author of name",
// or, with Revoked, the negation of either.
type Trust struct {
	Key      Digest   `json:"key"` // key id
	Relation Relation `json:"relation"`
	// Name is the source name the key is an author of (RelationAuthor only).
	Name    string    `json:"name,omitempty"`
	Revoked bool      `json:"revoked,omitempty"`
	Time    time.Time `json:"time"`
}

// Kind implements Claim.
func (*Trust) Kind() Kind { return KindTrust }

// Validate implements Claim.
func (t *Trust) Validate() error {
	if t.Key.IsZero() {
		return fmt.Errorf("key: missing key id")
	}
	switch t.Relation {
	case RelationTrustedBuilder:
		if t.Name != "" {
			return fmt.Errorf("name: a trusted-builder claim names no source; leave it out")
		}
	case RelationAuthor:
		if err := validName("name", t.Name); err != nil {
			return err
		}
	default:
		return fmt.Errorf("relation %q: want %q or %q", t.Relation, RelationTrustedBuilder, RelationAuthor)
	}
	if t.Time.IsZero() {
		return fmt.Errorf("time: missing")
	}
	return nil
}

// Yank says "name@version is NOT source S".
type Yank struct {
	Source Source    `json:"source"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// Kind implements Claim.
func (*Yank) Kind() Kind { return KindYank }

// Validate implements Claim.
func (y *Yank) Validate() error {
	if err := y.Source.Validate(); err != nil {
		return fmt.Errorf("source.%w", err)
	}
	if y.Time.IsZero() {
		return fmt.Errorf("time: missing")
	}
	return nil
}

func (r Recipe) validate() error {
	if r.BuildType == "" {
		return fmt.Errorf("recipe.buildType: missing")
	}
	return validURL("recipe.buildType", r.BuildType)
}

func validTimes(started, finished time.Time) error {
	if finished.IsZero() {
		return fmt.Errorf("finished: missing")
	}
	if !started.IsZero() && finished.Before(started) {
		return fmt.Errorf("finished %s is before started %s", finished.Format(time.RFC3339), started.Format(time.RFC3339))
	}
	return nil
}

// validName accepts printable text without spaces, up to 256 bytes: names,
// versions, labels and recipes all end up in URLs, file names and pages.
func validName(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: missing", field)
	}
	if len(s) > 256 {
		return fmt.Errorf("%s: %d bytes long, the limit is 256", field, len(s))
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q: not valid UTF-8", field, s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("%s %q: has a space or control character", field, s)
		}
	}
	return nil
}

func validURL(field, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s %q: %v", field, truncate(s), err)
	}
	if u.Scheme == "" {
		return fmt.Errorf("%s %q: want an absolute URL such as https://example.org/src.tar.gz", field, truncate(s))
	}
	return nil
}

// validGoSum checks Go's "h1:" + base64(SHA-256) module hash.
func validGoSum(s string) error {
	b64, ok := strings.CutPrefix(s, "h1:")
	if !ok {
		return fmt.Errorf("goSum %q: want Go's h1: hash, as in go.sum", truncate(s))
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("goSum %q: want h1: followed by the base64 of 32 bytes", truncate(s))
	}
	return nil
}
