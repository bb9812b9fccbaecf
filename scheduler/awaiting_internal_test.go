package scheduler

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/recipes"
)

// jobStore has jobs, and nothing else.
type jobStore struct {
	Store
	jobs map[string]lantern.Job
}

func (s jobStore) Job(_ context.Context, id string) (*JobRecord, error) {
	j, ok := s.jobs[id]
	if !ok {
		return nil, ErrNotFound
	}
	return &JobRecord{Job: j}, nil
}

// TestAwaiting: a source's verdicts are all in only when every label its
// jobs' recipe makes has one. A job that names platforms awaits each
// platform's label (go/v1, which makes nothing of it, counts for nothing);
// a plain go job awaits the one label both versions make; a verdict's
// label or another job's is not this job's.
func TestAwaiting(t *testing.T) {
	src := lantern.Source{Name: "golang.org/x/tools/cmd/stringer", Version: "v0.30.0", Digest: lantern.DigestOf([]byte("zip"))}
	plain := lantern.Job{ID: "jplain", Source: src, Recipe: "go"}
	cross := lantern.Job{ID: "jcross", Source: src, Recipe: "go", Go: &lantern.GoBuild{Platforms: []string{"linux/amd64", "windows/amd64"}}}
	s := &Scheduler{cfg: Config{RecipeVersions: recipes.Versions()}, st: jobStore{jobs: map[string]lantern.Job{plain.ID: plain, cross.ID: cross}}}
	claims := []ClaimRecord{{Jobs: []string{cross.ID, "jgone"}}, {Jobs: []string{plain.ID, cross.ID}}}
	for _, tc := range []struct {
		name     string
		verdicts []lantern.Verdict
		want     []Awaiting
	}{
		{"none", nil, []Awaiting{{"jcross", "stringer-linux-amd64"}, {"jcross", "stringer-windows-amd64.exe"}, {"jplain", "stringer-linux-amd64"}}},
		{"linux of both", []lantern.Verdict{{Job: "jcross", Label: "stringer-linux-amd64"}, {Job: "jplain", Label: "stringer-linux-amd64"}},
			[]Awaiting{{"jcross", "stringer-windows-amd64.exe"}}},
		{"windows without .exe, and another job's", []lantern.Verdict{{Job: "jcross", Label: "stringer-windows-amd64"}, {Job: "jother", Label: "stringer-windows-amd64.exe"}, {Job: "jcross", Label: "stringer-linux-amd64"}, {Job: "jplain", Label: "stringer-linux-amd64"}},
			[]Awaiting{{"jcross", "stringer-windows-amd64.exe"}}},
		{"all", []lantern.Verdict{{Job: "jcross", Label: "stringer-windows-amd64.exe"}, {Job: "jcross", Label: "stringer-linux-amd64"}, {Job: "jplain", Label: "stringer-linux-amd64"}}, nil},
	} {
		got, err := s.awaiting(t.Context(), claims, tc.verdicts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: awaiting %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAwaitingMany: a source with more jobs than one request reads (a
// claimer that posts builds by the hundred, first) does not hide that
// another job has no verdict: the jobs it does not read are awaited, with
// no label, rather than taken as decided.
func TestAwaitingMany(t *testing.T) {
	src := lantern.Source{Name: "golang.org/x/tools/cmd/stringer", Version: "v0.30.0", Digest: lantern.DigestOf([]byte("zip"))}
	jobs := map[string]lantern.Job{}
	var claims []ClaimRecord
	var verdicts []lantern.Verdict
	for i := range maxAwaitedJobs {
		id := fmt.Sprintf("jmany%03d", i)
		jobs[id] = lantern.Job{ID: id, Source: src, Recipe: "go"}
		claims = append(claims, ClaimRecord{Jobs: []string{id}})
		verdicts = append(verdicts, lantern.Verdict{Job: id, Label: "stringer-linux-amd64", Status: lantern.StatusReproduced})
	}
	last := lantern.Job{ID: "jlast", Source: src, Recipe: "go", Go: &lantern.GoBuild{Platforms: []string{"linux/amd64", "windows/amd64"}}}
	jobs[last.ID] = last
	claims = append(claims, ClaimRecord{Jobs: []string{last.ID}})
	verdicts = append(verdicts, lantern.Verdict{Job: last.ID, Label: "stringer-linux-amd64", Status: lantern.StatusReproduced})
	s := &Scheduler{cfg: Config{RecipeVersions: recipes.Versions()}, st: jobStore{jobs: jobs}}
	got, err := s.awaiting(t.Context(), claims, verdicts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(got, func(a Awaiting) bool { return a.Job == last.ID }) {
		t.Errorf("awaiting(%d jobs decided, then one without its windows verdict) = %v, want %s awaited", maxAwaitedJobs, got, last.ID)
	}
	// Every job decided, and fewer than the bound: nothing awaited.
	got, err = s.awaiting(t.Context(), claims[:maxAwaitedJobs], verdicts)
	if err != nil || len(got) != 0 {
		t.Errorf("awaiting(%d jobs decided) = %v, %v; want none", maxAwaitedJobs, got, err)
	}
}
