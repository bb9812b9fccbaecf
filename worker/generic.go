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
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker/solve"
)

// GenericBuilder rebuilds jobs with the generic recipe: the source tarball
// is downloaded and checked outside the sandbox (recipes.PrepareGeneric), the
// build runs by the job's build spec (recipes.GenericBuild) in the BuildKit
// c is a client of (solve.Run).
type GenericBuilder struct {
	// Caps bound each build's step; zero: none (see Caps).
	Caps Caps
	// UnsizedScratch leaves each build's scratch tmpfs without a size, for
	// a BuildKit that refuses a sized one (Docker Engine before 23.0; see
	// package dockerengine): it is then as large as the kernel lets a tmpfs
	// be, half the memory. It changes no output.
	UnsizedScratch bool

	c      *client.Client
	r      *recipes.Recipe
	limits recipes.Limits
	fetch  netguard.Policy
	http   *http.Client
	log    *slog.Logger
}

var _ Builder = (*GenericBuilder)(nil)

// GenericOption tunes a GenericBuilder.
type GenericOption func(*GenericBuilder)

// FetchPolicy sets where a GenericBuilder fetches source tarballs from
// (default: the zero netguard.Policy, https to public addresses only). A
// job whose URL, an address its host resolves to, or a redirect, the
// policy refuses is a signed failure at the "fetch" stage.
func FetchPolicy(p netguard.Policy) GenericOption {
	return func(g *GenericBuilder) { g.fetch = p }
}

// NewGenericBuilder returns the generic recipe's Builder. Limits that are
// zero take the recipe's defaults.
func NewGenericBuilder(c *client.Client, limits recipes.Limits, log *slog.Logger, opts ...GenericOption) (*GenericBuilder, error) {
	r, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		return nil, err
	}
	g := &GenericBuilder{c: c, r: r, limits: limits, log: log}
	for _, o := range opts {
		o(g)
	}
	g.http = g.fetch.Client(0)
	return g, nil
}

// refused is the signed failure of a fetch that g's policy refused: the
// claim's fault, not the network's.
func (g *GenericBuilder) refused(job lantern.Job, re *netguard.RefusedError, log io.Writer) error {
	err := error(re)
	if re.URL != "" && re.URL != job.Fetch {
		err = fmt.Errorf("%s redirected: %w", job.Fetch, re)
	}
	fmt.Fprintf(log, "lantern: %v\n", err)
	return &BuildError{Stage: "fetch", Err: err}
}

// Recipe implements Builder.
func (g *GenericBuilder) Recipe() lantern.Recipe { return g.r.Ref() }

// Build implements Builder.
func (g *GenericBuilder) Build(ctx context.Context, job lantern.Job, work string, log io.Writer) (*Result, error) {
	if job.Build == nil {
		return nil, &BuildError{Stage: "prepare", Err: errors.New("the job has no build spec: the generic recipe needs one (its source claim must carry it)")}
	}
	// Checked here too, not only by the client, so that a scheme the
	// client would not even try (file:) is a refusal all the same.
	var refused *netguard.RefusedError
	if errors.As(g.fetch.CheckURL(job.Fetch), &refused) {
		return nil, g.refused(job, refused, log)
	}
	fmt.Fprintf(log, "lantern: fetching %s from %s\n", job.Source, job.Fetch)
	in, err := recipes.PrepareGeneric(ctx, g.r, job.Source, job.Fetch, job.Build, filepath.Join(work, "inputs"),
		recipes.GenericOptions{HTTP: g.http, Limits: g.limits, Log: g.log})
	if err != nil {
		var de *recipes.DigestError
		switch {
		case errors.As(err, &refused):
			return nil, g.refused(job, refused, log)
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
	in.Limits.Output = exportCap(in.Limits.Output, g.Caps.Disk)
	if g.UnsizedScratch {
		in.Limits.Tmp = 0
	}
	err = confine(ctx, g.Caps, g.r.Generic.Paths.Out, log, func(ctx context.Context, cgroup string) error {
		in.Limits.Cgroup = cgroup
		b, err := recipes.GenericBuild(ctx, in, g.r)
		if err != nil {
			return err
		}
		return solve.Run(ctx, g.c, b, out, log)
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
