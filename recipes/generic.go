package recipes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/netguard"
)

// LocalSource is the name of the generic recipe's local source, the
// unpacked tarball (GenericInputs.LocalMounts).
const LocalSource = "source"

// Errors of a generic build that are its result, not the machine's fault.
var (
	// ErrTimeLimit reports a build killed at its time limit.
	ErrTimeLimit = errors.New("build ran past its time limit")
	// ErrOutputs reports outputs that break the spec or the limits: one
	// missing, a file left in the output directory that the spec does not
	// declare, or more bytes than the output limit.
	ErrOutputs = errors.New("outputs refused")
	// ErrSourceTooLarge reports a source tarball, or its unpacked tree,
	// past the source limit.
	ErrSourceTooLarge = errors.New("source too large")
)

// GenericParams are what a version of the generic recipe fixes. Strings may
// hold {placeholders}: {src}, {tmp}, {work}, {out} (the paths) and
// {sourceDateEpoch}.
type GenericParams struct {
	// Paths are where the sandbox sees the source (read-only), its scratch
	// space (a tmpfs), the working copy of the source (inside the scratch
	// space) and the output directory.
	Paths GenericPaths `json:"paths"`
	// Shell runs the build script, given as its last argument.
	Shell []string `json:"shell"`
	// Prelude are the script's first lines, before the spec's commands.
	Prelude []string `json:"prelude"`
	// Env is the fixed environment; a spec may add to it but not change it.
	Env map[string]string `json:"env"`
	// Limits are the default bounds of a build.
	Limits GenericLimits `json:"limits"`
}

// GenericPaths are the mount points of the generic recipe's sandbox.
type GenericPaths struct {
	Src  string `json:"src"`
	Tmp  string `json:"tmp"`
	Work string `json:"work"`
	Out  string `json:"out"`
}

// GenericLimits are a recipe file's default limits.
type GenericLimits struct {
	TimeMinutes int   `json:"timeMinutes"`
	SourceMiB   int64 `json:"sourceMiB"`
	TmpMiB      int64 `json:"tmpMiB"`
	OutputMiB   int64 `json:"outputMiB"`
}

// Limits bound one generic build. A zero field takes the recipe's default.
type Limits struct {
	// Time is how long the build step may run; it is killed then.
	Time time.Duration
	// Source caps the tarball's size and its unpacked tree's, in bytes.
	Source int64
	// Tmp is the size of the scratch tmpfs, which holds the working copy.
	Tmp int64
	// Output caps the outputs' total size, in bytes.
	Output int64
	// Cgroup is the cgroup below which BuildKit runs the build step
	// (llb.WithCgroupParent), one the caller made with caps on the step's
	// memory and processes, and watches; empty: BuildKit's own.
	Cgroup string
}

// DefaultOutputCap caps what a build may export where its limits set no
// Output: the go recipe's one binary is far smaller.
const DefaultOutputCap = 1 << 30

// outputCap is the most bytes of files a build may export.
func (l Limits) outputCap() int64 {
	if l.Output > 0 {
		return l.Output
	}
	return DefaultOutputCap
}

// Limits returns the recipe's default limits with those of l that are set.
func (p *GenericParams) limits(l Limits) Limits {
	const mib = 1 << 20
	if l.Time <= 0 {
		l.Time = time.Duration(p.Limits.TimeMinutes) * time.Minute
	}
	if l.Source <= 0 {
		l.Source = p.Limits.SourceMiB * mib
	}
	if l.Tmp <= 0 {
		l.Tmp = p.Limits.TmpMiB * mib
	}
	if l.Output <= 0 {
		l.Output = p.Limits.OutputMiB * mib
	}
	return l
}

var genericCheckKeys = []string{"src", "tmp", "work", "out", "sourceDateEpoch"}

func (p *GenericParams) validate() error {
	for _, m := range []struct{ name, path string }{
		{"src", p.Paths.Src}, {"tmp", p.Paths.Tmp}, {"work", p.Paths.Work}, {"out", p.Paths.Out},
	} {
		if !path.IsAbs(m.path) || path.Clean(m.path) != m.path || m.path == "/" || strings.ContainsAny(m.path, "{}") {
			return fmt.Errorf("paths.%s %q: want a clean absolute path below /", m.name, m.path)
		}
	}
	if !strings.HasPrefix(p.Paths.Work, p.Paths.Tmp+"/") {
		return fmt.Errorf("paths.work %q: want a directory inside paths.tmp %q, whose size is capped", p.Paths.Work, p.Paths.Tmp)
	}
	if len(p.Shell) == 0 || !path.IsAbs(p.Shell[0]) {
		return errors.New("shell: want an absolute path to a shell and its flags")
	}
	for i, l := range p.Prelude {
		if err := checkPlaceholders(fmt.Sprintf("prelude[%d]", i), l, genericCheckKeys); err != nil {
			return err
		}
	}
	if len(p.Env) == 0 {
		return errors.New("env: missing")
	}
	for k, v := range p.Env {
		if !envName.MatchString(k) {
			return fmt.Errorf("env: name %q: want upper-case letters, digits and underscores", k)
		}
		if err := checkPlaceholders("env."+k, v, genericCheckKeys); err != nil {
			return err
		}
	}
	l := p.Limits
	if l.TimeMinutes <= 0 || l.SourceMiB <= 0 || l.TmpMiB <= 0 || l.OutputMiB <= 0 {
		return fmt.Errorf("limits %+v: want every limit above 0", l)
	}
	return nil
}

// GenericInputs are the inputs of a generic build, fetched and checked
// outside the sandbox by PrepareGeneric.
type GenericInputs struct {
	// Recipe is the recipe they were prepared for.
	Recipe lantern.Recipe
	// Source is the source, as claimed and as found.
	Source lantern.Source
	// Spec is the source claim's build spec.
	Spec lantern.BuildSpec
	// Tarball is the downloaded tarball, SourceDir its unpacked tree.
	Tarball, SourceDir string
	// HostArch is the architecture of the machine the sandbox runs on: the
	// platform of the builder image that is pulled.
	HostArch string
	// Limits are the build's bounds, the recipe's defaults filled in.
	Limits Limits
}

// GenericOptions tune PrepareGeneric.
type GenericOptions struct {
	// HTTP downloads the tarball (default: a client of the strict
	// netguard.Policy, which fetches over https from public addresses only).
	HTTP *http.Client
	// Limits override the recipe's default limits.
	Limits Limits
	// Log receives progress (default: discarded).
	Log *slog.Logger
}

// PrepareGeneric downloads the tarball of src from fetch into dir, checks it
// against src.Digest — a mismatch is a *DigestError, and nothing is
// unpacked — and unpacks it in dir. A tarball whose entries all lie in one
// top-level directory is unpacked without it, as tar --strip-components=1
// would.
func PrepareGeneric(ctx context.Context, r *Recipe, src lantern.Source, fetch string, spec *lantern.BuildSpec, dir string, opts GenericOptions) (*GenericInputs, error) {
	what := src.String()
	if r == nil || r.Generic == nil {
		return nil, fmt.Errorf("prepare %s: want the generic recipe", what)
	}
	if spec == nil {
		return nil, fmt.Errorf("prepare %s: the job has no build spec: the generic recipe needs one", what)
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("prepare %s: build spec: %w", what, err)
	}
	limits := r.Generic.limits(opts.Limits)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", what, err)
	}
	tarball := filepath.Join(dir, "source.tar")
	got, err := download(ctx, opts.HTTP, fetch, tarball, limits.Source)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", what, err)
	}
	if got != src.Digest {
		return nil, &DigestError{
			Input: "source tarball of " + what, Path: tarball, Expected: src.Digest, Actual: got,
			Hint: "the bytes at " + fetch + " are not the ones the source claim names; nothing was built",
		}
	}
	srcDir := filepath.Join(dir, "src")
	if err := os.RemoveAll(srcDir); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", what, err)
	}
	if err := untar(tarball, srcDir, limits.Source); err != nil {
		return nil, fmt.Errorf("prepare %s: unpack the tarball: %w", what, err)
	}
	root, err := stripTopDir(srcDir)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", what, err)
	}
	if opts.Log != nil {
		opts.Log.Info("source checked and unpacked", "source", what, "digest", got.Short(), "dir", root)
	}
	return &GenericInputs{
		Recipe: r.Ref(), Source: src, Spec: *spec, Tarball: tarball, SourceDir: root,
		HostArch: runtime.GOARCH, Limits: limits,
	}, nil
}

// download writes the body at rawURL to file, up to max bytes, and returns
// its digest.
func download(ctx context.Context, hc *http.Client, rawURL, file string, max int64) (lantern.Digest, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return lantern.Digest{}, fmt.Errorf("fetch %q: want an http or https URL", rawURL)
	}
	if hc == nil {
		hc = netguard.Policy{}.Client(0)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %s", rawURL, resp.Status)
	}
	if resp.ContentLength > max {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %w: %d bytes, the limit is %d", rawURL, ErrSourceTooLarge, resp.ContentLength, max)
	}
	f, err := os.Create(file)
	if err != nil {
		return lantern.Digest{}, err
	}
	d, n, err := lantern.DigestReader(io.TeeReader(io.LimitReader(resp.Body, max+1), f))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	if n > max {
		return lantern.Digest{}, fmt.Errorf("fetch %s: %w: more than %d bytes", rawURL, ErrSourceTooLarge, max)
	}
	return d, nil
}

// stripTopDir returns dir's only entry if that is a directory, else dir.
func stripTopDir(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	if len(entries) == 1 && entries[0].IsDir() {
		return filepath.Join(dir, entries[0].Name()), nil
	}
	return dir, nil
}

// Environment returns the build's whole environment: the recipe's, with the
// spec's additions.
func (in *GenericInputs) Environment(r *Recipe) (map[string]string, error) {
	if r == nil || r.Generic == nil {
		return nil, errors.New("want the generic recipe")
	}
	rep := in.replacer(r)
	env := map[string]string{}
	for k, v := range r.Generic.Env {
		env[k] = rep.Replace(v)
	}
	for _, k := range slices.Sorted(maps.Keys(in.Spec.Env)) {
		if _, fixed := env[k]; fixed {
			return nil, fmt.Errorf("build spec env %s: the recipe fixes it (%s=%s); leave it out", k, k, env[k])
		}
		env[k] = in.Spec.Env[k]
	}
	return env, nil
}

func (in *GenericInputs) replacer(r *Recipe) *strings.Replacer {
	p := r.Generic.Paths
	return strings.NewReplacer("{src}", p.Src, "{tmp}", p.Tmp, "{work}", p.Work, "{out}", p.Out,
		"{sourceDateEpoch}", strconv.FormatInt(in.Spec.SourceDateEpoch(), 10))
}

// Script returns the shell script the build step runs: the recipe's
// prelude, then the spec's commands.
func (in *GenericInputs) Script(r *Recipe) string {
	rep := in.replacer(r)
	var b strings.Builder
	for _, l := range r.Generic.Prelude {
		b.WriteString(rep.Replace(l))
		b.WriteByte('\n')
	}
	for _, c := range in.Spec.Commands {
		b.WriteString(c)
		b.WriteByte('\n')
	}
	return b.String()
}

// Dependencies returns the build's inputs besides the source, for its
// attestation: the builder image and the build spec, by digest.
func (in *GenericInputs) Dependencies() []lantern.Dependency {
	img, _ := in.Spec.ImageDigest() // Validate checked it
	return []lantern.Dependency{
		{Name: "builder-image", URI: "oci://" + in.Spec.Image, Digest: img},
		{Name: "build-spec", Digest: in.Spec.Digest()},
	}
}

// LocalMounts returns the directories GenericLLB's definition reads.
func (in *GenericInputs) LocalMounts() (map[string]fsutil.FS, error) {
	src, err := fsutil.NewFS(in.SourceDir)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	return map[string]fsutil.FS{LocalSource: src}, nil
}

// GenericLLB returns the build of in as BuildKit LLB, following r, new for
// each call (see buildHostname): on the
// spec's builder image, pulled by digest, with a read-only root and no
// network, the source mounted read-only, a tmpfs of in.Limits.Tmp bytes for
// scratch, it runs the build script in the recipe's environment. The
// returned state is the output directory.
func GenericLLB(in *GenericInputs, r *Recipe) (llb.State, error) {
	if r == nil || r.Generic == nil {
		return llb.State{}, errors.New("generic build: want the generic recipe")
	}
	if in.Recipe != r.Ref() {
		return llb.State{}, fmt.Errorf("generic build: the inputs were prepared with recipe %s (%s), not %s (%s)",
			in.Recipe.BuildType, in.Recipe.Digest.Short(), r.BuildType, r.Digest.Short())
	}
	env, err := in.Environment(r)
	if err != nil {
		return llb.State{}, fmt.Errorf("generic build: %w", err)
	}
	p := r.Generic.Paths
	platform := ocispecs.Platform{OS: "linux", Architecture: in.HostArch}
	image := llb.Image(in.Spec.Image, llb.Platform(platform), llb.WithCustomName("builder image "+in.Spec.Image))
	src := llb.Local(LocalSource,
		llb.SharedKeyHint("generic-source "+in.Source.Digest.String()),
		llb.WithCustomName("source "+in.Source.String()))
	opts := []llb.RunOption{
		llb.Args(append(slices.Clone(r.Generic.Shell), in.Script(r))),
		llb.Dir("/"),
		llb.Network(llb.NetModeNone),
		llb.ReadonlyRootFS(),
		llb.Hostname(buildHostname()),
		llb.IgnoreCache, // see buildHostname
		llb.AddMount(p.Src, src, llb.Readonly),
		llb.AddMount(p.Tmp, llb.Scratch(), llb.Tmpfs(tmpfsSize(in.Limits.Tmp)...)),
		llb.WithCustomName("build " + in.Source.String()),
	}
	if in.Limits.Cgroup != "" {
		opts = append(opts, llb.WithCgroupParent(in.Limits.Cgroup))
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		opts = append(opts, llb.AddEnv(k, env[k]))
	}
	return image.Run(opts...).AddMount(p.Out, llb.Scratch()), nil
}

// GenericBuild returns the build of in, following r, for solve.Run, which
// exports the output directory, where the spec's outputs are then checked.
// A build step that failed is ErrStepFailed, one that ran past
// in.Limits.Time ErrTimeLimit, and outputs that break the spec or the
// limits ErrOutputs.
func GenericBuild(ctx context.Context, in *GenericInputs, r *Recipe) (*Build, error) {
	what := in.Source.String()
	st, err := GenericLLB(in, r)
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
		Check: func(dir string, log io.Writer) error {
			if err := checkOutputs(dir, in.Spec.Outputs, in.Limits.Output); err != nil {
				fmt.Fprintf(log, "lantern: %v\n", err)
				return err
			}
			return nil
		},
	}, nil
}

// checkOutputs checks the exported output directory: each declared output
// a regular file, nothing else in it but the directories that hold them,
// and no more than max bytes in all.
func checkOutputs(dir string, outputs map[string]string, max int64) error {
	declared := map[string]bool{}
	parents := map[string]bool{}
	for _, p := range outputs {
		declared[p] = true
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			parents[d] = true
		}
	}
	var total int64
	err := filepath.WalkDir(dir, func(file string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case e.IsDir() && parents[rel]:
			return nil
		case declared[rel] && e.Type().IsRegular():
			fi, err := e.Info()
			if err != nil {
				return err
			}
			total += fi.Size()
			return nil
		case declared[rel]:
			return fmt.Errorf("%w: output %s is not a regular file (%s)", ErrOutputs, rel, e.Type())
		}
		return fmt.Errorf("%w: the build left %s in the output directory, which the build spec does not declare: declare it in outputs, or write it elsewhere ($TMPDIR)", ErrOutputs, rel)
	})
	if err != nil {
		return err
	}
	for _, label := range slices.Sorted(maps.Keys(outputs)) {
		p := outputs[label]
		if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p))); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: output %s (%s) is missing: the build must leave it in $OUT", ErrOutputs, label, p)
		}
	}
	if total > max {
		return fmt.Errorf("%w: the outputs hold %d bytes, past the limit of %d", ErrOutputs, total, max)
	}
	return nil
}
