// Package scheduler is the middle of a Lantern farm. It takes signed source
// claims, turns each into one rebuild job per source and recipe on the jobs
// stream (every builder rebuilds every job once), verifies the attestations
// the builders send back against the key of the builder whose job they
// answer, keeps everything in its Store, and recomputes the verdict of each
// (source, label) as results arrive. Its JSON API (api.go) serves the
// verdicts and the evidence. When builders disagree, it asks its Differ
// (diffoscope) how their outputs differ and keeps the report (diffs.go).
//
// The transport is a Queue (package natsq: NATS JetStream, whose streams
// outlive any process and are the record the store can be rebuilt from); the
// store is a Store (package scheduler/boltstore). Claims and results are
// consumed from durable consumers and acknowledged only after the store has
// committed them, so a crash loses nothing and a redelivery doubles nothing:
// every Put is idempotent.
package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/netguard"
)

// Config is what a scheduler is told.
type Config struct {
	// Threshold is how many distinct builders must agree for "reproduced".
	Threshold int
	// ClaimKeys are the keys whose source claims the farm accepts.
	ClaimKeys []*keys.Public
	// Builders are the builders the farm sends jobs to.
	Builders []*keys.Public
	// Backlog says whether a builder new to the farm rebuilds the jobs
	// queued before it joined, or only new ones.
	Backlog bool
	// Recipes are the recipe names the farm can rebuild with.
	Recipes []string
	// RecipeVersions are the versions of recipes whose attestations the
	// farm accepts (recipes.Versions()); an attestation of another recipe
	// digest is refused.
	RecipeVersions []lantern.RecipeVersion
	// MaxBody bounds API request bodies (default 1 MiB).
	MaxBody int64
	// MaxJobBytes is the largest message the Queue takes on the jobs
	// stream (default 1 MiB, NATS's own default; negative: no check). A
	// job carries its claim's envelope and what it decodes to, so it is
	// about twice the claim: a claim whose job does not fit is refused
	// when it arrives, rather than failing to publish without end.
	MaxJobBytes int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Differ, if set, makes a report of how two outputs of a mismatch
	// differ, for every pair DiffsWanted names; the scheduler's Queue must
	// then be an Objects too, where workers upload their outputs. Without
	// one, the reports stay pending.
	Differ Differ
	// DiffRetry is how long a report that failed for the store or the
	// object store waits before the next try (default 30 seconds).
	DiffRetry time.Duration

	// ClaimsPerMinute is how many claims one claim key may have taken a
	// minute (default 600; negative: no limit), after ClaimBurst at once
	// (default ClaimsPerMinute). The API refuses the excess with 429 and
	// Retry-After; claims a claimant publishes on NATS past it are dropped
	// with a log line. A claim whose signature does not check out counts
	// against no key.
	ClaimsPerMinute int
	ClaimBurst      int
	// OutputRetention is how long an output a worker uploaded is kept in
	// the object store (default 14 days), when the Queue is an
	// OutputRemover; an output is removed sooner, once its difference
	// report is made. Build logs are kept. RetentionSweep is how often old
	// outputs are looked for (default an hour).
	OutputRetention time.Duration
	RetentionSweep  time.Duration
	// Fetch is where a claim's source may be fetched from: a claim whose
	// fetch URL it refuses is refused (ErrFetchRefused). The zero Policy
	// allows https to public addresses only.
	Fetch netguard.Policy
}

// DefaultRecipes are the recipes Lantern knows.
var DefaultRecipes = []string{"go", "generic"}

// Scheduler ingests claims and results and keeps verdicts.
type Scheduler struct {
	cfg     Config
	q       Queue
	st      Store
	log     *slog.Logger
	metrics *metrics
	recipes map[string]bool
	// claimLimit counts claims per claim key (Config.ClaimsPerMinute)
	// posted to this scheduler's API; streamClaimLimit those claimants
	// published on NATS, in the stream's time (see limitStreamClaim).
	claimLimit, streamClaimLimit *claimLimiter

	// buildersMu guards builders, which SetBuilders changes while results
	// are verified.
	buildersMu sync.RWMutex
	builders   map[lantern.Digest]*Enrolled

	// building is what builders say they are building now (progress).
	building buildingSet
	// status is what GET /api/v1/status read last.
	status statusCache

	// resultsMu serialises the read-decide-write of verdicts.
	resultsMu sync.Mutex
	// diffWake wakes runDiffs up when a verdict may want new reports.
	diffWake chan struct{}
	// unreleased are outputs whose reports are made and that are still to
	// be removed from the object store.
	releaseMu  sync.Mutex
	unreleased []lantern.Digest
}

// New returns a scheduler over q and st.
func New(cfg Config, q Queue, st Store, log *slog.Logger) (*Scheduler, error) {
	if cfg.Threshold < 1 {
		return nil, fmt.Errorf("threshold %d: want at least 1 builder", cfg.Threshold)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxJobBytes == 0 {
		cfg.MaxJobBytes = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.Recipes) == 0 {
		cfg.Recipes = DefaultRecipes
	}
	if cfg.DiffRetry <= 0 {
		cfg.DiffRetry = 30 * time.Second
	}
	if cfg.ClaimsPerMinute == 0 {
		cfg.ClaimsPerMinute = DefaultClaimsPerMinute
	}
	if cfg.ClaimBurst <= 0 {
		cfg.ClaimBurst = max(1, cfg.ClaimsPerMinute)
	}
	if cfg.OutputRetention <= 0 {
		cfg.OutputRetention = DefaultOutputRetention
	}
	if cfg.RetentionSweep <= 0 {
		cfg.RetentionSweep = DefaultRetentionSweep
	}
	if _, ok := q.(Objects); cfg.Differ != nil && !ok {
		return nil, fmt.Errorf("a differ needs the outputs: the queue (%T) has no object store", q)
	}
	s := &Scheduler{
		cfg:              cfg,
		q:                q,
		st:               st,
		log:              log,
		metrics:          newMetrics(),
		builders:         map[lantern.Digest]*Enrolled{},
		recipes:          map[string]bool{},
		diffWake:         make(chan struct{}, 1),
		claimLimit:       newClaimLimiter(cfg.ClaimsPerMinute, cfg.ClaimBurst),
		streamClaimLimit: newClaimLimiter(cfg.ClaimsPerMinute, cfg.ClaimBurst),
	}
	if nh, ok := q.(NameHolder); ok {
		s.metrics.watchName(nh)
	}
	for _, b := range cfg.Builders {
		s.builders[b.ID()] = &Enrolled{Key: b}
	}
	for _, r := range cfg.Recipes {
		s.recipes[r] = true
	}
	return s, nil
}

// Run registers the builders and ingests claims, results and dead letters
// until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.registerBuilders(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return s.q.ConsumeClaims(ctx, func(ctx context.Context, msgs []Message) []error {
			return s.ingestClaims(ctx, msgs, true)
		})
	})
	g.Go(func() error { return s.q.ConsumeResults(ctx, s.ingestResults) })
	g.Go(func() error { return s.q.ConsumeDeadLetters(ctx, s.deadLetter) })
	g.Go(func() error { return s.q.ConsumeDiffs(ctx, s.ingestDiffs) })
	g.Go(func() error { return s.runDiffs(ctx, s.q) })
	if s.cfg.Differ != nil {
		objects := s.q.(Objects)
		g.Go(func() error {
			return s.q.ConsumeDiffWork(ctx, func(ctx context.Context, m Message) error { return s.diffWork(ctx, s.q, objects, m) })
		})
	}
	if r, ok := s.q.(OutputRemover); ok {
		g.Go(func() error { return s.runRetention(ctx, r) })
	}
	if w, ok := s.q.(BuildingWatcher); ok {
		g.Go(func() error { return s.watchBuilding(ctx, w) })
	}
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Reindex empties the store and rebuilds it from the claims, results and
// dead-letter streams, publishing nothing. Give it a new store (see
// lantern scheduler --reindex): the one serving stays whole until the new
// one is complete.
func (s *Scheduler) Reindex(ctx context.Context) error {
	if err := s.st.Reset(ctx); err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	if err := s.registerBuilders(ctx); err != nil {
		return err
	}
	err := s.q.Replay(ctx,
		func(ctx context.Context, msgs []Message) []error { return s.ingestClaims(ctx, msgs, false) },
		s.ingestResults)
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	err = s.q.ReplayDeadLetters(ctx, func(ctx context.Context, d DeadLetter) error {
		if err := s.deadLetter(ctx, d); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil // a dead letter of a job no claim made is not worth a failed reindex
	})
	if err != nil {
		return fmt.Errorf("reindex: dead letters: %w", err)
	}
	if err := s.q.ReplayDiffs(ctx, s.ingestDiffs); err != nil {
		return fmt.Errorf("reindex: difference reports: %w", err)
	}
	return nil
}

func (s *Scheduler) registerBuilders(ctx context.Context) error {
	s.buildersMu.RLock()
	all := make([]Enrolled, 0, len(s.builders))
	for _, e := range s.builders {
		all = append(all, *e)
	}
	s.buildersMu.RUnlock()
	for _, e := range all {
		if err := s.register(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// Enrolled is a builder as the farm enrolled it: its key, the name it was
// enrolled under, and when it was revoked (zero while it is a builder of
// the farm).
type Enrolled struct {
	Key     *keys.Public
	Name    string
	Revoked time.Time
}

// register puts a builder on the bus (or takes a revoked one off it) and
// in the store.
func (s *Scheduler) register(ctx context.Context, e Enrolled) error {
	id := e.Key.ID()
	if e.Revoked.IsZero() {
		if err := s.q.EnsureBuilder(ctx, id, s.cfg.Backlog); err != nil {
			return fmt.Errorf("builder %s: %w", id, err)
		}
	} else if err := s.q.RemoveBuilder(ctx, id); err != nil {
		return fmt.Errorf("builder %s: %w", id, err)
	}
	rec := BuilderRecord{ID: id, PublicKey: e.Key.MarshalPEM(), Name: e.Name, Added: s.cfg.Now().UTC(), Revoked: e.Revoked.UTC()}
	if err := s.st.PutBuilder(ctx, rec); err != nil {
		return fmt.Errorf("builder %s: %w", id, err)
	}
	return nil
}

// SetBuilders brings the farm's builders up to enrolled, while it runs: a
// new builder gets its job consumer and is recorded; a revoked one loses
// its consumer (its workers take no more jobs), is recorded as revoked, and
// every result of it that reaches the farm from the revocation on is
// refused. Its earlier attestations stay, as signed history. A builder not
// in enrolled is left as it is.
func (s *Scheduler) SetBuilders(ctx context.Context, enrolled []Enrolled) error {
	for _, e := range enrolled {
		if e.Key == nil {
			return errors.New("set builders: a builder without a key")
		}
		id := e.Key.ID()
		s.buildersMu.RLock()
		have, ok := s.builders[id]
		same := ok && have.Revoked.Equal(e.Revoked) && have.Name == e.Name
		s.buildersMu.RUnlock()
		if same {
			continue
		}
		if err := s.register(ctx, e); err != nil {
			return err
		}
		s.buildersMu.Lock()
		s.builders[id] = &e
		s.buildersMu.Unlock()
		if e.Revoked.IsZero() {
			s.log.Info("builder enrolled", "builder", id.Short(), "name", e.Name)
		} else {
			s.log.Warn("builder revoked", "builder", id.Short(), "name", e.Name, "at", e.Revoked)
		}
		// Its outcomes stop counting (or count again): every verdict it
		// is in is decided again.
		if err := s.refreshBuilder(ctx, id); err != nil {
			return fmt.Errorf("builder %s: verdicts: %w", id, err)
		}
	}
	return nil
}

// refreshBuilder recomputes the verdicts of every job builder answered.
func (s *Scheduler) refreshBuilder(ctx context.Context, builder lantern.Digest) error {
	done := map[string]bool{}
	page := Page{Count: 1000}
	for {
		atts, next, err := s.st.AttestationsByBuilder(ctx, builder, page)
		if err != nil {
			return err
		}
		for _, a := range atts {
			if a.JobID == "" || done[a.JobID] {
				continue
			}
			done[a.JobID] = true
			if err := s.refreshJob(ctx, a.JobID); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if next == "" {
			return nil
		}
		page.Cursor = next
	}
}

// Errors of ingest that the API turns into status codes.
var (
	ErrUnknownSigner  = errors.New("not signed by a key this farm accepts")
	ErrNotASource     = errors.New("not a source claim")
	ErrUnknownRecipe  = errors.New("unknown recipe")
	ErrUnknownBuilder = errors.New("unknown builder")
	ErrRevokedBuilder = errors.New("revoked builder")
	ErrUnknownJob     = errors.New("unknown job")
	ErrWrongJob       = errors.New("attestation does not answer its job")
	ErrNotAResult     = errors.New("not a rebuild or failed-rebuild attestation")
	ErrFetchRefused   = netguard.ErrRefused // a claim's fetch URL, by Config.Fetch
	ErrJobTooLarge    = errors.New("its job is too large")
)

// jobHeadroom is what a job message needs besides its JSON: NATS headers
// (its id as Nats-Msg-Id) and the subject.
const jobHeadroom = 1 << 10

// verifiedClaim is a claim envelope that checked out, with its job.
type verifiedClaim struct {
	rec ClaimRecord
	job lantern.Job
}

// verifyClaim checks a claim envelope: its signature by one of the accepted
// claim keys, that it is a source claim, and that a recipe can rebuild it.
func (s *Scheduler) verifyClaim(raw []byte, received time.Time) (*verifiedClaim, error) {
	env, err := dsse.Unmarshal(raw)
	if err != nil {
		return nil, err
	}
	var v *attest.Verified
	var lastErr error = ErrUnknownSigner
	for _, k := range s.cfg.ClaimKeys {
		if v, lastErr = attest.Verify(env, k); lastErr == nil {
			break
		}
		if !errors.Is(lastErr, dsse.ErrSignature) {
			return nil, lastErr // the signature was good: the claim is not
		}
	}
	if v == nil {
		if errors.Is(lastErr, dsse.ErrSignature) || errors.Is(lastErr, ErrUnknownSigner) {
			return nil, fmt.Errorf("%w (%d keys tried)", ErrUnknownSigner, len(s.cfg.ClaimKeys))
		}
		return nil, lastErr
	}
	sc, ok := v.Claim.(*lantern.SourceClaim)
	if !ok {
		return nil, fmt.Errorf("%w: a %s claim", ErrNotASource, v.Claim.Kind())
	}
	if err := s.cfg.Fetch.CheckURL(sc.Fetch); sc.Fetch != "" && err != nil {
		return nil, err // a *netguard.RefusedError, which is ErrFetchRefused
	}
	recipe := sc.RecipeName()
	if !s.recipes[recipe] {
		return nil, fmt.Errorf("%w %q: this farm rebuilds with %s", ErrUnknownRecipe, recipe, strings.Join(s.cfg.Recipes, ", "))
	}
	now := received.UTC()
	if received.IsZero() {
		now = s.cfg.Now().UTC()
	}
	job := lantern.JobFromClaim(sc, raw, v.Signer)
	job.Created = now
	if s.cfg.MaxJobBytes > 0 {
		b, err := json.Marshal(job)
		if err != nil {
			return nil, fmt.Errorf("claim of %s: encode its job: %w", sc.Source, err)
		}
		if len(b)+jobHeadroom > s.cfg.MaxJobBytes {
			return nil, fmt.Errorf("claim of %s: %w: %d bytes (it carries the claim and what the claim says), the farm's jobs hold %d; claim fewer or shorter artefacts, commands or outputs",
				sc.Source, ErrJobTooLarge, len(b)+jobHeadroom, s.cfg.MaxJobBytes)
		}
	}
	return &verifiedClaim{
		rec: ClaimRecord{Envelope: job.Claim, Raw: raw, Claim: *sc, Signer: v.Signer, Jobs: []string{job.ID}, Received: now},
		job: job,
	}, nil
}

// verifyClaims verifies a batch of claims on every core: the signature
// checks are most of the cost of ingest.
func (s *Scheduler) verifyClaims(msgs []Message) ([]*verifiedClaim, []error) {
	out := make([]*verifiedClaim, len(msgs))
	errs := make([]error, len(msgs))
	workers := min(runtime.GOMAXPROCS(0), len(msgs))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(msgs); i += workers {
				out[i], errs[i] = s.verifyClaim(msgs[i].Data, msgs[i].Time)
			}
		}()
	}
	wg.Wait()
	return out, errs
}

// ingestClaims stores a batch of claim envelopes and queues their new jobs.
//
// Order matters for "no job lost, none doubled": jobs are published before
// the claims are stored, and only for jobs the store does not have. If the
// process dies between the two, the claim is redelivered (it was not acked),
// the store still lacks it, and the job is published again — within the
// stream's duplicate window, which the redelivery falls in, so it is queued
// once. A claim that comes again later finds its job stored and publishes
// nothing.
func (s *Scheduler) ingestClaims(ctx context.Context, msgs []Message, publish bool) []error {
	errs := make([]error, len(msgs))
	var (
		recs  []ClaimRecord
		jobs  []lantern.Job
		index []int
		fresh = map[string]bool{}
	)
	verified, verrs := s.verifyClaims(msgs)
	for i := range msgs {
		vc, err := verified[i], verrs[i]
		if err != nil {
			s.metrics.claims.WithLabelValues("refused").Inc()
			s.log.Warn("claim refused", "error", err)
			errs[i] = &Permanent{Err: err}
			continue
		}
		if _, err := s.st.Claim(ctx, vc.rec.Envelope); err == nil {
			s.metrics.claims.WithLabelValues("duplicate").Inc()
			continue
		} else if !errors.Is(err, ErrNotFound) {
			errs[i] = err
			continue
		}
		// Every new claim counts against its key's rate, in the stream's
		// time; a claimant's, from NATS, past that rate is dropped (the
		// API refused its own excess already).
		if err := s.limitStreamClaim(vc, msgs[i].Time); publish && err != nil && msgs[i].Subject == ClaimSubject {
			s.metrics.claims.WithLabelValues("limited").Inc()
			s.log.Warn("claim refused", "source", vc.rec.Claim.Source.String(), "error", err)
			errs[i] = &Permanent{Err: err}
			continue
		}
		if _, err := s.st.Job(ctx, vc.job.ID); errors.Is(err, ErrNotFound) {
			if !fresh[vc.job.ID] {
				fresh[vc.job.ID] = true
				jobs = append(jobs, vc.job)
			}
		} else if err != nil {
			errs[i] = err
			continue
		}
		recs = append(recs, vc.rec)
		index = append(index, i)
	}
	if len(recs) == 0 {
		return errs
	}
	fail := func(err error) []error {
		for _, i := range index {
			errs[i] = err
		}
		return errs
	}
	if publish && len(jobs) > 0 {
		if err := s.q.PublishJobs(ctx, jobs); err != nil {
			return fail(fmt.Errorf("publish jobs: %w", err))
		}
	}
	added, err := s.st.PutClaims(ctx, recs, jobs)
	if err != nil {
		return fail(fmt.Errorf("store claims: %w", err))
	}
	joined := map[string]bool{}
	for i, a := range added {
		if a {
			s.metrics.claims.WithLabelValues("accepted").Inc()
			s.log.Info("claim accepted", "source", recs[i].Claim.Source.String(), "job", recs[i].Jobs[0], "signer", recs[i].Signer.Short())
			if id := recs[i].Jobs[0]; !fresh[id] {
				joined[id] = true
			}
		}
	}
	s.metrics.jobs.Add(float64(len(jobs)))
	// A claim of a job that has rebuilds already gets its own comparisons.
	for id := range joined {
		if err := s.refreshJob(ctx, id); err != nil {
			s.log.Warn("verdicts of a job a new claim joined not recomputed", "job", id, "error", err)
		}
	}
	return errs
}

// verifiedResult is an attestation that checked out against its job.
type verifiedResult struct {
	rec AttestationRecord
	job *JobRecord
}

// verifyResult checks an attestation envelope from builder (zero: take the
// builder the attestation names), received at: the builder is one of the
// farm's, not revoked by then, the signature is its key's, and the
// attestation answers a job the farm queued, about that job's source.
func (s *Scheduler) verifyResult(ctx context.Context, builder lantern.Digest, raw []byte, at time.Time) (*verifiedResult, error) {
	env, err := dsse.Unmarshal(raw)
	if err != nil {
		return nil, err
	}
	if builder.IsZero() {
		// Read, unverified, which builder it names, to know whose key to
		// check it with; nothing of it is trusted before that check.
		st, err := attest.ParseStatement(env.Payload)
		if err != nil {
			return nil, err
		}
		c, err := st.Claim()
		if err != nil {
			return nil, err
		}
		switch c := c.(type) {
		case *lantern.Rebuild:
			builder = c.Builder
		case *lantern.RebuildFailure:
			builder = c.Builder
		default:
			return nil, fmt.Errorf("%w: a %s claim", ErrNotAResult, c.Kind())
		}
	}
	s.buildersMu.RLock()
	e, ok := s.builders[builder]
	s.buildersMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %s: not one of this farm's builders", ErrUnknownBuilder, builder)
	}
	if !e.Revoked.IsZero() && !at.Before(e.Revoked) {
		return nil, fmt.Errorf("%w %s: revoked at %s, this result came at %s", ErrRevokedBuilder, builder, e.Revoked.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	v, err := attest.Verify(env, e.Key)
	if err != nil {
		return nil, err
	}
	rec := AttestationRecord{Envelope: lantern.DigestOf(raw), Raw: raw, Kind: v.Claim.Kind(), Builder: builder, Received: s.cfg.Now().UTC()}
	switch c := v.Claim.(type) {
	case *lantern.Rebuild:
		rec.JobID, rec.Source, rec.Label, rec.Output, rec.Recipe = c.JobID, c.Source, c.Label, c.Output, c.Recipe
		rec.Claim, rec.Build = c.Claim, c.Build
		rec.Started, rec.Finished, rec.Log = c.Started, c.Finished, c.Log
	case *lantern.RebuildFailure:
		rec.JobID, rec.Source, rec.Label, rec.Recipe = c.JobID, c.Source, c.Label, c.Recipe
		rec.Claim, rec.Build = c.Claim, c.Build
		rec.Stage, rec.Reason = c.Stage, c.Reason
		rec.Started, rec.Finished, rec.Log = c.Started, c.Finished, c.Log
	default:
		return nil, fmt.Errorf("%w: a %s claim", ErrNotAResult, v.Claim.Kind())
	}
	job, err := s.st.Job(ctx, rec.JobID)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w %q: this farm queued no such job", ErrUnknownJob, rec.JobID)
	}
	if err != nil {
		return nil, err
	}
	if err := answers(s.cfg.RecipeVersions, job.Job, rec); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrWrongJob, rec.JobID, err)
	}
	return &verifiedResult{rec: rec, job: job}, nil
}

// answers reports, naming the field, whether the attestation rec answers
// job: about its source and its claim, built with its recipe (a version of
// it the farm knows) and its build spec, under a label that the job's
// claim and recipe make. An attestation of anything else would count, in
// the job's verdict, a build nobody asked for.
func answers(versions []lantern.RecipeVersion, job lantern.Job, rec AttestationRecord) error {
	if rec.Source != job.Source {
		return fmt.Errorf("source: the job is %s (%s), the attestation is about %s (%s)", job.Source, job.Source.Digest, rec.Source, rec.Source.Digest)
	}
	if rec.Claim != job.Claim {
		return fmt.Errorf("claim: the job answers source claim %s, the attestation names %s", job.Claim, rec.Claim)
	}
	i := slices.IndexFunc(versions, func(v lantern.RecipeVersion) bool { return v.Ref.Digest == rec.Recipe.Digest })
	if i < 0 {
		return fmt.Errorf("recipe.digest %s: not a version of a recipe this farm knows", rec.Recipe.Digest)
	}
	r := versions[i]
	if r.Name != job.Recipe {
		return fmt.Errorf("recipe: the job is built with %q, the attestation followed %s (%s)", job.Recipe, r.Name, r.Ref.BuildType)
	}
	if rec.Recipe.BuildType != r.Ref.BuildType {
		return fmt.Errorf("recipe.buildType %q: the recipe with that digest is %q", rec.Recipe.BuildType, r.Ref.BuildType)
	}
	var build lantern.Digest
	if job.Build != nil {
		build = job.Build.Digest()
	}
	if rec.Build != build {
		return fmt.Errorf("build: the job's build spec is %s, the attestation followed %s", build, rec.Build)
	}
	// The labels are the recipe version's build of this job, and only
	// those: a label the claim publishes besides them (a platform it did
	// not ask to build) is one no honest build of the job makes, and a
	// version that builds nothing of the job (go/v1, of a job that names a
	// Go release or platforms) answers it with nothing, a failure neither.
	labels := r.Labels(job)
	if len(labels) == 0 {
		return fmt.Errorf("recipe: %s (%s) builds nothing of this job (%s)", r.Name, r.Ref.BuildType, job.Go)
	}
	if rec.Label != "" && !slices.Contains(labels, rec.Label) {
		return fmt.Errorf("label %q: the job's recipe and claim name %s", rec.Label, strings.Join(labels, ", "))
	}
	return nil
}

// ingestResults verifies and stores a batch of attestations from the results
// stream and recomputes the verdicts they touch.
func (s *Scheduler) ingestResults(ctx context.Context, msgs []Message) []error {
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		builder, err := builderOfSubject(m.Subject)
		if err != nil {
			errs[i] = &Permanent{Err: err}
			continue
		}
		errs[i] = s.recordResult(ctx, builder, m)
	}
	return errs
}

// unknownJobRetries is how many deliveries an attestation of a job the store
// does not know gets before it is dropped. A job is published before its
// claim is stored (see ingestClaims), so a fast builder's answer can arrive
// while the store is still committing the job: that is worth a retry, a
// job nobody queued is not worth more than a few.
const unknownJobRetries = 5

// recordResult verifies one attestation, stores it with the new verdict of
// its (source, label), and reports permanent failures as *Permanent.
func (s *Scheduler) recordResult(ctx context.Context, builder lantern.Digest, m Message) error {
	at := m.Time
	if at.IsZero() {
		at = s.cfg.Now()
	}
	vr, err := s.verifyResult(ctx, builder, m.Data, at)
	if err != nil {
		if isTransient(err) {
			return err
		}
		if errors.Is(err, ErrUnknownJob) && m.Deliveries > 0 && m.Deliveries < unknownJobRetries {
			s.log.Info("attestation of a job not stored yet; retrying", "builder", builder.Short(), "delivery", m.Deliveries, "error", err)
			return err
		}
		s.metrics.attestations.WithLabelValues("refused").Inc()
		s.log.Warn("attestation refused", "builder", builder.Short(), "error", err)
		return &Permanent{Err: err}
	}
	rec := vr.rec
	if !m.Time.IsZero() {
		rec.Received = m.Time.UTC()
	}
	s.resultsMu.Lock()
	defer s.resultsMu.Unlock()
	outcomes, err := s.st.Outcomes(ctx, rec.JobID, rec.Label)
	if err != nil {
		return err
	}
	outcomes = append(outcomes, rec.Outcome())
	verdicts, err := s.decide(ctx, &vr.job.Job, rec.Label, outcomes)
	if err != nil {
		return err
	}
	if err := s.st.PutAttestation(ctx, rec, verdicts); err != nil {
		if errors.Is(err, ErrDuplicate) {
			s.metrics.attestations.WithLabelValues("duplicate").Inc()
			return &Permanent{Err: err}
		}
		return err
	}
	s.metrics.attestations.WithLabelValues("accepted").Inc()
	if len(verdicts[0].Groups) > 1 {
		s.wakeDiffs()
	}
	s.log.Info("attestation recorded", "builder", rec.Builder.Short(), "job", rec.JobID, "source", rec.Source.String(), "label", rec.Label, "verdict", verdicts[0].Status)
	return nil
}

// decide returns the verdicts on job's label from its outcomes, in the
// order the farm received them: one per artefact that the job's claims
// publish under the label (zero for none), each naming its claims, so that
// every claimer's published artefact is compared on its own. Outcomes of
// revoked builders are marked and do not count.
func (s *Scheduler) decide(ctx context.Context, job *lantern.Job, label string, outcomes []lantern.Outcome) ([]lantern.Verdict, error) {
	claims, err := s.st.ClaimsOf(ctx, job.Source.Name, job.Source.Version)
	if err != nil {
		return nil, err
	}
	s.buildersMu.RLock()
	for i, o := range outcomes {
		if e, ok := s.builders[o.Builder]; ok && !e.Revoked.IsZero() {
			outcomes[i].Revoked = true
		}
	}
	s.buildersMu.RUnlock()
	byPublished := map[lantern.Digest][]lantern.ClaimRef{}
	var order []lantern.Digest
	for _, c := range claims {
		if !slices.Contains(c.Jobs, job.ID) {
			continue
		}
		p := c.Claim.Artefacts[label]
		if _, ok := byPublished[p]; !ok {
			order = append(order, p)
		}
		byPublished[p] = append(byPublished[p], lantern.ClaimRef{Envelope: c.Envelope, Signer: c.Signer})
	}
	if len(order) == 0 {
		// The job's claims are stored with it; a store without them has
		// lost them, and the rebuilds are still worth a verdict.
		order = append(order, job.Published[label])
	}
	var buildDigest lantern.Digest
	if job.Build != nil {
		buildDigest = job.Build.Digest()
	}
	verdicts := make([]lantern.Verdict, 0, len(order))
	for _, p := range order {
		v := lantern.Decide(job.Source, label, p, s.cfg.Threshold, outcomes)
		v.Job, v.Recipe, v.Build, v.Claims = job.ID, job.Recipe, buildDigest, byPublished[p]
		verdicts = append(verdicts, v)
	}
	return verdicts, nil
}

// refreshJob recomputes the verdicts on every label of a job that has
// outcomes: after a claim joined it, or a builder that answered it was
// revoked.
func (s *Scheduler) refreshJob(ctx context.Context, id string) error {
	job, err := s.st.Job(ctx, id)
	if err != nil {
		return err
	}
	s.resultsMu.Lock()
	defer s.resultsMu.Unlock()
	labels, err := s.st.OutcomeLabels(ctx, id)
	if err != nil {
		return err
	}
	for _, label := range labels {
		outcomes, err := s.st.Outcomes(ctx, id, label)
		if err != nil {
			return err
		}
		verdicts, err := s.decide(ctx, &job.Job, label, outcomes)
		if err != nil {
			return err
		}
		if err := s.st.PutVerdicts(ctx, verdicts); err != nil {
			return err
		}
	}
	return nil
}

// isTransient reports whether err is a failure of the store or the
// transport, worth a retry, rather than something wrong with the message.
func isTransient(err error) bool {
	for _, e := range []error{dsse.ErrMalformed, dsse.ErrBase64, dsse.ErrSignature, dsse.ErrPayloadType, dsse.ErrNoSignature,
		dsse.ErrSignatureCount, dsse.ErrTooLarge, attest.ErrMalformed, attest.ErrUnknownField, attest.ErrStatementType,
		attest.ErrPredicateType, attest.ErrSubject, attest.ErrInvalidClaim, attest.ErrBuilderMismatch,
		ErrUnknownBuilder, ErrRevokedBuilder, ErrUnknownJob, ErrWrongJob, ErrNotAResult, ErrUnknownSigner, ErrNotASource, ErrUnknownRecipe, ErrFetchRefused, ErrJobTooLarge} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// deadLetterWait is how long a dead letter of a job the store does not
// have yet is retried. A job is published before its claim is stored (see
// ingestClaims), so a builder can fail it to the end before the store has
// it, on a busy machine; a job nobody stored is not worth waiting for
// longer.
const deadLetterWait = 2 * time.Minute

// deadLetter records d: the builder's state of the job first, then the dead
// letter, so that a listed dead letter's job always reads as dead.
func (s *Scheduler) deadLetter(ctx context.Context, d DeadLetter) error {
	err := s.st.SetJobState(ctx, d.JobID, d.Builder, BuilderJob{State: JobDead, Reason: fmt.Sprintf("gave up after %d deliveries", d.Deliveries), Updated: d.Time})
	switch {
	case errors.Is(err, ErrNotFound) && s.cfg.Now().Sub(d.Time) < deadLetterWait:
		return fmt.Errorf("dead letter of job %s: the job is not stored yet: %w", d.JobID, err) // tried again
	case errors.Is(err, ErrNotFound):
		s.log.Warn("dead letter of a job this farm never stored", "job", d.JobID, "builder", d.Builder.Short())
	case err != nil:
		return err
	}
	added, err := s.st.PutDeadLetter(ctx, d)
	if err != nil {
		return err
	}
	if added {
		s.metrics.deadLetters.Inc()
		s.log.Warn("job dead-lettered", "job", d.JobID, "builder", d.Builder.Short(), "deliveries", d.Deliveries)
	}
	return nil
}

// ClaimSubject is where claimants publish source claims on NATS; the
// claims the API took come on another subject.
const ClaimSubject = "lantern.claims"

// ResultSubjectPrefix is where builders publish attestations:
// ResultSubjectPrefix + the hex of the builder's key id.
const ResultSubjectPrefix = "lantern.results."

func builderOfSubject(subject string) (lantern.Digest, error) {
	hexID, ok := strings.CutPrefix(subject, ResultSubjectPrefix)
	if !ok {
		return lantern.Digest{}, fmt.Errorf("result on subject %q: want %s<builder key id hex>", subject, ResultSubjectPrefix)
	}
	d, err := lantern.DigestFromHex(hexID)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("result on subject %q: %w", subject, err)
	}
	return d, nil
}

// sortedBuilders returns the farm's builders, but the revoked ones, in key
// id order.
func (s *Scheduler) sortedBuilders() []lantern.Digest {
	s.buildersMu.RLock()
	ids := make([]lantern.Digest, 0, len(s.builders))
	for id, e := range s.builders {
		if e.Revoked.IsZero() {
			ids = append(ids, id)
		}
	}
	s.buildersMu.RUnlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	return ids
}
