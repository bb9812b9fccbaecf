package lantern

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// RecipeGeneric is the name of the recipe that builds a source by a
// BuildSpec; its source claims must carry one.
const RecipeGeneric = "generic"

// BuildSpec says how the generic recipe builds a source: which builder
// image, by digest, which commands, which outputs. It is the shape of
// Reproducible Central's buildspec files, and it is part of the source claim,
// so the signer of the claim says how the source is built. Its digest
// (Digest) is in every attestation of a build that followed it.
type BuildSpec struct {
	// Image is the builder image by digest:
	// REGISTRY/REPOSITORY[:TAG]@sha256:HEX. Only the digest decides what is
	// pulled; the tag, if any, is for people.
	Image string `json:"image"`
	// Commands are run in order by /bin/sh in the image, in a writable copy
	// of the source; the build fails at the first that fails.
	Commands []string `json:"commands"`
	// Outputs are the files the build makes, label → path relative to the
	// output directory ($OUT in the sandbox).
	Outputs map[string]string `json:"outputs"`
	// Env adds variables to the recipe's fixed environment; it may not
	// change the ones the recipe fixes.
	Env map[string]string `json:"env,omitempty"`
	// SourceDate is the build's SOURCE_DATE_EPOCH; absent, 0.
	SourceDate time.Time `json:"sourceDate,omitzero"`
}

var (
	imageByDigest = regexp.MustCompile(`^[a-z0-9]([a-z0-9.:-]*[a-z0-9])?(/[a-z0-9]+([._-]+[a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}$`)
	specEnvName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks the spec's shape: an image by digest, at least one
// command, at least one output with a clean relative path, environment
// names that a shell takes.
func (s *BuildSpec) Validate() error {
	if !imageByDigest.MatchString(s.Image) {
		return fmt.Errorf("image %q: want an image by digest, such as registry.example/builder@sha256:<64 hex digits>", truncate(s.Image))
	}
	if len(s.Commands) == 0 {
		return fmt.Errorf("commands: missing: want at least one shell command")
	}
	for i, c := range s.Commands {
		if strings.TrimSpace(c) == "" {
			return fmt.Errorf("commands[%d]: empty", i)
		}
		if strings.ContainsRune(c, 0) {
			return fmt.Errorf("commands[%d]: holds a NUL byte", i)
		}
	}
	if len(s.Outputs) == 0 {
		return fmt.Errorf("outputs: missing: want at least one label and the path of its file")
	}
	for _, label := range slices.Sorted(maps.Keys(s.Outputs)) {
		if err := validName("outputs label", label); err != nil {
			return err
		}
		p := s.Outputs[label]
		if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") || strings.ContainsRune(p, 0) {
			return fmt.Errorf("outputs[%q] %q: want a clean path relative to the output directory, such as bin/tool", label, truncate(p))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if !specEnvName.MatchString(k) {
			return fmt.Errorf("env: name %q: want letters, digits and underscores, not starting with a digit", truncate(k))
		}
		if strings.ContainsRune(s.Env[k], 0) {
			return fmt.Errorf("env[%q]: holds a NUL byte", k)
		}
	}
	if !s.SourceDate.IsZero() && s.SourceDate.Before(time.Unix(0, 0)) {
		return fmt.Errorf("sourceDate %s: want 1970 or later", s.SourceDate.Format(time.RFC3339))
	}
	return nil
}

// ImageDigest returns the digest Image names.
func (s *BuildSpec) ImageDigest() (Digest, error) {
	_, d, ok := strings.Cut(s.Image, "@")
	if !ok {
		return Digest{}, fmt.Errorf("image %q: no digest", truncate(s.Image))
	}
	return ParseDigest(d)
}

// SourceDateEpoch returns SOURCE_DATE_EPOCH for the build, in seconds.
func (s *BuildSpec) SourceDateEpoch() int64 {
	if s.SourceDate.IsZero() {
		return 0
	}
	return s.SourceDate.Unix()
}

// Digest returns the SHA-256 of the spec's canonical form: its JSON as
// encoding/json writes it (fields in the order above, map keys sorted, no
// spaces, the source date in UTC). Two specs with the same digest build the same way.
func (s *BuildSpec) Digest() Digest {
	c := *s
	c.SourceDate = c.SourceDate.UTC()
	b, err := json.Marshal(&c)
	if err != nil {
		panic("lantern: encode build spec: " + err.Error()) // strings, maps and a time: cannot fail
	}
	return DigestOf(b)
}
