package scheduler

import (
	"fmt"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
)

// TestBuildingSetBounds: a builder that says it builds ever more jobs
// holds at most maxBuilding of them, the ones said last; what is not said
// again for buildingFor is forgotten; a job is building since it was
// first said, however often it is said again.
func TestBuildingSetBounds(t *testing.T) {
	var b buildingSet
	builder := lantern.DigestOf([]byte("builder"))
	t0 := time.Unix(1e9, 0)
	for i := range 10 * maxBuilding {
		b.heard(builder, fmt.Sprintf("j%032x", i), true, t0.Add(time.Duration(i)*time.Millisecond))
	}
	now := t0.Add(10 * maxBuilding * time.Millisecond)
	if n := len(b.m[builder]); n != maxBuilding {
		t.Errorf("kept %d jobs of one builder, want %d", n, maxBuilding)
	}
	if _, ok := b.since(builder, fmt.Sprintf("j%032x", 0), now); ok {
		t.Error("the job said first is kept, want it dropped for those said since")
	}
	last := fmt.Sprintf("j%032x", 10*maxBuilding-1)
	if _, ok := b.since(builder, last, now); !ok {
		t.Error("the job said last is not kept")
	}

	// Said again: building since the first time.
	b.heard(builder, last, true, now.Add(time.Minute))
	if since, ok := b.since(builder, last, now.Add(time.Minute)); !ok || !since.Equal(now.Add(-time.Millisecond)) {
		t.Errorf("since = %v, %v; want %v, true", since, ok, now.Add(-time.Millisecond))
	}
	// Not said again for buildingFor: forgotten, and dropped at the next word.
	later := now.Add(time.Minute + buildingFor + time.Second)
	if _, ok := b.since(builder, last, later); ok {
		t.Error("a job not said again for buildingFor still reads as building")
	}
	b.heard(builder, "j"+fmt.Sprintf("%032x", 1<<40), true, later)
	if n := len(b.m[builder]); n != 1 {
		t.Errorf("after buildingFor of silence, %d jobs kept, want the one said now", n)
	}
	// Stopped.
	b.heard(builder, "j"+fmt.Sprintf("%032x", 1<<40), false, later)
	if _, ok := b.since(builder, "j"+fmt.Sprintf("%032x", 1<<40), later); ok {
		t.Error("a job the builder stopped building still reads as building")
	}
}
