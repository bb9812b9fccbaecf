package scheduler_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

// TestBuildingProgress: a builder that says, with its own credentials, that
// it builds a job reads as building on the API until it says it stopped;
// what it says of a job as another builder, or in a message that is not
// one, or after its removal, is not heard.
func TestBuildingProgress(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB)
	claim, job := sourceClaim(t, claimKey, "example.org/building", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	claim2, job2 := sourceClaim(t, claimKey, "example.org/building-too", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim2, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	eventually(t, "the jobs stored", func() bool {
		return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK && f.do("GET", "/api/v1/jobs/"+job2.ID, nil, nil) == http.StatusOK
	})
	stateOf := func(id string, b lantern.Digest) scheduler.BuilderJob {
		var j struct {
			Builders map[lantern.Digest]scheduler.BuilderJob
		}
		if code := f.do("GET", "/api/v1/jobs/"+id, nil, &j); code != http.StatusOK {
			t.Fatalf("GET job = %d", code)
		}
		return j.Builders[b]
	}
	state := func(b lantern.Digest) scheduler.BuilderJob { return stateOf(job.ID, b) }

	// Messages on A's own subject that are not what a worker says: raw,
	// with A's credentials. Each is dropped.
	a := f.raw(f.nats.Creds("a-raw", natsq.RoleBuilder, builderA.ID()), natsq.InboxPrefix(natsq.RoleBuilder, builderA.ID()))
	subjA, _ := natsq.BuildingSubject(builderA.ID())
	for _, bad := range []string{
		``, `{}`, `null`, `"` + job.ID + `"`,
		`{"job":"` + job.ID + `"}`,
		`{"job":"` + job.ID + `","building":"yes"}`,
		`{"job":"` + job.ID + `","building":true,"extra":1}`,
		`{"job":"` + job.ID + `","building":false,"building":true}`,
		`{"job":"../` + job.ID + `","building":true}`,
		`{"job":"` + job.ID + `\u0000","building":true}`,
		`{"job":"` + job.ID + `","building":true} {}`,
		fmt.Sprintf(`{"job":%q,"building":true,"pad":"%0300d"}`, job.ID, 0),
	} {
		a.publish(t, subjA, []byte(bad))
	}
	// Then a good one of the other job, on the same connection and
	// subject: once it is heard, all before it were.
	a.publish(t, subjA, fmt.Appendf(nil, `{"job":%q,"building":true}`, job2.ID))
	eventually(t, "A building the other job", func() bool { return stateOf(job2.ID, builderA.ID()).State == scheduler.JobBuilding })
	if st := state(builderA.ID()); st.State != scheduler.JobQueued {
		t.Fatalf("after messages that are not a worker's: A's state = %+v, want queued", st)
	}

	// B's worker says it builds the job: B reads building, A queued.
	b := f.builder(builderB)
	if err := b.PublishBuilding(t.Context(), builderB.ID(), job.ID, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B building", func() bool { return state(builderB.ID()).State == scheduler.JobBuilding })
	if st := state(builderA.ID()); st.State != scheduler.JobQueued {
		t.Errorf("A's state = %+v, want queued: only B said it builds", st)
	}
	// B hands the job back: queued again.
	if err := b.PublishBuilding(t.Context(), builderB.ID(), job.ID, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B queued again", func() bool { return state(builderB.ID()).State == scheduler.JobQueued })

	// B's answer ends it whatever B said before.
	if err := b.PublishBuilding(t.Context(), builderB.ID(), job.ID, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B building again", func() bool { return state(builderB.ID()).State == scheduler.JobBuilding })
	if err := b.PublishResult(t.Context(), builderB.ID(), rebuilt(t, builderB, job, "out")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B done", func() bool { return state(builderB.ID()).State == scheduler.JobDone })
}
