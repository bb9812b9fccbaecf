package scheduler_test

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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/boltstore"
)

// A farm for tests: a real embedded NATS server with JetStream and the
// farm's identities (every connection authenticates, with its role's
// permissions), a real bbolt store, the scheduler with its API on
// httptest, and real keys. The builders' side is test code that connects
// with each builder's own credentials, takes jobs from the builders' real
// consumers and answers them with genuinely signed attestations.

var (
	claimKey = mustKey()
	// claimKey2 is a second key whose claims the farm accepts: another
	// author, or a bridge.
	claimKey2 = mustKey()
	builderA  = mustKey()
	builderB  = mustKey()
	builderC  = mustKey()
	stranger  = mustKey()
)

func mustKey() *keys.Private {
	k, err := keys.Generate()
	if err != nil {
		panic(err)
	}
	return k
}

type farm struct {
	t        testing.TB
	dir      string
	cfg      natsq.Config
	builders []*keys.Private
	differ   scheduler.Differ
	tune     func(*scheduler.Config) // if set, changes the scheduler's config
	fetch    netguard.Policy         // the scheduler's Config.Fetch
	// wrap, if set, is what the scheduler gets of its connection.
	wrap func(*natsq.Queue) scheduler.Queue

	nats   *natstest.Farm
	log    *slog.Logger // every connection's: it watches for permission violations
	q      *natsq.Queue // the scheduler's connection
	st     *boltstore.Store
	s      *scheduler.Scheduler
	api    *httptest.Server
	cancel context.CancelFunc
	done   chan error
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newFarm starts a farm whose builders are builders.
func newFarm(t testing.TB, cfg natsq.Config, builders ...*keys.Private) *farm {
	t.Helper()
	return newDiffingFarm(t, cfg, nil, builders...)
}

// newDiffingFarm starts a farm whose scheduler reports differences with
// differ.
func newDiffingFarm(t testing.TB, cfg natsq.Config, differ scheduler.Differ, builders ...*keys.Private) *farm {
	t.Helper()
	return newTunedFarm(t, cfg, differ, nil, builders...)
}

// newTunedFarm starts a farm whose scheduler reports differences with
// differ (if not nil) and has the config that tune (if not nil) makes.
func newTunedFarm(t testing.TB, cfg natsq.Config, differ scheduler.Differ, tune func(*scheduler.Config), builders ...*keys.Private) *farm {
	t.Helper()
	f := &farm{t: t, dir: t.TempDir(), cfg: cfg, builders: builders, differ: differ, tune: tune}
	f.log = natstest.WatchPermissions(t, testLogger(t))
	f.nats = natstest.StartIn(t, filepath.Join(f.dir, "farm"), -1)
	f.startScheduler()
	return f
}

// connect connects to the farm's NATS with cfg (credentials and role in
// it) and closes the connection when the test ends.
func (f *farm) connect(cfg natsq.Config) *natsq.Queue {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natstest.Patience)
	defer cancel()
	q, err := natsq.Connect(ctx, f.nats.URL(), cfg, f.log)
	if err != nil {
		f.t.Fatalf("Connect as %s: %v", cfg.Role, err)
	}
	f.t.Cleanup(func() { q.Close() })
	return q
}

// builderConfig is the farm's config with new credentials of builder b.
func (f *farm) builderConfig(b *keys.Private) natsq.Config {
	f.t.Helper()
	return f.nats.BuilderConfig(b.ID(), f.cfg)
}

// builder connects as one process of builder b, with credentials of its
// own: it may use only b's consumer, results subject and bucket.
func (f *farm) builder(b *keys.Private) *natsq.Queue {
	f.t.Helper()
	return f.connect(f.builderConfig(b))
}

// claimant connects as a client that only publishes source claims.
func (f *farm) claimant() *natsq.Queue {
	f.t.Helper()
	cfg := f.cfg
	cfg.Role = natsq.RoleClaimant
	cfg.Creds = f.nats.Creds("claimant", natsq.RoleClaimant, lantern.Digest{})
	return f.connect(cfg)
}

// startScheduler connects as the scheduler, sets the farm up as `lantern
// scheduler` does, and runs the scheduler; it stops when the test ends, or
// before with stopScheduler.
func (f *farm) startScheduler() {
	f.t.Helper()
	q := f.connect(f.nats.SchedulerConfig(f.cfg))
	setupCtx, cancelSetup := context.WithTimeout(context.Background(), natstest.Patience)
	defer cancelSetup()
	if err := q.Setup(setupCtx); err != nil {
		f.t.Fatalf("Setup: %v", err)
	}
	st, err := boltstore.Open(filepath.Join(f.dir, "scheduler.db"))
	if err != nil {
		f.t.Fatalf("boltstore.Open: %v", err)
	}
	var pubs []*keys.Public
	for _, b := range f.builders {
		pubs = append(pubs, b.Public())
	}
	scfg := scheduler.Config{RecipeVersions: recipes.Versions(), Threshold: 2, ClaimKeys: []*keys.Public{claimKey.Public(), claimKey2.Public()}, Builders: pubs, Backlog: true, Differ: f.differ, Fetch: f.fetch}
	if f.tune != nil {
		f.tune(&scfg)
	}
	var sq scheduler.Queue = q
	if f.wrap != nil {
		sq = f.wrap(q)
	}
	s, err := scheduler.New(scfg, sq, st, testLogger(f.t))
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.q, f.st, f.s, f.cancel, f.done = q, st, s, cancel, make(chan error, 1)
	go func() { f.done <- s.Run(ctx) }()
	f.api = httptest.NewServer(s.Handler())
	// Registered after the NATS server's shutdown (even a restarted one's),
	// so it runs before it.
	f.t.Cleanup(f.stopScheduler)
	// Run registers the builders first: wait for their consumers, so that a
	// test's builder never asks before the scheduler has added it.
	deadline := time.Now().Add(60 * time.Second)
	for _, b := range f.builders {
		for {
			jc, err := q.Jobs(f.t.Context(), b.ID())
			if err == nil {
				jc.Close()
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("builder %s never registered: %v", b.ID().Short(), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// peer starts another scheduler on f's NATS, named name (f's must be
// named too), with a store of its own and differ; wrap, if not nil, is
// what it gets of its connection.
func (f *farm) peer(name string, differ scheduler.Differ, wrap func(*natsq.Queue) scheduler.Queue) *farm {
	f.t.Helper()
	cfg := f.cfg
	cfg.SchedulerName = name
	p := &farm{t: f.t, dir: f.t.TempDir(), cfg: cfg, builders: f.builders, differ: differ, tune: f.tune, fetch: f.fetch, nats: f.nats, log: f.log, wrap: wrap}
	p.startScheduler()
	return p
}

func (f *farm) stopScheduler() {
	if f.cancel == nil {
		return
	}
	f.api.Close()
	f.cancel()
	if err := <-f.done; err != nil {
		f.t.Errorf("scheduler Run: %v", err)
	}
	f.q.Close()
	f.st.Close()
	f.cancel = nil
}

// sourceClaim signs a claim of a Go source and returns the envelope JSON.
func sourceClaim(t testing.TB, signer *keys.Private, name string, published lantern.Digest) ([]byte, lantern.Job) {
	t.Helper()
	c := &lantern.SourceClaim{
		Source: lantern.Source{Name: name, Version: "v1.0.0", Digest: lantern.DigestOf([]byte(name + " source"))},
		Recipe: "go",
		Time:   time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	}
	if !published.IsZero() {
		c.Artefacts = map[string]lantern.Digest{goLabel(name): published}
	}
	b := signed(t, signer, c)
	return b, lantern.JobFromClaim(c, b, signer.ID())
}

// signed signs c as k and returns the envelope's JSON.
func signed(t testing.TB, k *keys.Private, c lantern.Claim) []byte {
	t.Helper()
	env, err := attest.Sign(c, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goLabel is the label of the go recipe's output for package name.
func goLabel(name string) string { return recipes.GoLabel(name, "linux", "amd64") }

// goRecipe is the go recipe as attestations name it.
func goRecipe(t testing.TB) lantern.Recipe {
	t.Helper()
	r, err := recipes.Load("go")
	if err != nil {
		t.Fatal(err)
	}
	return r.Ref()
}

// rebuilt signs, as builder, a rebuild of job's source to output.
func rebuilt(t testing.TB, builder *keys.Private, job lantern.Job, output string) []byte {
	t.Helper()
	r := &lantern.Rebuild{
		Source:   job.Source,
		Label:    goLabel(job.Source.Name),
		Output:   lantern.DigestOf([]byte(output)),
		Recipe:   goRecipe(t),
		Builder:  builder.ID(),
		Claim:    job.Claim,
		JobID:    job.ID,
		Started:  time.Date(2026, 11, 25, 10, 1, 0, 0, time.UTC),
		Finished: time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC),
	}
	return signed(t, builder, r)
}

// do sends a request to the farm's API and decodes the JSON answer into out
// (if not nil); it returns the status code.
func (f *farm) do(method, path string, body []byte, out any) int {
	f.t.Helper()
	req, err := http.NewRequest(method, f.api.URL+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// eventually polls cond until it holds, failing the test after a generous
// deadline: the machine may be loaded, but the outcome must come.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// takeJob takes the next job of builder from a fresh consumer connection.
func takeJob(t testing.TB, q *natsq.Queue, builder *keys.Private) *natsq.JobMsg {
	t.Helper()
	jc, err := q.Jobs(t.Context(), builder.ID())
	if err != nil {
		t.Fatalf("Jobs(%s): %v", builder.ID().Short(), err)
	}
	t.Cleanup(func() { jc.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	m, err := jc.Next(ctx)
	if err != nil {
		t.Fatalf("Next job for %s: %v", builder.ID().Short(), err)
	}
	return m
}

type verdictResp struct {
	Verdicts []lantern.Verdict `json:"verdicts"`
}

func (f *farm) verdict(artefact lantern.Digest) *lantern.Verdict {
	var v verdictResp
	if f.do("GET", "/api/v1/artefacts/"+artefact.String(), nil, &v) != http.StatusOK || len(v.Verdicts) == 0 {
		return nil
	}
	return &v.Verdicts[0]
}

func groupsOf(v *lantern.Verdict) map[lantern.Digest][]lantern.Digest {
	out := map[lantern.Digest][]lantern.Digest{}
	for _, g := range v.Groups {
		out[g.Output] = g.Builders
	}
	return out
}

// snapshot is what the API says of a job and an artefact, less the times of
// receipt, which a reindex sets anew.
func (f *farm) snapshot(job lantern.Job, artefact lantern.Digest) string {
	var s strings.Builder
	for _, path := range []string{"/api/v1/jobs/" + job.ID, "/api/v1/artefacts/" + artefact.String(), "/api/v1/sources/" + job.Source.String()} {
		var v any
		code := f.do("GET", path, nil, &v)
		dropReceived(v)
		b, _ := json.Marshal(v)
		fmt.Fprintf(&s, "%s %d %s\n", path, code, b)
	}
	return s.String()
}

func dropReceived(v any) {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "received")
		delete(v, "updated")
		for _, x := range v {
			dropReceived(x)
		}
	case []any:
		for _, x := range v {
			dropReceived(x)
		}
	}
}

func removeStore(f *farm) error { return os.Remove(filepath.Join(f.dir, "scheduler.db")) }
