// Package worker is the builder's side of a farm: a process that pulls its
// builder's jobs from the jobs stream, rebuilds each with the job's recipe in
// a BuildKit sandbox, hashes the outputs outside the sandbox, signs what it
// got with the builder's key — a failed rebuild too — and publishes the
// attestation with its build log. It uploads its outputs to the farm's
// object store too, where the scheduler finds them to show how two
// builders' outputs differ.
//
// Several processes of one builder (one key) share its jobs: each pulls from
// the builder's durable consumer. While a build runs the worker sends
// heartbeats, so a long build is not redelivered; a worker that dies leaves
// its job to be redelivered to another process of the same builder. On
// SIGTERM (ctx ending) a worker takes no more jobs, gives the builds it holds
// a grace period to finish, and hands back those that do not.
package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/capped"
	"github.com/lanternfarm/lantern/natsq"
)

// Builder rebuilds jobs of one recipe. Build fetches and checks the job's
// inputs outside the sandbox, builds in it, and leaves the outputs in
// outDir, by label. An error that is the build's own result (the source
// does not match its claim, a build step failed) is a *BuildError; any
// other error is the infrastructure's, and the job is tried again.
type Builder interface {
	Recipe() lantern.Recipe
	Build(ctx context.Context, job lantern.Job, work string, log io.Writer) (*Result, error)
}

// Result is what a build produced.
type Result struct {
	// Outputs are the output files, label → path.
	Outputs map[string]string
	// Dependencies are the resolved inputs besides the source.
	Dependencies []lantern.Dependency
	// Environment is the fixed environment of the build.
	Environment map[string]string
	// PerLabel, for a build whose outputs were made apart (a go build for
	// several platforms), gives an output's own dependencies and
	// environment, by label, in place of Dependencies and Environment.
	PerLabel map[string]Provenance
}

// Provenance is how one output was made.
type Provenance struct {
	Dependencies []lantern.Dependency
	Environment  map[string]string
}

// BuildError is a rebuild that failed as a result, not for want of
// infrastructure: the builder signs it.
type BuildError struct {
	Stage    string         // "verify-inputs", "build", "export"
	Expected lantern.Digest // for an input that did not match its claim
	Actual   lantern.Digest
	Err      error
}

func (e *BuildError) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// Config is what a worker is told.
type Config struct {
	Key *keys.Private
	// ClaimKeys are the keys whose source claims the builder's operator
	// accepts: a job is built only if it carries a source claim signed by
	// one of them, and every field of the job derives from that claim.
	ClaimKeys []*keys.Public
	// Builders are the recipes this worker can rebuild with, by name.
	Builders map[string]Builder
	// Concurrency is how many builds run at once (default 1).
	Concurrency int
	// Heartbeat is how often a running build tells NATS it is alive
	// (default 20 s; keep it well under the ack wait).
	Heartbeat time.Duration
	// Grace is how long builds may go on after ctx ends (default 1 min).
	Grace time.Duration
	// WorkDir holds each build's files while it runs.
	WorkDir string
	// MaxLog caps the build log kept (default 4 MiB); the rest is cut.
	MaxLog int
	// RetryDelay is how long a job whose build failed for the
	// infrastructure waits before it is delivered again (default 10 s).
	RetryDelay time.Duration
	// MaxUpload is the largest output uploaded to the farm's object store
	// (default 1 GiB; negative: none). The scheduler needs two builders'
	// outputs there to report how they differ.
	MaxUpload int64
}

// Queue is what a worker needs of the farm's bus: its builder's jobs, a
// place for its results, and its own bucket for logs and outputs. A
// natsq.Queue connected with the builder's credentials is one; the
// builder's NATS user may do nothing more.
type Queue interface {
	Jobs(ctx context.Context, builder lantern.Digest) (*natsq.JobConsumer, error)
	PublishResult(ctx context.Context, builder lantern.Digest, envelope []byte) error
	// PublishBuilding says that the builder is building job (or stopped
	// without an answer); progress only, fire and forget.
	PublishBuilding(ctx context.Context, builder lantern.Digest, job string, building bool) error
	PutObject(ctx context.Context, name string, r io.Reader) (lantern.Digest, error)
}

var _ Queue = (*natsq.Queue)(nil)

// Worker runs builds of its builder's jobs.
type Worker struct {
	cfg     Config
	q       Queue
	log     *slog.Logger
	metrics *metrics
}

// New returns a worker on q.
func New(cfg Config, q Queue, log *slog.Logger) (*Worker, error) {
	if cfg.Key == nil {
		return nil, errors.New("worker: no key: the builder's private key signs every attestation")
	}
	if len(cfg.Builders) == 0 {
		return nil, errors.New("worker: no recipes to build with")
	}
	if len(cfg.ClaimKeys) == 0 {
		return nil, errors.New("worker: no claim keys: a worker builds only jobs whose source claims are signed by keys its operator accepts; give them (lantern worker --claim-key KEY.pub)")
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 20 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Minute
	}
	if cfg.MaxLog <= 0 {
		cfg.MaxLog = 4 << 20
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 10 * time.Second
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	if cfg.MaxUpload == 0 {
		cfg.MaxUpload = 1 << 30
	}
	return &Worker{cfg: cfg, q: q, log: log.With("builder", cfg.Key.ID().Short()), metrics: newMetrics()}, nil
}

// Metrics returns the worker's Prometheus metrics.
func (w *Worker) Metrics() prometheus.Gatherer { return w.metrics.reg }

// Run takes and builds jobs until ctx ends, then lets the builds it holds
// finish within the grace period and hands back the others.
func (w *Worker) Run(ctx context.Context) error {
	// The scheduler makes the builder's consumer; a worker that comes first
	// waits for it.
	var jobs *natsq.JobConsumer
	for waited := false; ; waited = true {
		var err error
		if jobs, err = w.q.Jobs(ctx, w.cfg.Key.ID()); err == nil {
			break
		}
		if !errors.Is(err, natsq.ErrUnknownBuilder) {
			return fmt.Errorf("worker: %w", err)
		}
		if !waited {
			w.log.Warn("the farm has no job consumer for this builder yet; waiting", "error", err, "fix", "the farm's operator enrolls it: lantern builder add NAME KEY.pub")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	defer jobs.Close()
	// Builds outlive ctx by the grace period.
	buildCtx, cancelBuilds := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBuilds()
	var wg sync.WaitGroup
	var runErr error
	slots := make(chan struct{}, w.cfg.Concurrency)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		m, err := jobs.Next(ctx)
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, natsq.ErrConnClosed) {
				// For good: nats.go stops reconnecting when the server
				// refuses the credentials twice (a removed builder).
				runErr = fmt.Errorf("worker: the farm's NATS connection is closed; if the builder was removed from the farm, its credentials are revoked (ask the farm's operator): %w", err)
				break
			}
			w.log.Warn("taking a job failed; retrying", "error", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			w.handle(buildCtx, m)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.Grace):
		w.log.Warn("grace period over: handing back the builds still running")
		cancelBuilds()
		<-done
	}
	return runErr
}

// handle builds one job and settles its message.
func (w *Worker) handle(ctx context.Context, m *natsq.JobMsg) {
	job := m.Job
	log := w.log.With("job", job.ID, "source", job.Source.String(), "delivery", m.Deliveries)
	if err := w.checkJob(&job); err != nil {
		// Not what a claimer this builder trusts asked for: whoever
		// published it, it is never built, and never comes back.
		w.metrics.jobs.WithLabelValues("refused").Inc()
		log.Warn("job refused: it is not what a source claim this builder accepts says; terminated", "error", err)
		if err := m.Term(context.WithoutCancel(ctx)); err != nil {
			log.Warn("terminating the refused job failed; it may come back, and is refused again", "error", err)
		}
		return
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	w.building(hbCtx, job.ID, true, log)
	go func() {
		t := time.NewTicker(w.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				if err := m.InProgress(hbCtx); err != nil && hbCtx.Err() == nil {
					log.Warn("heartbeat failed", "error", err)
				}
				// Again, for a scheduler that started since.
				w.building(hbCtx, job.ID, true, log)
			}
		}
	}()

	envs, err := w.build(ctx, job, log)
	stopHB()
	settle := context.WithoutCancel(ctx)
	if err != nil {
		w.metrics.jobs.WithLabelValues("handed-back").Inc()
		log.Warn("build failed for the infrastructure; handing the job back", "error", err)
		w.building(settle, job.ID, false, log)
		if err := m.Nak(settle, w.cfg.RetryDelay); err != nil {
			log.Warn("nak failed; the job comes back after the ack wait", "error", err)
		}
		return
	}
	for _, env := range envs {
		if err := w.q.PublishResult(settle, w.cfg.Key.ID(), env); err != nil {
			log.Warn("publishing the attestation failed; handing the job back", "error", err)
			m.Nak(settle, w.cfg.RetryDelay)
			return
		}
	}
	w.metrics.jobs.WithLabelValues("answered").Inc()
	if err := m.Ack(settle); err != nil {
		log.Warn("ack failed; the job may come back, and its second answer will be refused as a duplicate", "error", err)
	}
}

// building says on the bus that the builder is building job, or stopped
// without an answer. It is progress for people to see: a failure is
// logged at debug level and changes nothing (a farm whose builder
// credentials predate the building subject refuses it).
func (w *Worker) building(ctx context.Context, job string, building bool, log *slog.Logger) {
	if err := w.q.PublishBuilding(ctx, w.cfg.Key.ID(), job, building); err != nil && ctx.Err() == nil {
		log.Debug("saying which job this builder builds failed", "error", err)
	}
}

// ErrJobRefused reports a job that a worker does not build: it carries no
// source claim signed by a key the builder accepts, or it is not what its
// claim says.
var ErrJobRefused = errors.New("job refused")

// checkJob checks that job carries a source claim signed by one of the
// accepted claim keys, and that every field of the job derives from it.
func (w *Worker) checkJob(job *lantern.Job) error {
	if len(job.Envelope) == 0 {
		return fmt.Errorf("%w: it carries no signed source claim", ErrJobRefused)
	}
	env, err := dsse.Unmarshal(job.Envelope)
	if err != nil {
		return fmt.Errorf("%w: its source claim: %w", ErrJobRefused, err)
	}
	var v *attest.Verified
	for _, k := range w.cfg.ClaimKeys {
		if v, err = attest.Verify(env, k); err == nil {
			break
		}
		if !errors.Is(err, dsse.ErrSignature) {
			return fmt.Errorf("%w: its source claim: %w", ErrJobRefused, err)
		}
	}
	if v == nil {
		return fmt.Errorf("%w: its source claim is not signed by a key this builder accepts (%d tried; --claim-key)", ErrJobRefused, len(w.cfg.ClaimKeys))
	}
	sc, ok := v.Claim.(*lantern.SourceClaim)
	if !ok {
		return fmt.Errorf("%w: it carries a %s claim, not a source claim", ErrJobRefused, v.Claim.Kind())
	}
	if err := job.MatchesClaim(sc, v.Signer); err != nil {
		return fmt.Errorf("%w: %w", ErrJobRefused, err)
	}
	return nil
}

// build runs one job and returns the signed envelopes to publish: one per
// output, or one failure. An error means the infrastructure failed.
func (w *Worker) build(ctx context.Context, job lantern.Job, log *slog.Logger) ([][]byte, error) {
	started := time.Now().UTC()
	b, ok := w.cfg.Builders[job.Recipe]
	if !ok {
		return w.failure(job, lantern.Recipe{BuildType: attest.URIBase + "recipes/" + job.Recipe}, started, "fetch",
			fmt.Sprintf("this worker has no recipe %q", job.Recipe), lantern.Digest{}, lantern.Digest{}, lantern.Digest{})
	}
	work, err := os.MkdirTemp(w.cfg.WorkDir, "job-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	buildLog := &capped.Buffer{Max: int64(w.cfg.MaxLog)}
	log.Info("building")
	res, err := b.Build(ctx, job, work, buildLog)
	finished := time.Now().UTC()
	logDigest, perr := w.q.PutObject(context.WithoutCancel(ctx), "log of "+job.ID+" by "+w.cfg.Key.ID().String(), bytes.NewReader(buildLog.Bytes("log")))
	if perr != nil {
		return nil, fmt.Errorf("store the build log: %w", perr)
	}
	var be *BuildError
	if errors.As(err, &be) {
		log.Info("rebuild failed", "stage", be.Stage, "error", be.Err)
		return w.failure(job, b.Recipe(), started, be.Stage, be.Err.Error(), be.Expected, be.Actual, logDigest)
	}
	if err != nil {
		return nil, err
	}
	var envs [][]byte
	for label, path := range res.Outputs {
		out, size, err := lantern.DigestFile(path)
		if err != nil {
			return nil, fmt.Errorf("hash output %s: %w", label, err)
		}
		if err := w.upload(ctx, job, label, path, out, size, log); err != nil {
			return nil, err
		}
		deps, environ := res.Dependencies, res.Environment
		if p, ok := res.PerLabel[label]; ok {
			deps, environ = p.Dependencies, p.Environment
		}
		r := &lantern.Rebuild{
			Source: job.Source, Label: label, Output: out, Recipe: b.Recipe(), Builder: w.cfg.Key.ID(),
			Claim: job.Claim, Build: buildDigest(job),
			Dependencies: deps, Environment: environ, JobID: job.ID,
			Started: started, Finished: finished, Log: logDigest,
		}
		env, err := sign(r, w.cfg.Key)
		if err != nil {
			return nil, err
		}
		log.Info("rebuilt", "label", label, "output", out)
		envs = append(envs, env)
	}
	return envs, nil
}

// upload puts the output at path, which hashed to out, in the farm's
// object store, unless it is larger than MaxUpload.
func (w *Worker) upload(ctx context.Context, job lantern.Job, label, path string, out lantern.Digest, size int64, log *slog.Logger) error {
	if size > w.cfg.MaxUpload {
		log.Info("output not uploaded: larger than the upload limit", "label", label, "bytes", size, "limit", w.cfg.MaxUpload)
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("upload output %s: %w", label, err)
	}
	defer f.Close()
	got, err := w.q.PutObject(context.WithoutCancel(ctx), label+" of "+job.ID+" by "+w.cfg.Key.ID().String(), f)
	if err != nil {
		return fmt.Errorf("upload output %s: %w", label, err)
	}
	if got != out {
		return fmt.Errorf("upload output %s: it hashed to %s, then to %s: it changed under the worker", label, out, got)
	}
	return nil
}

func (w *Worker) failure(job lantern.Job, recipe lantern.Recipe, started time.Time, stage, reason string, expected, actual, logDigest lantern.Digest) ([][]byte, error) {
	f := &lantern.RebuildFailure{
		Source: job.Source, Recipe: recipe, Builder: w.cfg.Key.ID(), Stage: stage, Reason: reason,
		Claim: job.Claim, Build: buildDigest(job),
		Expected: expected, Actual: actual, JobID: job.ID, Started: started, Finished: time.Now().UTC(), Log: logDigest,
	}
	env, err := sign(f, w.cfg.Key)
	if err != nil {
		return nil, err
	}
	return [][]byte{env}, nil
}

// buildDigest is the digest of job's build spec, or zero for none.
func buildDigest(job lantern.Job) lantern.Digest {
	if job.Build == nil {
		return lantern.Digest{}
	}
	return job.Build.Digest()
}

func sign(c lantern.Claim, k *keys.Private) ([]byte, error) {
	env, err := attest.Sign(c, k)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return json.Marshal(env)
}
