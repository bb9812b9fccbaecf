package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/lanternfarm/lantern"
)

// JobBuilding is the state the API shows for a builder that says it is
// building a job it has not answered yet. It is never stored: it comes
// from what workers say on the bus (BuildingWatcher), and a store rebuilt
// from the streams knows nothing of it.
const JobBuilding JobState = "building"

// BuildingWatcher hears which jobs builders say they are building; the
// scheduler's Queue is one (natsq.Queue), and the API shows it when it is.
// The builder is the one the transport authenticated (natsq: the only
// user who may publish on its subject).
type BuildingWatcher interface {
	WatchBuilding(ctx context.Context, handle func(builder lantern.Digest, job string, building bool)) error
}

// Bounds of what the scheduler keeps of what builders say they build: it
// is progress, and a builder cannot make the scheduler keep more.
const (
	// buildingFor is how long a builder's word that it builds a job holds
	// without being said again: workers say it again with every heartbeat
	// (20 s by default, and less than the ack wait, 2 minutes by default),
	// so a worker that died reads as building for at most this long.
	buildingFor = 3 * time.Minute
	// maxBuilding is how many jobs one builder can be building at once, as
	// far as the scheduler keeps: its workers' slots together.
	maxBuilding = 64
)

// buildingSet is what each builder says it is building now.
type buildingSet struct {
	mu sync.Mutex
	m  map[lantern.Digest]map[string]building
}

type building struct {
	since, said time.Time
}

// heard records what builder said of job at now; it drops what has not been
// said again for buildingFor, and when a builder says more than maxBuilding,
// the one said the longest ago.
func (b *buildingSet) heard(builder lantern.Digest, job string, on bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	jobs := b.m[builder]
	if !on {
		delete(jobs, job)
		return
	}
	if jobs == nil {
		if b.m == nil {
			b.m = map[lantern.Digest]map[string]building{}
		}
		jobs = map[string]building{}
		b.m[builder] = jobs
	}
	for j, x := range jobs {
		if now.Sub(x.said) > buildingFor {
			delete(jobs, j)
		}
	}
	x, ok := jobs[job]
	if !ok {
		if len(jobs) >= maxBuilding {
			oldest := ""
			for j, y := range jobs {
				if oldest == "" || y.said.Before(jobs[oldest].said) {
					oldest = j
				}
			}
			delete(jobs, oldest)
		}
		x.since = now
	}
	x.said = now
	jobs[job] = x
}

// since returns when builder started building job, if it says it still is.
func (b *buildingSet) since(builder lantern.Digest, job string, now time.Time) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.m[builder][job]
	if !ok || now.Sub(x.said) > buildingFor {
		return time.Time{}, false
	}
	return x.since, true
}

// Building returns since when builder has been building job, by its own
// word on the bus, if it says it still is (the dashboard shows it).
func (s *Scheduler) Building(builder lantern.Digest, job string) (time.Time, bool) {
	return s.building.since(builder, job, s.cfg.Now())
}

// forget drops builder (removed from the farm).
func (b *buildingSet) forget(builder lantern.Digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, builder)
}

// watchBuilding keeps what the farm's builders say they build, until ctx
// ends. Only enrolled builders that are not revoked are heard.
func (s *Scheduler) watchBuilding(ctx context.Context, w BuildingWatcher) error {
	return w.WatchBuilding(ctx, func(builder lantern.Digest, job string, on bool) {
		s.buildersMu.RLock()
		e := s.builders[builder]
		s.buildersMu.RUnlock()
		if e == nil || !e.Revoked.IsZero() {
			s.building.forget(builder)
			return
		}
		s.building.heard(builder, job, on, s.cfg.Now())
	})
}
