package scheduler_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sync/errgroup"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/boltstore"
)

// BenchmarkIngestClaims measures signed claims ingested end to end: put on
// the claims stream by a client, then verified, stored and their jobs
// published by a scheduler on a real embedded NATS server and a real bbolt
// file, with two builders. claims/s is the rate over all rounds.
func BenchmarkIngestClaims(b *testing.B) {
	f := newTunedFarm(b, natsq.Config{Batch: 512}, nil, noClaimLimit, builderA, builderB)
	ingestRounds(b, f.claimant(), f.st)
}

// BenchmarkIngestClaimsOpen is BenchmarkIngestClaims on a NATS server
// with no authentication at all — what the farm's bus was before it was
// locked, and never is now — as the baseline of what authentication costs
// (make bench's ratio of the two).
func BenchmarkIngestClaimsOpen(b *testing.B) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(time.Minute) {
		b.Fatal("nats server not ready")
	}
	b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctx := b.Context()
	q, err := natsq.Connect(ctx, srv.ClientURL(), natsq.Config{Batch: 512}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	if err := q.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "scheduler.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	scfg := scheduler.Config{RecipeVersions: recipes.Versions(), Threshold: 2, ClaimKeys: []*keys.Public{claimKey.Public()}, Builders: []*keys.Public{builderA.Public(), builderB.Public()}, Backlog: true}
	noClaimLimit(&scfg)
	s, err := scheduler.New(scfg, q, st, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	b.Cleanup(func() { cancel(); <-done })
	pub, err := natsq.Connect(ctx, srv.ClientURL(), natsq.Config{Role: natsq.RoleClaimant}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pub.Close() })
	ingestRounds(b, pub, st)
}

// noClaimLimit lets one key post more claims than a benchmark does, with the
// per-key limiter in the way all the same: its cost is part of ingest.
func noClaimLimit(c *scheduler.Config) {
	c.ClaimsPerMinute, c.ClaimBurst = math.MaxInt32, math.MaxInt32
}

// ingestRounds publishes rounds of 2000 claims with pub and waits until st
// has all their jobs; it reports claims/s over all rounds.
func ingestRounds(b *testing.B, pub *natsq.Queue, st *boltstore.Store) {
	const batch = 2000
	var (
		round  int
		total  time.Duration
		claims int
	)
	for b.Loop() {
		b.StopTimer()
		envs := make([][]byte, batch)
		ids := make([]string, batch)
		for i := range envs {
			env, job := sourceClaim(b, claimKey, fmt.Sprintf("example.org/bench/r%d/c%d", round, i), lantern.Digest{})
			envs[i], ids[i] = env, job.ID
		}
		round++
		b.StartTimer()
		start := time.Now()
		// Clients publish concurrently, as many would: each publish waits
		// for the stream's ack.
		var g errgroup.Group
		g.SetLimit(32)
		for _, e := range envs {
			g.Go(func() error { return pub.PublishClaim(b.Context(), e) })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		// Wait until every job is stored, looking from the first missing.
		next := 0
		deadline := time.Now().Add(5 * time.Minute)
		for next < len(ids) {
			if _, err := st.Job(b.Context(), ids[next]); err == nil {
				next++
				continue
			}
			if time.Now().After(deadline) {
				b.Fatalf("after 5 minutes, %d of %d claims ingested", next, batch)
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		claims += batch
	}
	b.ReportMetric(float64(claims)/total.Seconds(), "claims/s")
}
