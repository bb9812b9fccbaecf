// Package solve runs the builds that recipes describe (recipes.Build) in
// BuildKit: it is the one place Lantern solves LLB. It takes a BuildKit
// client and does not care what the client reaches — a buildkitd
// (worker/buildkit) or the BuildKit built into Docker Engine — so that both
// backends build the same definitions the same way: the same sandbox, the
// same bounds, the same log and the same errors.
//
// Run solves a build and exports its result into a directory: the result
// comes as a tar stream, unpacked as it arrives through an os.Root of the
// directory (internal/unpack) and stopped past the build's output cap, so
// that no more than that is ever written on the worker's disk, whatever
// the build did. A solve still running at the build's time limit is
// cancelled, which kills its build step. The progress of the solve — each
// step as it starts and ends, the transfers of the local sources, the
// output of the build's processes — is written to a log as plain text,
// "#N ..." lines like BuildKit's own, and the solver's refusals as
// "lantern: ..." lines. Send solves a build for what it leaves in
// BuildKit's cache only, such as a toolchain sent ahead of its build
// (recipes.ToolchainSend).
//
// The errors callers branch on are the recipes package's:
// recipes.ErrStepFailed for a build step that ran and failed (its exit
// code in the message), recipes.ErrTimeLimit for one killed at its time
// limit, recipes.ErrOutputs for outputs past the cap or refused by the
// build's check. Anything else is the machine's fault.
package solve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/tonistiigi/fsutil"

	"github.com/lanternfarm/lantern/internal/unpack"
	"github.com/lanternfarm/lantern/recipes"
)

// Client is what a solve needs of BuildKit. A *client.Client is one,
// whether it is a client of a buildkitd or of Docker Engine.
type Client interface {
	Solve(ctx context.Context, def *llb.Definition, opt client.SolveOpt, status chan *client.SolveStatus) (*client.SolveResponse, error)
}

var _ Client = (*client.Client)(nil)

// Run solves b with c and exports its result to outDir, which it creates,
// then runs b's Check on it. The solve's progress and the build's output
// go to logw (nil: discarded), and Check writes there what it refuses. A
// build step that failed is recipes.ErrStepFailed, one that ran past b.Time
// recipes.ErrTimeLimit, outputs past b.MaxOutput recipes.ErrOutputs, which
// is written to logw too.
func Run(ctx context.Context, c Client, b *recipes.Build, outDir string, logw io.Writer) error {
	if b.MaxOutput <= 0 {
		return fmt.Errorf("build %s: the build sets no output cap (MaxOutput %d): want one above 0, which bounds what its export writes on this disk", b.Name, b.MaxOutput)
	}
	if logw == nil {
		logw = io.Discard
	}
	err := export(ctx, c, b.Def, b.Locals, b.Time, outDir, b.MaxOutput, logw)
	if err != nil {
		if errors.Is(err, recipes.ErrTimeLimit) {
			return fmt.Errorf("build %s: %w", b.Name, err)
		}
		if exit, ok := errors.AsType[*gatewaypb.ExitError](err); ok {
			return fmt.Errorf("build %s: %w (exit code %d): %v", b.Name, recipes.ErrStepFailed, exit.ExitCode, err)
		}
		return fmt.Errorf("build %s: solve: %w", b.Name, err)
	}
	if b.Check != nil {
		if err := b.Check(outDir, logw); err != nil {
			return fmt.Errorf("build %s: %w", b.Name, err)
		}
	}
	return nil
}

// Send solves b with c and exports nothing: for a build of local sources
// only, which BuildKit then keeps in its cache, as recipes.ToolchainSend's.
// It applies none of b's Time, MaxOutput and Check (ctx bounds it), and
// writes no progress.
func Send(ctx context.Context, c Client, b *recipes.Build) error {
	if _, err := c.Solve(ctx, b.Def, client.SolveOpt{LocalMounts: b.Locals}, nil); err != nil {
		return fmt.Errorf("send %s: %w", b.Name, err)
	}
	return nil
}

// export solves def with the local sources mounts and exports its result to
// outDir, writing the progress to logw. A solve still running after limit
// (if above 0) is cancelled, which kills its build step, and reported as
// recipes.ErrTimeLimit. The result comes out as a tar stream that is
// unpacked into outDir as it arrives, and stopped past maxOut bytes of
// files (recipes.ErrOutputs): however the build made its outputs — quickly
// before any watch saw them, or as sparse files — no more than that is
// written on the worker's disk.
func export(ctx context.Context, c Client, def *llb.Definition, mounts map[string]fsutil.FS, limit time.Duration, outDir string, maxOut int64, logw io.Writer) error {
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if limit > 0 {
		sctx, cancel = context.WithTimeoutCause(ctx, limit, recipes.ErrTimeLimit)
	}
	defer cancel()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	unpacked := make(chan error, 1)
	started := false
	output := func(map[string]string) (io.WriteCloser, error) {
		if started {
			return nil, errors.New("export: a second tar stream")
		}
		started = true
		pr, pw := io.Pipe()
		go func() {
			err := unpack.Tar(pr, outDir, maxOut, func(max int64) error {
				return fmt.Errorf("%w: its outputs hold more than %d MiB, the output cap; the export was stopped", recipes.ErrOutputs, max>>20)
			})
			if err == nil {
				_, err = io.Copy(io.Discard, pr) // the tar stream's padding
			}
			pr.CloseWithError(err)
			unpacked <- err
		}()
		return pw, nil
	}
	status := make(chan *client.SolveStatus)
	var wg sync.WaitGroup
	wg.Go(func() { writeProgress(logw, status) })
	_, err := c.Solve(sctx, def, client.SolveOpt{
		LocalMounts: mounts,
		Exports:     []client.ExportEntry{{Type: client.ExporterTar, Output: output}},
	}, status) // closes status
	wg.Wait()
	var uerr error
	if started {
		uerr = <-unpacked
	}
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(context.Cause(sctx), recipes.ErrTimeLimit):
		fmt.Fprintf(logw, "lantern: the build ran past its time limit of %s and was killed\n", limit)
		return fmt.Errorf("%w of %s: killed", recipes.ErrTimeLimit, limit)
	case errors.Is(uerr, recipes.ErrOutputs):
		fmt.Fprintf(logw, "lantern: %v\n", uerr)
		return uerr
	case err != nil:
		return err
	case uerr != nil:
		return fmt.Errorf("export: %w", uerr)
	}
	return nil
}

// writeProgress writes what a solve reports, as plain text: each step as
// it starts and ends, and the output of its processes.
func writeProgress(w io.Writer, status <-chan *client.SolveStatus) {
	// Steps are numbered as they start, as BuildKit's own output does.
	ids := map[string]int{}
	done := map[string]bool{}
	id := func(v string) int {
		n, ok := ids[v]
		if !ok {
			n = len(ids) + 1
			ids[v] = n
		}
		return n
	}
	for s := range status {
		for _, v := range s.Vertexes {
			key := v.Digest.String()
			if v.Started == nil && v.Completed == nil {
				continue
			}
			if _, ok := ids[key]; !ok {
				fmt.Fprintf(w, "#%d %s\n", id(key), v.Name)
			}
			n := id(key)
			if v.Completed != nil && !done[key] {
				done[key] = true
				switch {
				case v.Error != "":
					fmt.Fprintf(w, "#%d ERROR: %s\n", n, v.Error)
				case v.Cached:
					fmt.Fprintf(w, "#%d CACHED\n", n)
				default:
					var took time.Duration
					if v.Started != nil {
						took = v.Completed.Sub(*v.Started)
					}
					fmt.Fprintf(w, "#%d DONE %.1fs\n", n, took.Seconds())
				}
			}
		}
		for _, st := range s.Statuses {
			// Transfers of the local sources, by their end.
			if st.Completed == nil || done[st.ID] {
				continue
			}
			done[st.ID] = true
			var took time.Duration
			if st.Started != nil {
				took = st.Completed.Sub(*st.Started)
			}
			fmt.Fprintf(w, "#%d %s %.1f MB %.1fs\n", id(st.Vertex.String()), st.ID, float64(st.Current)/1e6, took.Seconds())
		}
		for _, l := range s.Logs {
			n := id(l.Vertex.String())
			for line := range strings.Lines(string(l.Data)) {
				fmt.Fprintf(w, "#%d %s", n, line)
				if !strings.HasSuffix(line, "\n") {
					fmt.Fprintln(w)
				}
			}
		}
	}
}
