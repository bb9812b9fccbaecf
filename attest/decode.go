package attest

import (
	"errors"
	"fmt"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/strictjson"
)

// The decoders below read statements and predicates field by field with
// strictjson: exact field names, no field twice, no unknown field, no null
// where a value belongs. They mirror the JSON tags of the types they fill, and
// the round-trip tests hold the two in step.

type decoder = strictjson.Decoder

// decodeTop runs fn over the whole of b and sorts its error: unknown fields
// stay ErrUnknownField, other JSON errors become ErrMalformed.
func decodeTop(b []byte, fn func(d *decoder) error) error {
	d := strictjson.NewDecoder(b)
	err := fn(d)
	if err == nil {
		err = d.End()
	}
	if err == nil {
		return nil
	}
	var je *strictjson.Error
	if errors.As(err, &je) && !errors.Is(err, ErrUnknownField) {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return err
}

func str(d *decoder, out *string) (err error) {
	*out, err = d.String()
	return err
}

func digestValue(d *decoder, out *lantern.Digest) error {
	at := d.Offset()
	b, err := d.PlainString() // ParseDigest checks every byte
	if err != nil {
		return err
	}
	if *out, err = lantern.ParseDigest(string(b)); err != nil {
		return &strictjson.Error{Offset: at, Err: strictjson.ErrType, Msg: err.Error()}
	}
	return nil
}

func timeValue(d *decoder, out *time.Time) error {
	at := d.Offset()
	s, err := d.String()
	if err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		// time.Parse takes some times that cannot be written back (a +24:00
		// offset, a year that leaves 0–9999 in UTC): refuse what Lantern
		// could not re-encode.
		if _, err = t.MarshalText(); err == nil {
			_, err = t.UTC().MarshalText()
		}
	}
	if err != nil {
		return &strictjson.Error{Offset: at, Err: strictjson.ErrType, Msg: fmt.Sprintf("time %q: want RFC 3339 in years 0000–9999, such as 2026-11-25T10:00:00Z", s)}
	}
	*out = t
	return nil
}

func boolValue(d *decoder, out *bool) (err error) {
	*out, err = d.Bool()
	return err
}

func stringMap(d *decoder, out *map[string]string) (err error) {
	*out, err = d.StringMap()
	return err
}

// decodeStatement reads a statement. When predicateType comes before the
// predicate, as Lantern writes it, a predicate of a known type is decoded in
// the same pass; otherwise (*Statement).Claim decodes it later.
func decodeStatement(b []byte) (*Statement, error) {
	var s Statement
	err := decodeTop(b, func(d *decoder) error {
		return d.Object(func(d *decoder, name []byte) error {
			switch string(name) {
			case "_type":
				return str(d, &s.Type)
			case "subject":
				return decodeDescriptors(d, &s.Subject)
			case "predicateType":
				return str(d, &s.PredicateType)
			case "predicate":
				if !knownPredicate(s.PredicateType) {
					raw, err := d.Raw()
					s.Predicate = raw
					return err
				}
				raw, err := d.Value(func(d *decoder) (err error) {
					s.parsed, err = decodePredicate(d, s.PredicateType)
					return err
				})
				s.Predicate = raw
				return err
			}
			return d.UnknownField(name)
		})
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

func decodeDescriptor(d *decoder, rd *ResourceDescriptor) error {
	return d.Object(func(d *decoder, name []byte) error {
		switch string(name) {
		case "name":
			return str(d, &rd.Name)
		case "uri":
			return str(d, &rd.URI)
		case "digest":
			return stringMap(d, &rd.Digest)
		case "downloadLocation":
			return str(d, &rd.DownloadLocation)
		case "mediaType":
			return str(d, &rd.MediaType)
		case "annotations":
			raw, err := d.Raw()
			rd.Annotations = raw
			return err
		}
		return d.UnknownField(name)
	})
}

func decodeDescriptors(d *decoder, out *[]ResourceDescriptor) error {
	// Collect on the stack and allocate the slice once, at its final size.
	var buf [8]ResourceDescriptor
	list := buf[:0]
	err := d.Array(func(d *decoder) error {
		var rd ResourceDescriptor
		if err := decodeDescriptor(d, &rd); err != nil {
			return err
		}
		list = append(list, rd)
		return nil
	})
	*out = append(*out, list...)
	return err
}

func decodeSource(d *decoder, s *lantern.Source) error {
	return d.Object(func(d *decoder, name []byte) error {
		switch string(name) {
		case "name":
			return str(d, &s.Name)
		case "version":
			return str(d, &s.Version)
		case "digest":
			return digestValue(d, &s.Digest)
		case "goSum":
			return str(d, &s.GoSum)
		}
		return d.UnknownField(name)
	})
}

func decodeBuildSpec(d *decoder, s *lantern.BuildSpec) error {
	return d.Object(func(d *decoder, name []byte) error {
		switch string(name) {
		case "image":
			return str(d, &s.Image)
		case "commands":
			s.Commands = []string{}
			return d.Array(func(d *decoder) error {
				c, err := d.String()
				s.Commands = append(s.Commands, c)
				return err
			})
		case "outputs":
			return stringMap(d, &s.Outputs)
		case "env":
			return stringMap(d, &s.Env)
		case "sourceDate":
			return timeValue(d, &s.SourceDate)
		}
		return d.UnknownField(name)
	})
}

func decodeGoBuild(d *decoder, g *lantern.GoBuild) error {
	strings := func(d *decoder, out *[]string) error {
		*out = []string{}
		return d.Array(func(d *decoder) error {
			s, err := d.String()
			*out = append(*out, s)
			return err
		})
	}
	return d.Object(func(d *decoder, name []byte) error {
		switch string(name) {
		case "version":
			return str(d, &g.Version)
		case "platforms":
			return strings(d, &g.Platforms)
		case "ldflags":
			return str(d, &g.Ldflags)
		case "tags":
			return strings(d, &g.Tags)
		}
		return d.UnknownField(name)
	})
}

func decodeRecipe(d *decoder, r *lantern.Recipe) error {
	return d.Object(func(d *decoder, name []byte) error {
		switch string(name) {
		case "buildType":
			return str(d, &r.BuildType)
		case "digest":
			return digestValue(d, &r.Digest)
		}
		return d.UnknownField(name)
	})
}

// rebuildDraft is a rebuild read from a SLSA provenance predicate, before
// the statement's subject gives it its output. The provenance is decoded
// straight into it: the predicate is the hot path of every verification.
type rebuildDraft struct {
	r         lantern.Rebuild
	builderID string
	deps      []lantern.Dependency // resolvedDependencies, the source among them
}

func decodeProvenance(d *decoder) (*rebuildDraft, error) {
	p := &rebuildDraft{}
	r := &p.r
	err := d.Object(func(d *decoder, name []byte) error {
		switch string(name) {
		case "buildDefinition":
			return d.Object(func(d *decoder, name []byte) error {
				switch string(name) {
				case "buildType":
					return str(d, &r.Recipe.BuildType)
				case "externalParameters":
					return d.Object(func(d *decoder, name []byte) error {
						switch string(name) {
						case "source":
							return decodeSource(d, &r.Source)
						case "label":
							return str(d, &r.Label)
						case "recipe":
							return digestValue(d, &r.Recipe.Digest)
						case "claim":
							return digestValue(d, &r.Claim)
						case "build":
							return digestValue(d, &r.Build)
						}
						return d.UnknownField(name)
					})
				case "internalParameters":
					return d.Object(func(d *decoder, name []byte) error {
						if string(name) == "environment" {
							return stringMap(d, &r.Environment)
						}
						return d.UnknownField(name)
					})
				case "resolvedDependencies":
					return decodeDependencies(d, &p.deps)
				}
				return d.UnknownField(name)
			})
		case "runDetails":
			return d.Object(func(d *decoder, name []byte) error {
				switch string(name) {
				case "builder":
					return d.Object(func(d *decoder, name []byte) error {
						switch string(name) {
						case "id":
							return str(d, &p.builderID)
						case "version":
							_, err := d.StringMap()
							return err
						}
						return d.UnknownField(name)
					})
				case "metadata":
					return d.Object(func(d *decoder, name []byte) error {
						switch string(name) {
						case "invocationId":
							return str(d, &r.JobID)
						case "startedOn":
							return timeValue(d, &r.Started)
						case "finishedOn":
							return timeValue(d, &r.Finished)
						}
						return d.UnknownField(name)
					})
				case "byproducts":
					var products []lantern.Dependency
					if err := decodeDependencies(d, &products); err != nil {
						return err
					}
					for _, bp := range products {
						if bp.Name == byproductLog {
							r.Log = bp.Digest
						}
					}
					return nil
				}
				return d.UnknownField(name)
			})
		}
		return d.UnknownField(name)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// rebuild completes the draft with the statement's one subject.
func (p *rebuildDraft) rebuild(sub Subject) (*lantern.Rebuild, error) {
	r := p.r // a copy: the draft stays as decoded
	out, err := sub.SHA256()
	if err != nil {
		return nil, err
	}
	if sub.Name != r.Label {
		return nil, fmt.Errorf("%w: name %q, but externalParameters.label is %q", ErrSubject, sub.Name, r.Label)
	}
	r.Output = out
	if r.Builder, err = lantern.ParseDigest(p.builderID); err != nil {
		return nil, fmt.Errorf("%w: runDetails.builder.id: want the builder's key id: %w", ErrInvalidClaim, err)
	}
	sawSource := false
	for i, dep := range p.deps {
		if dep.Digest.IsZero() {
			return nil, fmt.Errorf("%w: resolvedDependencies[%d]: %q has no sha256 digest", ErrInvalidClaim, i, dep.Name)
		}
		if dep.Name == depSource && !sawSource {
			if dep.Digest != r.Source.Digest {
				return nil, fmt.Errorf("%w: resolvedDependencies source %s differs from externalParameters.source.digest %s", ErrInvalidClaim, dep.Digest, r.Source.Digest)
			}
			sawSource = true
			continue
		}
		if r.Dependencies == nil {
			r.Dependencies = make([]lantern.Dependency, 0, len(p.deps)-1)
		}
		r.Dependencies = append(r.Dependencies, dep)
	}
	if !sawSource {
		return nil, fmt.Errorf("%w: resolvedDependencies has no %q entry", ErrInvalidClaim, depSource)
	}
	return &r, nil
}

// decodeDependencies reads a list of ResourceDescriptors as Dependencies:
// name, uri and the sha256 of the digest set. The other standard fields are
// checked for their type and not kept, as Dependency has no place for them.
func decodeDependencies(d *decoder, out *[]lantern.Dependency) error {
	var buf [8]lantern.Dependency
	list := buf[:0]
	err := d.Array(func(d *decoder) error {
		var dep lantern.Dependency
		err := d.Object(func(d *decoder, name []byte) error {
			switch string(name) {
			case "name":
				return str(d, &dep.Name)
			case "uri":
				return str(d, &dep.URI)
			case "digest":
				return decodeDigestSet(d, &dep.Digest)
			case "downloadLocation", "mediaType":
				_, err := d.StringBytes()
				return err
			case "annotations":
				_, err := d.Raw()
				return err
			}
			return d.UnknownField(name)
		})
		list = append(list, dep)
		return err
	})
	*out = append(*out, list...)
	return err
}

// decodeDigestSet reads an in-toto digest set, keeping its sha256; the other
// algorithms must be strings.
func decodeDigestSet(d *decoder, sha *lantern.Digest) error {
	return d.Object(func(d *decoder, name []byte) error {
		at := d.Offset()
		if string(name) != "sha256" {
			_, err := d.StringBytes()
			return err
		}
		v, err := d.PlainString() // DigestFromHex checks every byte
		if err != nil {
			return err
		}
		if *sha, err = lantern.DigestFromHex(string(v)); err != nil {
			return &strictjson.Error{Offset: at, Err: strictjson.ErrType, Msg: "sha256 " + err.Error()}
		}
		return nil
	})
}

func knownPredicate(predicateType string) bool {
	switch predicateType {
	case PredicateSLSAProvenance, PredicateSourceClaim, PredicateRebuildFailure, PredicateTrust, PredicateYank:
		return true
	}
	return false
}

// decodePredicate reads a predicate of a known type: a *rebuildDraft for SLSA
// provenance, or the lantern.Claim of one of Lantern's own types.
func decodePredicate(d *decoder, predicateType string) (any, error) {
	var c lantern.Claim
	switch predicateType {
	case PredicateSLSAProvenance:
		p, err := decodeProvenance(d)
		if err != nil {
			return nil, fmt.Errorf("provenance predicate: %w", err)
		}
		return p, nil
	case PredicateSourceClaim:
		c = new(lantern.SourceClaim)
	case PredicateRebuildFailure:
		c = new(lantern.RebuildFailure)
	case PredicateTrust:
		c = new(lantern.Trust)
	case PredicateYank:
		c = new(lantern.Yank)
	default:
		return nil, fmt.Errorf("%w: %q is not a Lantern claim (want %s, or a Lantern type under %s)", ErrPredicateType, truncate(predicateType), PredicateSLSAProvenance, URIBase)
	}
	err := d.Object(func(d *decoder, name []byte) error {
		if ok, err := claimField(d, c, string(name)); ok {
			return err
		}
		return d.UnknownField(name)
	})
	if err != nil {
		return nil, fmt.Errorf("%s predicate: %w", c.Kind(), err)
	}
	return c, nil
}

// claimField reads field name of c, reporting false for a field c does not have.
func claimField(d *decoder, c lantern.Claim, name string) (bool, error) {
	switch c := c.(type) {
	case *lantern.SourceClaim:
		switch name {
		case "source":
			return true, decodeSource(d, &c.Source)
		case "fetch":
			return true, str(d, &c.Fetch)
		case "recipe":
			return true, str(d, &c.Recipe)
		case "artefacts":
			c.Artefacts = map[string]lantern.Digest{}
			return true, d.Object(func(d *decoder, label []byte) error {
				var dg lantern.Digest
				if err := digestValue(d, &dg); err != nil {
					return err
				}
				c.Artefacts[string(label)] = dg
				return nil
			})
		case "build":
			c.Build = new(lantern.BuildSpec)
			return true, decodeBuildSpec(d, c.Build)
		case "go":
			c.Go = new(lantern.GoBuild)
			return true, decodeGoBuild(d, c.Go)
		case "time":
			return true, timeValue(d, &c.Time)
		}
	case *lantern.RebuildFailure:
		switch name {
		case "source":
			return true, decodeSource(d, &c.Source)
		case "label":
			return true, str(d, &c.Label)
		case "recipe":
			return true, decodeRecipe(d, &c.Recipe)
		case "builder":
			return true, digestValue(d, &c.Builder)
		case "claim":
			return true, digestValue(d, &c.Claim)
		case "build":
			return true, digestValue(d, &c.Build)
		case "stage":
			return true, str(d, &c.Stage)
		case "reason":
			return true, str(d, &c.Reason)
		case "expected":
			return true, digestValue(d, &c.Expected)
		case "actual":
			return true, digestValue(d, &c.Actual)
		case "jobId":
			return true, str(d, &c.JobID)
		case "started":
			return true, timeValue(d, &c.Started)
		case "finished":
			return true, timeValue(d, &c.Finished)
		case "log":
			return true, digestValue(d, &c.Log)
		}
	case *lantern.Trust:
		switch name {
		case "key":
			return true, digestValue(d, &c.Key)
		case "relation":
			var s string
			err := str(d, &s)
			c.Relation = lantern.Relation(s)
			return true, err
		case "name":
			return true, str(d, &c.Name)
		case "revoked":
			return true, boolValue(d, &c.Revoked)
		case "time":
			return true, timeValue(d, &c.Time)
		}
	case *lantern.Yank:
		switch name {
		case "source":
			return true, decodeSource(d, &c.Source)
		case "reason":
			return true, str(d, &c.Reason)
		case "time":
			return true, timeValue(d, &c.Time)
		}
	}
	return false, nil
}
