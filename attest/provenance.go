package attest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/lanternfarm/lantern"
)

// Provenance is a SLSA Provenance v1 predicate with the fields Lantern uses,
// as Lantern writes it. Its externalParameters and internalParameters have
// Lantern's shape, so a provenance from another builder is refused rather
// than half-read; the decoder in decode.go reads it straight into a
// lantern.Rebuild.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is SLSA's buildDefinition.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   ExternalParameters   `json:"externalParameters"`
	InternalParameters   *InternalParameters  `json:"internalParameters,omitempty"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// ExternalParameters are what a user asked for: the source claim, the label
// and the recipe.
type ExternalParameters struct {
	Source lantern.Source `json:"source"`
	Label  string         `json:"label"`
	Recipe lantern.Digest `json:"recipe,omitzero"`
	// Claim is the digest of the source claim's envelope the build answers.
	Claim lantern.Digest `json:"claim,omitzero"`
	// Build is the digest of the build spec followed (generic recipe).
	Build lantern.Digest `json:"build,omitzero"`
}

// InternalParameters are what the builder fixed: the build environment.
type InternalParameters struct {
	Environment map[string]string `json:"environment,omitempty"`
}

// ResourceDescriptor is in-toto's ResourceDescriptor, as SLSA uses it.
type ResourceDescriptor struct {
	Name             string            `json:"name,omitempty"`
	URI              string            `json:"uri,omitempty"`
	Digest           map[string]string `json:"digest,omitempty"`
	DownloadLocation string            `json:"downloadLocation,omitempty"`
	MediaType        string            `json:"mediaType,omitempty"`
	Annotations      json.RawMessage   `json:"annotations,omitempty"`
}

// SHA256 returns the descriptor's sha256 as a Digest.
func (rd ResourceDescriptor) SHA256() (lantern.Digest, error) {
	h, ok := rd.Digest["sha256"]
	if !ok {
		return lantern.Digest{}, fmt.Errorf("%w: %q has no sha256 digest", ErrSubject, rd.Name)
	}
	d, err := lantern.DigestFromHex(h)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("%w: %q: %w", ErrSubject, rd.Name, err)
	}
	return d, nil
}

// RunDetails is SLSA's runDetails.
type RunDetails struct {
	Builder    Builder              `json:"builder"`
	Metadata   *BuildMetadata       `json:"metadata,omitempty"`
	Byproducts []ResourceDescriptor `json:"byproducts,omitempty"`
}

// Builder is SLSA's builder; its id is the builder's key id.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// BuildMetadata is SLSA's metadata: the job id and the build's times.
type BuildMetadata struct {
	InvocationID string     `json:"invocationId,omitempty"`
	StartedOn    *time.Time `json:"startedOn,omitempty"`
	FinishedOn   *time.Time `json:"finishedOn,omitempty"`
}

const (
	depSource    = "source"
	byproductLog = "log"
)

func rebuildProvenance(r *lantern.Rebuild) *Provenance {
	p := &Provenance{
		BuildDefinition: BuildDefinition{
			BuildType: r.Recipe.BuildType,
			ExternalParameters: ExternalParameters{
				Source: r.Source,
				Label:  r.Label,
				Recipe: r.Recipe.Digest,
				Claim:  r.Claim,
				Build:  r.Build,
			},
			ResolvedDependencies: []ResourceDescriptor{descriptor(depSource, "", r.Source.Digest)},
		},
		RunDetails: RunDetails{
			Builder:  Builder{ID: r.Builder.String()},
			Metadata: &BuildMetadata{InvocationID: r.JobID, StartedOn: timePtr(r.Started), FinishedOn: timePtr(r.Finished)},
		},
	}
	if len(r.Environment) > 0 {
		p.BuildDefinition.InternalParameters = &InternalParameters{Environment: r.Environment}
	}
	for _, d := range r.Dependencies {
		p.BuildDefinition.ResolvedDependencies = append(p.BuildDefinition.ResolvedDependencies, descriptor(d.Name, d.URI, d.Digest))
	}
	if !r.Log.IsZero() {
		p.RunDetails.Byproducts = []ResourceDescriptor{descriptor(byproductLog, "", r.Log)}
	}
	return p
}

func descriptor(name, uri string, d lantern.Digest) ResourceDescriptor {
	return ResourceDescriptor{Name: name, URI: uri, Digest: map[string]string{"sha256": d.Hex()}}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
