package scheduler_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

// TestRevokedBuilder: a builder enrolled while the farm runs gets its
// consumer; once revoked, its consumer is gone, every result of it from
// then on is refused — over NATS and over the API — and its earlier
// attestation stays, shown as from a revoked builder.
func TestRevokedBuilder(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA)
	// C joins while the scheduler runs.
	if err := f.s.SetBuilders(t.Context(), []scheduler.Enrolled{{Key: builderC.Public(), Name: "carol"}}); err != nil {
		t.Fatalf("SetBuilders(enroll carol) = %v", err)
	}
	c := f.builder(builderC)
	claim, job := sourceClaim(t, claimKey, "example.org/revoked", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	m := takeJob(t, c, builderC)
	if err := c.PublishResult(t.Context(), builderC.ID(), rebuilt(t, builderC, m.Job, "carol's output")); err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	var src struct {
		Attestations []struct{ Builder lantern.Digest }
	}
	eventually(t, "carol's attestation", func() bool {
		f.do("GET", "/api/v1/sources/"+job.Source.String(), nil, &src)
		return len(src.Attestations) == 1
	})

	revokedAt := time.Now()
	if err := f.s.SetBuilders(t.Context(), []scheduler.Enrolled{{Key: builderC.Public(), Name: "carol", Revoked: revokedAt}}); err != nil {
		t.Fatalf("SetBuilders(revoke carol) = %v", err)
	}
	// At once, her rebuild stops counting in the verdict it was in.
	var before struct{ Verdicts []lantern.Verdict }
	f.do("GET", "/api/v1/sources/"+job.Source.String(), nil, &before)
	if len(before.Verdicts) != 1 || len(before.Verdicts[0].Groups) != 0 || len(before.Verdicts[0].Revoked) != 1 {
		t.Errorf("verdict right after carol's revocation = %+v, want her outcome among the revoked and no group", before.Verdicts)
	}
	if _, err := f.q.Jobs(t.Context(), builderC.ID()); !errors.Is(err, natsq.ErrUnknownBuilder) {
		t.Errorf("carol's consumer after her revocation: Jobs() = %v, want ErrUnknownBuilder", err)
	}
	// A second claim: carol's answer is refused, over NATS and the API.
	claim2, job2 := sourceClaim(t, claimKey, "example.org/after-revocation", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim2, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	eventually(t, "the second job", func() bool { return f.do("GET", "/api/v1/jobs/"+job2.ID, nil, nil) == http.StatusOK })
	late := rebuilt(t, builderC, job2, "carol's late output")
	if code := f.do("POST", "/api/v1/attestations", late, nil); code != http.StatusForbidden {
		t.Errorf("POST a revoked builder's attestation = %d, want 403", code)
	}
	if err := c.PublishResult(t.Context(), builderC.ID(), late); err != nil {
		t.Fatal(err)
	}
	mA := takeJob(t, f.builder(builderA), builderA)
	a := f.builder(builderA)
	for _, j := range []lantern.Job{job, job2} {
		if err := a.PublishResult(t.Context(), builderA.ID(), rebuilt(t, builderA, j, "alice's output")); err != nil {
			t.Fatal(err)
		}
	}
	mA.Ack(t.Context())
	eventually(t, "alice's answer to the second job", func() bool {
		f.do("GET", "/api/v1/sources/"+job2.Source.String(), nil, &src)
		return len(src.Attestations) >= 1
	})
	// The queue is in order: alice's answer came after carol's late one,
	// which must have been refused by then.
	f.do("GET", "/api/v1/sources/"+job2.Source.String(), nil, &src)
	for _, at := range src.Attestations {
		if at.Builder == builderC.ID() {
			t.Errorf("a result of carol after her revocation was recorded")
		}
	}
	f.do("GET", "/api/v1/sources/"+job.Source.String(), nil, &src)
	if len(src.Attestations) != 2 {
		t.Errorf("the first source has %d attestations, want carol's (kept) and alice's", len(src.Attestations))
	}
	// Carol's outcome is shown as revoked and no longer counts: alice's
	// output stands alone.
	var verdicts struct{ Verdicts []lantern.Verdict }
	f.do("GET", "/api/v1/sources/"+job.Source.String(), nil, &verdicts)
	if len(verdicts.Verdicts) != 1 {
		t.Fatalf("verdicts of the first source: %+v, want one", verdicts.Verdicts)
	}
	v := verdicts.Verdicts[0]
	if len(v.Revoked) != 1 || v.Revoked[0].Builder != builderC.ID() || !v.Revoked[0].Revoked {
		t.Errorf("revoked outcomes = %+v, want carol's", v.Revoked)
	}
	if len(v.Groups) != 1 || len(v.Groups[0].Builders) != 1 || v.Groups[0].Builders[0] != builderA.ID() || v.Status != lantern.StatusPending {
		t.Errorf("verdict = %s %+v, want pending with alice alone (carol's output does not count)", v.Status, v.Groups)
	}
	var builders struct {
		Builders []struct {
			ID      lantern.Digest
			Name    string
			Revoked time.Time
		}
	}
	f.do("GET", "/api/v1/builders", nil, &builders)
	found := false
	for _, b := range builders.Builders {
		if b.ID == builderC.ID() {
			found = true
			if b.Name != "carol" || b.Revoked.IsZero() {
				t.Errorf("carol in /api/v1/builders: %+v, want her name and a revocation time", b)
			}
		}
	}
	if !found {
		t.Error("carol is not in /api/v1/builders")
	}
}
