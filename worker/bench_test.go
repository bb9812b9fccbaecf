package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/boltstore"
	"github.com/lanternfarm/lantern/worker"
)

// benchStringer is what BenchmarkStringer rebuilds, as package recipes'
// tests do.
var benchStringer = recipes.GoSpec{
	Module:    "golang.org/x/tools",
	Version:   "v0.30.0",
	Package:   "golang.org/x/tools/cmd/stringer",
	GoVersion: "1.24.4",
	GOOS:      "linux",
	GOARCH:    "amd64",
}

// stringerRounds counts BenchmarkStringer's rounds across its -count runs,
// to alternate which of the farm and the direct solve goes first.
var stringerRounds int

// BenchmarkStringer rebuilds golang.org/x/tools/cmd/stringer@v0.30.0 three
// ways in each round, all with a cold Go build cache, and reports each one's
// time (s/farm, s/direct, s/host), and s/farm-inputs, the part of the
// farm's from the worker's start on the job to the start of its solve:
//
//   - farm: a source claim posted to the scheduler's API, a job over NATS to
//     one worker, which fetches and checks the inputs (recipes.PrepareGo,
//     with a warm module cache; the toolchain is checked first and sent to
//     BuildKit while the rest is prepared), checks them again and builds in
//     BuildKit (recipes.GoBuild, solve.Run), hashes and signs the output and publishes
//     the attestation, until the scheduler's verdict says reproduced;
//   - direct: the same LLB (recipes.GoLLB of inputs prepared before the
//     round) solved and exported with the BuildKit client, nothing else;
//   - host: the plain go install anyone can run to check a rebuild, with
//     the module cache warm and an empty GOCACHE.
//
// The three take turns within a round, rather than running as
// sub-benchmarks one after the other, so that a busy moment of the machine
// slows them alike; and the farm and the direct solve swap places from one
// round to the next, since whichever solve comes first in a round takes
// seconds longer to send the toolchain to buildkitd (seen on a VM that
// pages out idle memory): run an even -count. The farm and the direct solve use the same buildkitd,
// whose cache is pruned before each (the sandbox's own GOCACHE is a tmpfs),
// so neither is a BuildKit cache hit; each round checks that no step was
// cached and that the three got the same bytes, and logs where each one's
// time went. ns/op is a round's three builds; the setup of each (a new
// farm, the prune) is not timed. Allocations are not reported: they would
// count the embedded NATS server and the scheduler.
func BenchmarkStringer(b *testing.B) {
	if testing.Short() {
		b.Skip("-short: rebuilds stringer three times a round, about a minute each")
	}
	if runtime.GOOS != "linux" {
		b.Skip("the go recipe's sandbox runs on Linux")
	}
	_, c := buildkittest.Start(b)
	ctx := b.Context()
	r, err := recipes.Load("go")
	if err != nil {
		b.Fatal(err)
	}
	// The module caches package recipes' tests keep between runs.
	cache := filepath.Join(os.TempDir(), "lantern-recipes-test-cache")
	modCache := filepath.Join(cache, "modcache")
	in, err := recipes.PrepareGo(ctx, r, benchStringer, b.TempDir(), recipes.PrepareOptions{ModCache: modCache})
	if err != nil {
		b.Fatal(err)
	}
	bin, err := in.BinaryPath(r)
	if err != nil {
		b.Fatal(err)
	}
	host := newHostInstall(b, benchStringer, filepath.Join(cache, "host-modcache"))
	warmUp(b, c, in)

	var farmTime, farmInputs, directTime, hostTime time.Duration
	for b.Loop() {
		b.StopTimer()
		round := stringerRounds
		stringerRounds++
		var farmOut, directOut lantern.Digest
		farm := func() {
			pruneAll(b, c)
			took, inputs, out := farmRebuild(b, c, modCache, in)
			farmTime, farmInputs, farmOut = farmTime+took, farmInputs+inputs, out
		}
		direct := func() {
			pruneAll(b, c)
			took, out := directSolve(b, c, in, r, bin)
			directTime, directOut = directTime+took, out
		}
		if round%2 == 0 {
			farm()
			direct()
		} else {
			direct()
			farm()
		}
		took, hostOut := host.run(b)
		hostTime += took
		if farmOut != directOut || directOut != hostOut {
			b.Errorf("round %d: stringer from the farm %s, from the direct solve %s, from the host %s: want the same bytes", round, farmOut, directOut, hostOut)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(farmTime.Seconds()/n, "s/farm")
	b.ReportMetric(farmInputs.Seconds()/n, "s/farm-inputs")
	b.ReportMetric(directTime.Seconds()/n, "s/direct")
	b.ReportMetric(hostTime.Seconds()/n, "s/host")
}

// warmUp sends the toolchain to the new daemon once, untimed, and prunes
// it, so that the first round does not pay for a daemon just started.
func warmUp(b *testing.B, c *client.Client, in *recipes.GoInputs) {
	b.Helper()
	ctx := b.Context()
	def, err := llb.Local(recipes.LocalToolchain).Marshal(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mounts, err := in.LocalMounts()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Solve(ctx, def, client.SolveOpt{LocalMounts: mounts}, nil); err != nil {
		b.Fatalf("warm-up solve: %v", err)
	}
	pruneAll(b, c)
}

// pruneAll empties the daemon's build cache, the local sources' copies
// included, and checks that nothing is left.
func pruneAll(b *testing.B, c *client.Client) {
	b.Helper()
	ctx := b.Context()
	if err := c.Prune(ctx, nil, client.PruneAll); err != nil {
		b.Fatalf("prune buildkitd's cache: %v", err)
	}
	du, err := c.DiskUsage(ctx)
	if err != nil {
		b.Fatalf("buildkitd's disk usage: %v", err)
	}
	for _, u := range du {
		b.Errorf("after the prune, buildkitd still holds %s (%s, %d bytes)", u.ID, u.RecordType, u.Size)
	}
}

// directSolve solves the LLB of in (recipes.GoLLB) with c and exports its
// output, as solve.Run does but with nothing around it; it returns
// the time of the solve and the digest of the command built. A step that
// came from the cache fails the benchmark.
func directSolve(b *testing.B, c *client.Client, in *recipes.GoInputs, r *recipes.Recipe, bin string) (time.Duration, lantern.Digest) {
	b.Helper()
	st, err := recipes.GoLLB(in, r)
	if err != nil {
		b.Fatal(err)
	}
	def, err := st.Marshal(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	status := make(chan *client.SolveStatus)
	var (
		cached       []string
		step, export *client.Vertex
		wg           sync.WaitGroup
	)
	wg.Go(func() {
		for s := range status {
			for _, v := range s.Vertexes {
				switch {
				case v.Completed == nil:
				case v.Cached:
					cached = append(cached, v.Name)
				case stepName.MatchString(v.Name):
					step = v
				case strings.HasPrefix(v.Name, "exporting"):
					export = v
				}
			}
		}
	})
	start := time.Now()
	b.StartTimer()
	mounts, err := in.LocalMounts()
	if err == nil {
		_, err = c.Solve(b.Context(), def, client.SolveOpt{
			LocalMounts: mounts,
			Exports:     []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: out}},
		}, status) // closes status
	} else {
		close(status)
	}
	b.StopTimer()
	took := time.Since(start)
	wg.Wait()
	if err != nil {
		b.Fatalf("direct solve: %v", err)
	}
	if len(cached) > 0 {
		b.Errorf("direct solve: steps came from BuildKit's cache: %q", cached)
	}
	if step == nil || step.Started == nil || export == nil || export.Started == nil {
		b.Fatal("direct solve: the solve's status does not show its steps")
	}
	b.Logf("direct %.1fs = sources to buildkitd %.1fs + build step %.1fs + export %.1fs",
		took.Seconds(), step.Started.Sub(start).Seconds(), export.Started.Sub(*step.Started).Seconds(), start.Add(took).Sub(*export.Started).Seconds())
	d, _, err := lantern.DigestFile(filepath.Join(out, filepath.FromSlash(bin)))
	if err != nil {
		b.Fatal(err)
	}
	return took, d
}

// stepName matches the name of the go recipe's build step in BuildKit's
// progress ("go1.24.4 install golang.org/x/tools/cmd/stringer@v0.30.0 for
// linux/amd64").
var stepName = regexp.MustCompile(`^go\S* install `)

// farmRebuild starts a farm (untimed), posts a source claim of in's source
// and times it until the scheduler's verdict is in; it returns that time,
// the part of it the worker spent on the inputs (from the job's start to
// the solve's) and the output the verdict names. The farm is new each
// time, so its job is too.
func farmRebuild(b *testing.B, c *client.Client, modCache string, in *recipes.GoInputs) (took, inputs time.Duration, out lantern.Digest) {
	b.Helper()
	key, err := keys.Generate()
	if err != nil {
		b.Fatal(err)
	}
	prep := &tookHandler{}
	gb, err := worker.NewGoBuilder(c, modCache, slog.New(prep))
	if err != nil {
		b.Fatal(err)
	}
	tb := &timedBuilder{Builder: gb}
	f := startBenchFarm(b, worker.Config{Key: key, Builders: map[string]worker.Builder{"go": tb}})
	defer f.stop()

	src := lantern.Source{Name: in.Spec.Package, Version: in.Spec.Version, Digest: in.Source.Digest, GoSum: in.Source.GoSum}
	claim := &lantern.SourceClaim{Source: src, Recipe: "go", Time: time.Now().UTC().Truncate(time.Second),
		Fetch: "https://proxy.golang.org/" + in.Spec.Module + "/@v/" + in.Spec.Version + ".zip"}
	env, err := attest.Sign(claim, f.claimKey)
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}

	start := time.Now()
	b.StartTimer()
	resp, err := http.Post(f.api+"/api/v1/claims", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("POST claim = %d, want %d", resp.StatusCode, http.StatusAccepted)
	}
	var v lantern.Verdict
	for deadline := start.Add(10 * time.Minute); ; {
		var sv sourceView
		// Not found until the scheduler has taken the claim in.
		found, err := f.get("/api/v1/sources/"+src.String(), &sv)
		if err != nil {
			b.Fatal(err)
		}
		if found && len(sv.Verdicts) == 1 && sv.Verdicts[0].Status != lantern.StatusPending {
			v = sv.Verdicts[0]
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no verdict after 10 minutes: %+v", sv)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	took = time.Since(start)
	if v.Status != lantern.StatusReproduced || len(v.Groups) != 1 {
		b.Fatalf("farm verdict = %+v, want reproduced\nthe build log:\n%s", v, tb.log.String())
	}

	// Where the time went, from the times of the lines of the build's log.
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if !tb.log.first(regexp.MustCompile(`^#\d+ CACHED`)).IsZero() {
		b.Errorf("farm: a step came from BuildKit's cache:\n%s", tb.log.String())
	}
	solve := tb.log.first(regexp.MustCompile(`^#1 `))
	step := tb.log.first(regexp.MustCompile(`^#\d+ go\S* install `))
	export := tb.log.first(regexp.MustCompile(`^#\d+ exporting`))
	if solve.IsZero() || step.IsZero() || export.IsZero() {
		b.Fatalf("farm: the build log does not show the solve's steps:\n%s", tb.log.String())
	}
	inputs = solve.Sub(tb.start)
	b.Logf("farm %.1fs = the job to the worker %.1fs + inputs %.1fs (PrepareGo: %s; then VerifyGo %.1fs) + sources to buildkitd %.1fs + build step %.1fs + export %.1fs + hash, sign, publish, verdict %.1fs",
		took.Seconds(), tb.start.Sub(start).Seconds(), inputs.Seconds(), prep, solve.Sub(prep.last()).Seconds(),
		step.Sub(solve).Seconds(), export.Sub(step).Seconds(), tb.end.Sub(export).Seconds(), start.Add(took).Sub(tb.end).Seconds())
	return took, inputs, v.Groups[0].Output
}

// timedBuilder notes when Build starts and ends, and keeps its log with
// the time of each write.
type timedBuilder struct {
	worker.Builder
	mu         sync.Mutex
	start, end time.Time
	log        stampedLog
}

func (t *timedBuilder) Build(ctx context.Context, job lantern.Job, work string, log io.Writer) (*worker.Result, error) {
	t.mu.Lock()
	t.start = time.Now()
	t.mu.Unlock()
	res, err := t.Builder.Build(ctx, job, work, io.MultiWriter(log, &t.log))
	t.mu.Lock()
	t.end = time.Now()
	t.mu.Unlock()
	return res, err
}

// stampedLog keeps what is written to it with the time of each write.
type stampedLog struct {
	mu     sync.Mutex
	writes []stampedWrite
}

type stampedWrite struct {
	at   time.Time
	data string
}

func (l *stampedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, stampedWrite{time.Now(), string(p)})
	return len(p), nil
}

// String returns the log, each line after the time it was written.
func (l *stampedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	for _, w := range l.writes {
		for line := range strings.Lines(w.data) {
			fmt.Fprintf(&sb, "%s %s", w.at.Format("15:04:05.000"), line)
		}
	}
	return sb.String()
}

// first returns when the first line that matches re was written, or the
// zero time.
func (l *stampedLog) first(re *regexp.Regexp) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.writes {
		for line := range strings.Lines(w.data) {
			if re.MatchString(line) {
				return w.at
			}
		}
	}
	return time.Time{}
}

// tookHandler is a slog.Handler that adds up the "took" of PrepareGo's
// debug records by what they did ("go mod download", "checked the
// toolchain"), and notes the time of the last one.
type tookHandler struct {
	mu    sync.Mutex
	what  []string
	took  map[string]time.Duration
	count map[string]int
	at    time.Time
}

func (h *tookHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *tookHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *tookHandler) WithGroup(string) slog.Handler            { return h }

func (h *tookHandler) Handle(_ context.Context, r slog.Record) error {
	what := r.Message
	var took time.Duration
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "cmd": // ".../bin/go mod download -json ..." is "go mod download"
			if f := strings.Fields(a.Value.String()); len(f) >= 3 {
				what = path.Base(f[0]) + " " + f[1] + " " + f[2]
			}
		case "took":
			took = a.Value.Duration()
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.took == nil {
		h.took, h.count = map[string]time.Duration{}, map[string]int{}
	}
	if _, ok := h.took[what]; !ok {
		h.what = append(h.what, what)
	}
	h.took[what] += took
	h.count[what]++
	h.at = time.Now()
	return nil
}

// last returns when the last record came.
func (h *tookHandler) last() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.at
}

func (h *tookHandler) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var parts []string
	for _, w := range h.what {
		parts = append(parts, fmt.Sprintf("%d× %s %.1fs", h.count[w], w, h.took[w].Seconds()))
	}
	return strings.Join(parts, ", ")
}

// benchFarm is the farm of worker_test.go's newFarm for a benchmark: an
// embedded NATS server, the scheduler with its API (threshold 1), and one
// worker, which stop is called to stop.
type benchFarm struct {
	api      string
	claimKey *keys.Private
	stops    []func()
}

func (f *benchFarm) stop() {
	for i := len(f.stops) - 1; i >= 0; i-- {
		f.stops[i]()
	}
}

// get decodes the API's answer at path into out; found is false if there
// is nothing there (yet).
func (f *benchFarm) get(path string, out any) (found bool, err error) {
	resp, err := http.Get(f.api + path)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, json.NewDecoder(resp.Body).Decode(out)
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("GET %s = %d", path, resp.StatusCode)
}

func startBenchFarm(b *testing.B, cfg worker.Config) *benchFarm {
	b.Helper()
	f := &benchFarm{}
	ok := false
	defer func() {
		if !ok {
			f.stop()
		}
	}()
	ctx := b.Context()
	dir := b.TempDir()
	log := natstest.WatchPermissions(b, logger())
	nf := natstest.Start(b)
	f.stops = append(f.stops, nf.Shutdown)
	q, err := natsq.Connect(ctx, nf.URL(), nf.SchedulerConfig(natsq.Config{}), log)
	if err != nil {
		b.Fatal(err)
	}
	f.stops = append(f.stops, func() { q.Close() })
	if err := q.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, "scheduler.db"))
	if err != nil {
		b.Fatal(err)
	}
	f.stops = append(f.stops, func() { st.Close() })
	if f.claimKey, err = keys.Generate(); err != nil {
		b.Fatal(err)
	}
	s, err := scheduler.New(scheduler.Config{RecipeVersions: recipes.Versions(), Threshold: 1, ClaimKeys: []*keys.Public{f.claimKey.Public()},
		Builders: []*keys.Public{cfg.Key.Public()}, Backlog: true}, q, st, log)
	if err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(sctx); close(done) }()
	f.stops = append(f.stops, func() { cancel(); <-done })
	api := httptest.NewServer(s.Handler())
	f.stops = append(f.stops, api.Close)
	f.api = api.URL
	// The worker waits for its consumer, which the scheduler makes; wait
	// here instead, so that the timed part starts with a farm that is up.
	for deadline := time.Now().Add(time.Minute); ; {
		jc, err := q.Jobs(ctx, cfg.Key.ID())
		if err == nil {
			jc.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("builder %s never registered: %v", cfg.Key.ID().Short(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The worker connects as its builder, with credentials of its own.
	wq, err := natsq.Connect(ctx, nf.URL(), nf.BuilderConfig(cfg.Key.ID(), natsq.Config{}), log)
	if err != nil {
		b.Fatal(err)
	}
	cfg.WorkDir = b.TempDir()
	cfg.ClaimKeys = []*keys.Public{f.claimKey.Public()} // it builds the farm's claims
	w, err := worker.New(cfg, wq, log)
	if err != nil {
		wq.Close()
		b.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(wctx); err != nil {
			b.Errorf("worker Run: %v", err)
		}
	})
	f.stops = append(f.stops, func() { wcancel(); wg.Wait(); wq.Close() })
	ok = true
	return f
}

// hostInstall is the check the go recipe names, run on this machine:
//
//	GOTOOLCHAIN=go<version> GOFLAGS=-trimpath CGO_ENABLED=0 go install PKG@VERSION
type hostInstall struct {
	args []string
	exe  string   // the command's file name
	env  []string // without GOCACHE and GOBIN, new for each run
}

// newHostInstall returns the host's go install of spec with modCache as its
// module cache, which it fills first: the toolchain and the modules, so
// that a run downloads nothing.
func newHostInstall(b *testing.B, spec recipes.GoSpec, modCache string) *hostInstall {
	b.Helper()
	h := &hostInstall{args: []string{"go", "install", spec.Package + "@" + spec.Version}, exe: path.Base(spec.Package)}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "GO") && k != "CGO_ENABLED" {
			h.env = append(h.env, kv)
		}
	}
	h.env = append(h.env,
		"GOTOOLCHAIN=go"+spec.GoVersion, "GOFLAGS=-trimpath", "CGO_ENABLED=0",
		"GOOS="+spec.GOOS, "GOARCH="+spec.GOARCH,
		"GOPATH="+b.TempDir(), "GOMODCACHE="+modCache,
	)
	// -n resolves and downloads, and compiles nothing.
	cmd := exec.CommandContext(b.Context(), "go", "install", "-n", spec.Package+"@"+spec.Version)
	cmd.Dir = b.TempDir()
	cmd.Env = append(h.env, "GOCACHE="+b.TempDir(), "GOBIN="+b.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return h
}

// run builds with an empty GOCACHE and returns the time it took and the
// digest of the command.
func (h *hostInstall) run(b *testing.B) (time.Duration, lantern.Digest) {
	b.Helper()
	gocache, bin := b.TempDir(), b.TempDir()
	defer os.RemoveAll(gocache)
	cmd := exec.CommandContext(b.Context(), h.args[0], h.args[1:]...)
	cmd.Dir = b.TempDir()
	cmd.Env = append(h.env, "GOCACHE="+gocache, "GOBIN="+bin)
	start := time.Now()
	b.StartTimer()
	out, err := cmd.CombinedOutput()
	b.StopTimer()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	b.Logf("host go install: %.1fs", took.Seconds())
	d, _, err := lantern.DigestFile(filepath.Join(bin, h.exe))
	if err != nil {
		b.Fatal(err)
	}
	return took, d
}
