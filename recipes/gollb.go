package recipes

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	"github.com/lanternfarm/lantern/internal/unpack"
)

// The names of the go recipe's local sources, the directories a solve of
// GoLLB's definition needs in SolveOpt.LocalMounts (GoInputs.LocalMounts).
const (
	LocalToolchain = "toolchain"
	LocalGoProxy   = "goproxy"
)

// ErrStepFailed reports a build step that ran in the sandbox and failed: a
// result of the rebuild, not a fault of the machine.
var ErrStepFailed = errors.New("build step failed")

// GoLLB returns the build of in as BuildKit LLB, following r (the recipe
// PrepareGo followed), new for each call (see buildHostname): on an empty
// root, with no network, the toolchain
// and the file GOPROXY mounted read-only from the local sources
// LocalToolchain and LocalGoProxy, a tmpfs for the scratch space, it runs
// the recipe's command in the recipe's environment. The returned state is
// the output directory.
func GoLLB(in *GoInputs, r *Recipe) (llb.State, error) {
	if r == nil || r.Go == nil {
		return llb.State{}, errors.New("go build: want the go recipe")
	}
	if in.Recipe != r.Ref() {
		return llb.State{}, fmt.Errorf("go build: the inputs were prepared with recipe %s (%s), not %s (%s)",
			in.Recipe.BuildType, in.Recipe.Digest.Short(), r.BuildType, r.Digest.Short())
	}
	p := r.Go.Paths
	args, env, dir, err := buildCommand(r, in, p.Toolchain, p.GoProxy, p.Tmp, p.Out)
	if err != nil {
		return llb.State{}, fmt.Errorf("go build: %w", err)
	}
	// The hints name the content, so that a daemon reuses what it has of
	// a directory only when it is the same one.
	toolchain := toolchainSource(in.Toolchain)
	goproxy := llb.Local(LocalGoProxy,
		llb.SharedKeyHint("go-proxy "+proxyKey(in)),
		llb.WithCustomName(fmt.Sprintf("file GOPROXY: %d module versions", len(in.Modules))))
	opts := []llb.RunOption{
		llb.Args(args),
		llb.Dir(dir),
		llb.Network(llb.NetModeNone),
		llb.Hostname(buildHostname()),
		llb.IgnoreCache, // see buildHostname
		llb.AddMount(p.Toolchain, toolchain, llb.Readonly),
		llb.AddMount(p.GoProxy, goproxy, llb.Readonly),
		llb.AddMount(p.Tmp, llb.Scratch(), llb.Tmpfs(tmpfsSize(in.Limits.Tmp)...)),
		llb.WithCustomName(fmt.Sprintf("go%s install %s@%s for %s/%s",
			in.Spec.GoVersion, in.Spec.Package, in.Spec.Version, in.Spec.GOOS, in.Spec.GOARCH)),
	}
	if in.Limits.Cgroup != "" {
		opts = append(opts, llb.WithCgroupParent(in.Limits.Cgroup))
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		opts = append(opts, llb.AddEnv(k, env[k]))
	}
	root := llb.Scratch().Platform(ocispecs.Platform{OS: "linux", Architecture: in.HostArch})
	return root.Run(opts...).AddMount(p.Out, llb.Scratch()), nil
}

// toolchainSource is the local source of the toolchain tc, as GoLLB and
// SendToolchain name it: its hint (GoToolchain.sourceKey) names the module
// and its files' stamps, so that a daemon reuses what it has of the
// directory only for the same files, unchanged.
func toolchainSource(tc GoToolchain) llb.State {
	return llb.Local(LocalToolchain,
		llb.SharedKeyHint(tc.sourceKey()),
		llb.WithCustomName(fmt.Sprintf("toolchain %s@%s", tc.Module, tc.Version)))
}

// SendToolchain sends the toolchain tc to the BuildKit c is a client of,
// ahead of a build, and runs nothing: BuildKit keeps the copy under the key
// of tc's files' stamps (GoToolchain.sourceKey). A worker sends the
// toolchain PrepareOptions.Fetched gives it while the toolchain is checked
// and the rest prepared; the build's own solve, whose key is made of the
// stamps the check vouched for, then reuses the copy and sends only what
// changed — if the files are the ones sent, unchanged since; else it makes
// a copy of its own.
func SendToolchain(ctx context.Context, c *client.Client, tc GoToolchain) error {
	def, err := toolchainSource(tc).Marshal(ctx)
	if err != nil {
		return fmt.Errorf("send the toolchain: marshal LLB: %w", err)
	}
	fs, err := fsutil.NewFS(tc.Dir)
	if err != nil {
		return fmt.Errorf("send the toolchain: %w", err)
	}
	if _, err := c.Solve(ctx, def, client.SolveOpt{LocalMounts: map[string]fsutil.FS{LocalToolchain: fs}}, nil); err != nil {
		return fmt.Errorf("send the toolchain %s@%s: %w", tc.Module, tc.Version, err)
	}
	return nil
}

// buildHostname returns a new hostname for one build step, lantern-<random>.
// With llb.IgnoreCache it makes the step its own: BuildKit neither answers
// it from its cache nor merges it with the same step of another build
// running at the same time (which it does for steps that are alike and have
// the same inputs, ignoring the cache or not) — two builders sharing one
// daemon each really build. And as reprotest varies the hostname, a build
// that records the host it ran on shows up as not reproducible.
func buildHostname() string {
	return "lantern-" + strings.ToLower(rand.Text()[:12])
}

// tmpfsSize caps a tmpfs at size bytes; zero leaves the kernel's default
// (half the memory).
func tmpfsSize(size int64) []llb.TmpfsOption {
	if size <= 0 {
		return nil
	}
	return []llb.TmpfsOption{llb.TmpfsSize(size)}
}

// proxyKey names the content of the file GOPROXY.
func proxyKey(in *GoInputs) string {
	h := sha256.New()
	for _, m := range in.Modules {
		fmt.Fprintf(h, "%s %s %s %s\n", m.Path, m.Version, m.Zip, m.Mod)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// LocalMounts returns the directories GoLLB's definition reads, for
// client.SolveOpt.LocalMounts.
func (in *GoInputs) LocalMounts() (map[string]fsutil.FS, error) {
	tc, err := fsutil.NewFS(in.Toolchain.Dir)
	if err != nil {
		return nil, fmt.Errorf("toolchain: %w", err)
	}
	gp, err := fsutil.NewFS(in.ProxyDir)
	if err != nil {
		return nil, fmt.Errorf("file GOPROXY: %w", err)
	}
	return map[string]fsutil.FS{LocalToolchain: tc, LocalGoProxy: gp}, nil
}

// BuildGo checks in with VerifyGo, builds it in the BuildKit that c is a
// client of, following r, and exports the output directory to outDir; the
// command is at in.BinaryPath(r) there. The build's progress and output
// go to logw. A mismatching input is a *DigestError, found before anything
// is sent to BuildKit; a build step that failed is ErrStepFailed, one that
// ran past in.Limits.Time ErrTimeLimit.
func BuildGo(ctx context.Context, c *client.Client, in *GoInputs, r *Recipe, outDir string, logw io.Writer) error {
	what := in.Spec.Package + "@" + in.Spec.Version
	if err := VerifyGo(in); err != nil {
		return fmt.Errorf("build %s: %w", what, err)
	}
	bin, err := in.BinaryPath(r)
	if err != nil {
		return fmt.Errorf("build %s: %w", what, err)
	}
	st, err := GoLLB(in, r)
	if err != nil {
		return fmt.Errorf("build %s: %w", what, err)
	}
	def, err := st.Marshal(ctx)
	if err != nil {
		return fmt.Errorf("build %s: marshal LLB: %w", what, err)
	}
	mounts, err := in.LocalMounts()
	if err != nil {
		return fmt.Errorf("build %s: %w", what, err)
	}
	if logw == nil {
		logw = io.Discard
	}
	err = solve(ctx, c, def, mounts, in.Limits.Time, outDir, in.Limits.outputCap(), logw)
	if err != nil {
		if errors.Is(err, ErrTimeLimit) {
			return fmt.Errorf("build %s: %w", what, err)
		}
		if exit, ok := errors.AsType[*gatewaypb.ExitError](err); ok {
			return fmt.Errorf("build %s: %w (exit code %d): %v", what, ErrStepFailed, exit.ExitCode, err)
		}
		return fmt.Errorf("build %s: solve: %w", what, err)
	}
	if fi, err := os.Stat(filepath.Join(outDir, filepath.FromSlash(bin))); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("build %s: %w: the build exported no %s", what, ErrStepFailed, bin)
	}
	return nil
}

// solve solves def with the local sources mounts and exports its result to
// outDir, writing the progress to logw. A solve still running after limit
// (if above 0) is cancelled, which kills its build step, and reported as
// ErrTimeLimit. The result comes out as a tar stream that is unpacked into
// outDir as it arrives, and stopped past maxOut bytes of files (ErrOutputs):
// however the build made its outputs — quickly before any watch saw them, or
// as sparse files — no more than that is written on the worker's disk.
func solve(ctx context.Context, c *client.Client, def *llb.Definition, mounts map[string]fsutil.FS, limit time.Duration, outDir string, maxOut int64, logw io.Writer) error {
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if limit > 0 {
		sctx, cancel = context.WithTimeoutCause(ctx, limit, ErrTimeLimit)
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
				return fmt.Errorf("%w: its outputs hold more than %d MiB, the output cap; the export was stopped", ErrOutputs, max>>20)
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
	case err != nil && ctx.Err() == nil && errors.Is(context.Cause(sctx), ErrTimeLimit):
		fmt.Fprintf(logw, "lantern: the build ran past its time limit of %s and was killed\n", limit)
		return fmt.Errorf("%w of %s: killed", ErrTimeLimit, limit)
	case errors.Is(uerr, ErrOutputs):
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
