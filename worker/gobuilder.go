package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker/solve"
)

// GoBuilder rebuilds jobs with the go recipe: the inputs are fetched and
// checked outside the sandbox (recipes.PrepareGo), the build
// (recipes.GoBuild) runs in the BuildKit c is a client of (solve.Run).
type GoBuilder struct {
	// Limits bound each build; zero fields take recipes.DefaultGoLimits.
	Limits recipes.Limits
	// Caps bound each build's step; zero: none (see Caps).
	Caps Caps
	// UnsizedScratch leaves each build's scratch tmpfs without a size, for
	// a BuildKit that refuses a sized one (Docker Engine before 23.0; see
	// package dockerengine): it is then as large as the kernel lets a tmpfs
	// be, half the memory. It changes no output.
	UnsizedScratch bool

	c        *client.Client
	r        *recipes.Recipe
	modCache string
	log      *slog.Logger
}

var _ Builder = (*GoBuilder)(nil)

// NewGoBuilder returns the go recipe's Builder. modCache is a Go module cache
// shared by the worker's builds (the go command locks what it writes).
func NewGoBuilder(c *client.Client, modCache string, log *slog.Logger) (*GoBuilder, error) {
	r, err := recipes.Load("go")
	if err != nil {
		return nil, err
	}
	return &GoBuilder{c: c, r: r, modCache: modCache, log: log}, nil
}

// Recipe implements Builder.
func (g *GoBuilder) Recipe() lantern.Recipe { return g.r.Ref() }

// Build implements Builder. A go source claim names the main package and
// its module's version; the module is the longest prefix of the package
// path that the module proxy has at that version and that holds the
// package. The job's claim may name a Go release and platforms (its
// GoBuild): one toolchain, of that release for this machine, builds the
// command for each platform in turn, each its own output and label.
func (g *GoBuilder) Build(ctx context.Context, job lantern.Job, work string, log io.Writer) (*Result, error) {
	platforms := recipes.GoPlatforms(g.r, job)
	goVersion := recipes.GoVersion(g.r, job)
	// The toolchain needs nothing of the source: it is fetched while the
	// module is looked up, and sent to BuildKit while it is checked and
	// PrepareGo does the rest.
	tc := g.sendToolchain(ctx, job, goVersion, filepath.Join(work, "toolchain"))
	defer tc.stop()
	// The prefixes the proxy has, looked up at once; where none is found,
	// each one is tried, for PrepareGo's errors.
	candidates := modulePrefixes(job.Source.Name)
	found, err := recipes.LookupGoModules(ctx, candidates, job.Source.Version, recipes.PrepareOptions{ModCache: g.modCache, Log: g.log})
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(found) > 0 {
		candidates = found
	}
	// Each platform's inputs apart: a build for another platform may read
	// other modules.
	inputs := make([]*recipes.GoInputs, len(platforms))
	for i, p := range platforms {
		dir := filepath.Join(work, "inputs")
		if len(platforms) > 1 {
			dir = filepath.Join(work, "inputs-"+p.GOOS+"-"+p.GOARCH)
		}
		var lastErr error
		for _, module := range candidates {
			spec := recipes.GoSpec{Module: module, Version: job.Source.Version, Package: job.Source.Name,
				GoVersion: goVersion, GOOS: p.GOOS, GOARCH: p.GOARCH, Tags: recipes.GoTags(job),
				SourceDigest: job.Source.Digest, SourceGoSum: job.Source.GoSum}
			fmt.Fprintf(log, "lantern: fetching %s@%s and its inputs for go%s %s/%s%s\n", module, job.Source.Version, goVersion, p.GOOS, p.GOARCH, withTags(spec.Tags))
			in, err := recipes.PrepareGo(ctx, g.r, spec, dir, recipes.PrepareOptions{ModCache: g.modCache, Log: g.log, Limits: g.Limits, Toolchain: tc.checked()})
			if err == nil {
				inputs[i] = in
				candidates = []string{module} // the same module for every platform
				break
			}
			var de *recipes.DigestError
			if errors.As(err, &de) {
				return nil, &BuildError{Stage: "verify-inputs", Expected: de.Expected, Actual: de.Actual, Err: err}
			}
			lastErr = err
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		if inputs[i] == nil {
			return nil, &BuildError{Stage: "fetch", Err: fmt.Errorf("no module at %s contains %s for %s/%s: %w", job.Source.Version, job.Source.Name, p.GOOS, p.GOARCH, lastErr)}
		}
	}
	tc.wait() // the build's solve finds the toolchain sent, or sends it itself
	res := &Result{Outputs: map[string]string{}, PerLabel: map[string]Provenance{}}
	for i, in := range inputs {
		label := recipes.GoLabel(job.Source.Name, in.Spec.GOOS, in.Spec.GOARCH)
		out := filepath.Join(work, "out")
		if len(inputs) > 1 {
			out = filepath.Join(out, in.Spec.GOOS+"-"+in.Spec.GOARCH)
		}
		path, prov, err := g.build(ctx, in, out, log)
		if err != nil {
			return nil, err
		}
		res.Outputs[label] = path
		res.PerLabel[label] = prov
		if i == 0 {
			res.Dependencies, res.Environment = prov.Dependencies, prov.Environment
		}
	}
	if len(inputs) == 1 {
		res.PerLabel = nil
	}
	return res, nil
}

// build builds one platform's prepared inputs in BuildKit and returns the
// binary's path in out, and how it was made.
func (g *GoBuilder) build(ctx context.Context, in *recipes.GoInputs, out string, log io.Writer) (string, Provenance, error) {
	in.Limits.Output = exportCap(in.Limits.Output, g.Caps.Disk)
	if g.UnsizedScratch {
		in.Limits.Tmp = 0
	}
	err := confine(ctx, g.Caps, g.r.Go.Paths.Out, log, func(ctx context.Context, cgroup string) error {
		in.Limits.Cgroup = cgroup
		b, err := recipes.GoBuild(ctx, in, g.r)
		if err != nil {
			return err
		}
		return solve.Run(ctx, g.c, b, out, log)
	})
	if err != nil {
		if _, ok := errors.AsType[*BuildError](err); ok {
			return "", Provenance{}, err
		}
		var de *recipes.DigestError
		switch {
		case errors.As(err, &de):
			return "", Provenance{}, &BuildError{Stage: "verify-inputs", Expected: de.Expected, Actual: de.Actual, Err: err}
		case errors.Is(err, recipes.ErrStepFailed), errors.Is(err, recipes.ErrTimeLimit):
			return "", Provenance{}, &BuildError{Stage: "build", Err: err}
		case errors.Is(err, recipes.ErrOutputs):
			return "", Provenance{}, &BuildError{Stage: "outputs", Err: err}
		}
		return "", Provenance{}, err
	}
	bin, err := in.BinaryPath(g.r)
	if err != nil {
		return "", Provenance{}, err
	}
	env, err := in.Environment(g.r)
	if err != nil {
		return "", Provenance{}, err
	}
	path := filepath.Join(out, filepath.FromSlash(strings.TrimPrefix(bin, "/")))
	return path, Provenance{Dependencies: in.Dependencies(), Environment: env}, nil
}

// modulePrefixes returns the import path and its parents, longest first:
// the candidates for the module that holds a package.
func modulePrefixes(pkg string) []string {
	var out []string
	for p := pkg; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		out = append(out, p)
		if !strings.Contains(p, "/") {
			break
		}
	}
	return out
}

// toolchainSend is a toolchain being fetched and checked, and sent to
// BuildKit while it is checked.
type toolchainSend struct {
	ready  chan struct{} // closed when tc and err are set
	tc     recipes.GoToolchain
	err    error
	sent   chan struct{} // closed when the send is over, or never started
	cancel context.CancelFunc
}

// sendToolchain starts fetching the toolchain of job's build with the go
// recipe, sending it to BuildKit as soon as it is fetched, and checking it
// meanwhile. A failure is only logged: PrepareGo and the build's own solve
// do the same work again, and report it.
func (g *GoBuilder) sendToolchain(ctx context.Context, job lantern.Job, goVersion, dir string) *toolchainSend {
	ctx, cancel := context.WithCancel(ctx)
	t := &toolchainSend{ready: make(chan struct{}), sent: make(chan struct{}), cancel: cancel}
	go func() {
		sending := false
		fetched := func(tc recipes.GoToolchain) {
			sending = true
			go func() {
				defer close(t.sent)
				start := time.Now()
				b, err := recipes.ToolchainSend(ctx, tc)
				if err == nil {
					err = solve.Send(ctx, g.c, b)
				}
				if err != nil {
					g.log.Debug("toolchain not sent ahead", "error", err)
					return
				}
				g.log.Debug("sent the toolchain to BuildKit", "took", time.Since(start))
			}()
		}
		spec := recipes.GoSpec{Version: job.Source.Version, Package: job.Source.Name, GoVersion: goVersion}
		t.tc, t.err = recipes.PrepareGoToolchain(ctx, g.r, spec, dir, recipes.PrepareOptions{ModCache: g.modCache, Log: g.log, Fetched: fetched})
		if t.err != nil {
			g.log.Debug("toolchain not checked ahead", "error", t.err)
		}
		if !sending {
			close(t.sent)
		}
		close(t.ready)
	}()
	return t
}

// checked waits for the toolchain's check and returns the toolchain, or
// nil if it failed.
func (t *toolchainSend) checked() *recipes.GoToolchain {
	<-t.ready
	if t.err != nil {
		return nil
	}
	return &t.tc
}

// wait waits for the check and the send to be over.
func (t *toolchainSend) wait() {
	<-t.ready
	<-t.sent
}

// stop stops the check and the send if they are still going, and waits
// for them.
func (t *toolchainSend) stop() {
	t.cancel()
	t.wait()
}

// withTags says " with -tags=a,b" for a build with tags, for the log.
func withTags(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	return " with -tags=" + strings.Join(tags, ",")
}
