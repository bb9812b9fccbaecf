package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/moby/buildkit/client"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/recipes"
)

// GenericBuilder rebuilds jobs with the generic recipe: the source tarball
// is downloaded and checked outside the sandbox (recipes.PrepareGeneric), the
// build runs by the job's build spec in the BuildKit c is a client of
// (recipes.BuildGeneric).
type GenericBuilder struct {
	// Caps bound each build's step; zero: none (see Caps).
	Caps Caps

	c      *client.Client
	r      *recipes.Recipe
	limits recipes.Limits
	http   *http.Client
	log    *slog.Logger
}

var _ Builder = (*GenericBuilder)(nil)

// NewGenericBuilder returns the generic recipe's Builder. Limits that are
// zero take the recipe's defaults.
func NewGenericBuilder(c *client.Client, limits recipes.Limits, log *slog.Logger) (*GenericBuilder, error) {
	r, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		return nil, err
	}
	return &GenericBuilder{c: c, r: r, limits: limits, http: http.DefaultClient, log: log}, nil
}

// Recipe implements Builder.
func (g *GenericBuilder) Recipe() lantern.Recipe { return g.r.Ref() }

// Build implements Builder.
func (g *GenericBuilder) Build(ctx context.Context, job lantern.Job, work string, log io.Writer) (*Result, error) {
	if job.Build == nil {
		return nil, &BuildError{Stage: "prepare", Err: errors.New("the job has no build spec: the generic recipe needs one (its source claim must carry it)")}
	}
	fmt.Fprintf(log, "lantern: fetching %s from %s\n", job.Source, job.Fetch)
	in, err := recipes.PrepareGeneric(ctx, g.r, job.Source, job.Fetch, job.Build, filepath.Join(work, "inputs"),
		recipes.GenericOptions{HTTP: g.http, Limits: g.limits, Log: g.log})
	if err != nil {
		var de *recipes.DigestError
		switch {
		case errors.As(err, &de):
			fmt.Fprintf(log, "lantern: %v\n", err)
			return nil, &BuildError{Stage: "verify-inputs", Expected: de.Expected, Actual: de.Actual, Err: err}
		case errors.Is(err, recipes.ErrSourceTooLarge):
			return nil, &BuildError{Stage: "fetch", Err: err}
		}
		return nil, err
	}
	fmt.Fprintf(log, "lantern: source %s checked; building in %s\n", in.Source.Digest, in.Spec.Image)
	out := filepath.Join(work, "out")
	err = confine(ctx, g.Caps, g.r.Generic.Paths.Out, log, func(ctx context.Context, cgroup string) error {
		in.Limits.Cgroup = cgroup
		return recipes.BuildGeneric(ctx, g.c, in, g.r, out, log)
	})
	if err != nil {
		if _, ok := errors.AsType[*BuildError](err); ok {
			return nil, err
		}
		switch {
		case errors.Is(err, recipes.ErrStepFailed), errors.Is(err, recipes.ErrTimeLimit):
			return nil, &BuildError{Stage: "build", Err: err}
		case errors.Is(err, recipes.ErrOutputs):
			return nil, &BuildError{Stage: "outputs", Err: err}
		}
		return nil, err
	}
	env, err := in.Environment(g.r)
	if err != nil {
		return nil, err
	}
	outputs := map[string]string{}
	for label, p := range in.Spec.Outputs {
		outputs[label] = filepath.Join(out, filepath.FromSlash(p))
	}
	return &Result{Outputs: outputs, Dependencies: in.Dependencies(), Environment: env}, nil
}
