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

	"github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
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
// ToolchainSend name it: its hint (GoToolchain.sourceKey) names the module
// and its files' stamps, so that a daemon reuses what it has of the
// directory only for the same files, unchanged.
func toolchainSource(tc GoToolchain) llb.State {
	return llb.Local(LocalToolchain,
		llb.SharedKeyHint(tc.sourceKey()),
		llb.WithCustomName(fmt.Sprintf("toolchain %s@%s", tc.Module, tc.Version)))
}

// ToolchainSend returns the solve that sends the toolchain tc to BuildKit
// ahead of a build, and runs nothing (solve.Send): BuildKit keeps the copy
// under the key of tc's files' stamps (GoToolchain.sourceKey). A worker
// sends the toolchain PrepareOptions.Fetched gives it while the toolchain
// is checked and the rest prepared; the build's own solve, whose key is
// made of the stamps the check vouched for, then reuses the copy and sends
// only what changed — if the files are the ones sent, unchanged since;
// else it makes a copy of its own.
func ToolchainSend(ctx context.Context, tc GoToolchain) (*Build, error) {
	def, err := toolchainSource(tc).Marshal(ctx)
	if err != nil {
		return nil, fmt.Errorf("send the toolchain: marshal LLB: %w", err)
	}
	fs, err := fsutil.NewFS(tc.Dir)
	if err != nil {
		return nil, fmt.Errorf("send the toolchain: %w", err)
	}
	return &Build{
		Name:   fmt.Sprintf("the toolchain %s@%s", tc.Module, tc.Version),
		Def:    def,
		Locals: map[string]fsutil.FS{LocalToolchain: fs},
	}, nil
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

// GoBuild checks in with VerifyGo and returns its build, following r, for
// solve.Run, which exports the output directory; the command is at
// in.BinaryPath(r) there. A mismatching input is a *DigestError, found
// before anything is sent to BuildKit; a build step that failed is
// ErrStepFailed, one that ran past in.Limits.Time ErrTimeLimit.
func GoBuild(ctx context.Context, in *GoInputs, r *Recipe) (*Build, error) {
	what := in.Spec.Package + "@" + in.Spec.Version
	if err := VerifyGo(in); err != nil {
		return nil, fmt.Errorf("build %s: %w", what, err)
	}
	bin, err := in.BinaryPath(r)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", what, err)
	}
	st, err := GoLLB(in, r)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", what, err)
	}
	def, err := st.Marshal(ctx)
	if err != nil {
		return nil, fmt.Errorf("build %s: marshal LLB: %w", what, err)
	}
	mounts, err := in.LocalMounts()
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", what, err)
	}
	return &Build{
		Name: what, Def: def, Locals: mounts,
		Time: in.Limits.Time, MaxOutput: in.Limits.outputCap(),
		Check: func(dir string, _ io.Writer) error {
			if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(bin))); err != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("%w: the build exported no %s", ErrStepFailed, bin)
			}
			return nil
		},
	}, nil
}
