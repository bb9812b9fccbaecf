package scheduler_test

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
)

// BenchmarkIngestClaims measures signed claims ingested end to end: put on
// the claims stream by a client, then verified, stored and their jobs
// published by a scheduler on a real embedded NATS server and a real bbolt
// file, with two builders. claims/s is the rate over all rounds.
func BenchmarkIngestClaims(b *testing.B) {
	const batch = 2000
	f := newFarm(b, natsq.Config{Batch: 512}, builderA, builderB)
	pub, err := natsq.Connect(b.Context(), f.srv.URL(), f.cfg, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
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
			if _, err := f.st.Job(b.Context(), ids[next]); err == nil {
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
