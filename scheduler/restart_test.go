package scheduler_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
)

// builderLoop answers every job builder gets with a signed rebuild, until
// ctx ends, and records how often it saw each job.
type builderLoop struct {
	mu   sync.Mutex
	seen map[string]int
}

func runBuilder(ctx context.Context, t *testing.T, f *farm, cfg natsq.Config, b *keys.Private, l *builderLoop) {
	q, err := natsq.Connect(ctx, f.nats.URL(), cfg, f.log)
	if err != nil {
		t.Errorf("builder connect: %v", err)
		return
	}
	defer q.Close()
	// The scheduler creates the builder's consumer when it starts; a worker
	// that comes first waits for it.
	var jc *natsq.JobConsumer
	for {
		if jc, err = q.Jobs(ctx, b.ID()); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer jc.Close()
	for {
		m, err := jc.Next(ctx)
		if err != nil {
			return // ctx ended, or the server went away: the test restarts us
		}
		l.mu.Lock()
		l.seen[m.Job.ID]++
		l.mu.Unlock()
		if err := q.PublishResult(ctx, b.ID(), rebuilt(t, b, m.Job, "out "+m.Job.ID)); err != nil {
			m.Nak(ctx, 0)
			continue
		}
		m.Ack(ctx)
	}
}

// TestRestartLosesNothing: claims arrive before, during and after the
// scheduler is closed and the embedded NATS server restarted, while builders
// keep working. In the end every claim, job and result is there, once.
func TestRestartLosesNothing(t *testing.T) {
	const n = 12
	f := newFarm(t, natsq.Config{AckWait: 2 * time.Second}, builderA, builderB)
	loops := map[lantern.Digest]*builderLoop{builderA.ID(): {seen: map[string]int{}}, builderB.ID(): {seen: map[string]int{}}}
	startBuilders := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, b := range []*keys.Private{builderA, builderB} {
			cfg := f.builderConfig(b) // each process of a builder has credentials of its own
			wg.Add(1)
			go func() { defer wg.Done(); runBuilder(ctx, t, f, cfg, b, loops[b.ID()]) }()
		}
		return func() { cancel(); wg.Wait() }
	}
	var jobs []lantern.Job
	claim := func(i int) []byte {
		c, job := sourceClaim(t, claimKey, fmt.Sprintf("example.org/restart%d", i), lantern.Digest{})
		jobs = append(jobs, job)
		return c
	}

	stopBuilders := startBuilders()
	for i := 0; i < n/3; i++ {
		if code := f.do("POST", "/api/v1/claims", claim(i), nil); code != http.StatusAccepted {
			t.Fatalf("POST claim %d = %d", i, code)
		}
	}
	// The scheduler goes away mid-flight; claims keep arriving on NATS, from
	// a client that may only publish claims, and builders keep answering.
	f.stopScheduler()
	pub := f.claimant()
	for i := n / 3; i < 2*n/3; i++ {
		if err := pub.PublishClaim(t.Context(), claim(i)); err != nil {
			t.Fatal(err)
		}
	}
	pub.Close()
	// Then NATS itself restarts.
	stopBuilders()
	f.nats.Restart()
	f.startScheduler()
	stopBuilders = startBuilders()
	defer stopBuilders()
	for i := 2 * n / 3; i < n; i++ {
		if code := f.do("POST", "/api/v1/claims", claim(i), nil); code != http.StatusAccepted {
			t.Fatalf("POST claim %d = %d", i, code)
		}
	}

	for _, job := range jobs {
		out := lantern.DigestOf([]byte("out " + job.ID))
		eventually(t, "the verdict on "+job.Source.Name, func() bool {
			v := f.verdict(out)
			return v != nil && v.Status == lantern.StatusReproduced
		})
	}
	var all struct {
		Jobs []struct {
			ID       string
			Builders map[lantern.Digest]struct {
				State        string
				Attestations []lantern.Digest
			}
		}
		Next string
	}
	if code := f.do("GET", "/api/v1/jobs?count=1000", nil, &all); code != http.StatusOK {
		t.Fatalf("GET jobs = %d", code)
	}
	if len(all.Jobs) != n {
		t.Errorf("jobs = %d, want %d", len(all.Jobs), n)
	}
	for _, j := range all.Jobs {
		for b, st := range j.Builders {
			if st.State != "done" || len(st.Attestations) != 1 {
				t.Errorf("job %s, builder %s: %s with %d attestations, want done with 1", j.ID, b.Short(), st.State, len(st.Attestations))
			}
		}
	}
	for _, job := range jobs {
		var atts struct{ Attestations []any }
		f.do("GET", "/api/v1/artefacts/"+lantern.DigestOf([]byte("out "+job.ID)).String()+"/attestations", nil, &atts)
		if len(atts.Attestations) != 2 {
			t.Errorf("job %s: %d attestations, want 2", job.ID, len(atts.Attestations))
		}
	}
	// Every builder saw every job; a job it saw twice was one it had not
	// acknowledged before the restart, and its second answer was not stored.
	for id, l := range loops {
		l.mu.Lock()
		if len(l.seen) != n {
			t.Errorf("builder %s saw %d jobs, want %d", id.Short(), len(l.seen), n)
		}
		l.mu.Unlock()
	}
}
