package scheduler_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

// TestJobCarriesItsClaimAsPosted: a claim envelope posted as `lantern claim
// sign -o FILE` writes it (a newline at the end) and as the README posts it
// (curl --data-binary @FILE), or pretty-printed, makes a job that, as a
// builder takes it from the bus, is what its claim says: its envelope is the
// bytes the claim's digest names, and MatchesClaim — the worker's check —
// passes. Otherwise every worker refuses every such job.
func TestJobCarriesItsClaimAsPosted(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA)
	a := f.builder(builderA)
	for i, tc := range []struct {
		name   string
		format func([]byte) []byte
	}{
		{"a newline at the end", func(b []byte) []byte { return append(b, '\n') }},
		{"indented", func(b []byte) []byte {
			var out bytes.Buffer
			if err := json.Indent(&out, b, "", "  "); err != nil {
				t.Fatal(err)
			}
			return out.Bytes()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &lantern.SourceClaim{
				Source: lantern.Source{Name: "example.org/cmd/posted" + string(rune('a'+i)), Version: "v1.0.0", Digest: lantern.DigestOf([]byte(tc.name))},
				Recipe: "go",
				Time:   time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
			}
			raw := tc.format(signed(t, claimKey, c))
			var resp struct {
				Claim lantern.Digest
				Job   string
			}
			if code := f.do("POST", "/api/v1/claims", raw, &resp); code != http.StatusAccepted {
				t.Fatalf("POST claim = %d", code)
			}
			if resp.Claim != lantern.DigestOf(raw) {
				t.Fatalf("POST claim: claim %s, want the digest of the bytes posted, %s", resp.Claim, lantern.DigestOf(raw))
			}
			m := takeJob(t, a, builderA)
			defer m.Ack(t.Context())
			if m.Job.ID != resp.Job {
				t.Fatalf("took job %s, want %s", m.Job.ID, resp.Job)
			}
			if got := lantern.DigestOf(m.Job.Envelope); got != m.Job.Claim {
				t.Errorf("the job's envelope on the bus hashes to %s, the job names claim %s: not the bytes the claimer posted", got, m.Job.Claim)
			}
			if err := m.Job.MatchesClaim(c, claimKey.ID()); err != nil {
				t.Errorf("the job as a builder takes it: MatchesClaim = %v, want nil (every worker refuses it)", err)
			}
		})
	}
}

// TestArtefactOfARevokedBuilder: a builder outputs bytes of its own where
// two others agree on the real ones; once it is revoked, its output counts
// no more, and the verdict of the job is reproduced — of the others'
// output. Asked about the revoked builder's bytes, the farm must not answer
// with that verdict, as if its bytes were reproduced: a verdict is on the
// artefact only where the artefact is published or some counted builder got
// it.
func TestArtefactOfARevokedBuilder(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA, builderB, builderC)
	claim, job := sourceClaim(t, claimKey, "example.org/cmd/revoked-output", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", claim, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	eventually(t, "the job", func() bool { return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK })
	evil, real := lantern.DigestOf([]byte("carol's own bytes")), lantern.DigestOf([]byte("the real binary"))
	for _, a := range []struct {
		k   *keys.Private
		out string
	}{{builderC, "carol's own bytes"}, {builderA, "the real binary"}, {builderB, "the real binary"}} {
		if code := f.do("POST", "/api/v1/attestations", rebuilt(t, a.k, job, a.out), nil); code != http.StatusAccepted {
			t.Fatalf("POST attestation = %d", code)
		}
	}
	eventually(t, "a mismatch", func() bool {
		v := f.verdict(real)
		return v != nil && v.Status == lantern.StatusMismatch && len(v.Groups) == 2
	})
	if err := f.s.SetBuilders(t.Context(), []scheduler.Enrolled{{Key: builderC.Public(), Name: "carol", Revoked: time.Now()}}); err != nil {
		t.Fatalf("SetBuilders(revoke carol) = %v", err)
	}
	if v := f.verdict(real); v == nil || v.Status != lantern.StatusReproduced {
		t.Fatalf("verdict of the real binary after carol's revocation = %+v, want reproduced", v)
	}
	var art struct {
		Verdicts     []lantern.Verdict
		Attestations []struct{ Builder lantern.Digest }
	}
	if code := f.do("GET", "/api/v1/artefacts/"+evil.String(), nil, &art); code != http.StatusOK {
		t.Fatalf("GET carol's artefact = %d, want 200 (her attestation is kept)", code)
	}
	for _, v := range art.Verdicts {
		counted := v.Published == evil
		for _, g := range v.Groups {
			counted = counted || g.Output == evil
		}
		if !counted {
			t.Errorf("GET /api/v1/artefacts/%s: verdict %s on %s@%s, whose groups %+v do not hold it: a client reads it as the artefact's verdict", evil.Short(), v.Status, v.Source.Name, v.Source.Version, v.Groups)
		}
	}
	if len(art.Attestations) != 1 || art.Attestations[0].Builder != builderC.ID() {
		t.Errorf("attestations of carol's artefact = %+v, want hers", art.Attestations)
	}
}

// TestSecondClaimOfABuildGetsAJobOfItsOwn: two accepted claim keys claim
// the same build (same source, recipe and spec) with their own fetch URLs.
// The job is made from the first claim alone: it carries the first
// envelope and fetches from the first URL. A worker whose operator accepts
// only the second claimer's key terminates that job, and no job the farm
// queued is the second claim's, so whoever gets a claim of a build in first
// — with a dead URL, or signed by a key the builders do not accept — keeps
// the other claimer's source from ever being rebuilt by them.
func TestSecondClaimOfABuildGetsAJobOfItsOwn(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA)
	claim := func(signer *keys.Private, fetch string) (*lantern.SourceClaim, []byte) {
		c := &lantern.SourceClaim{
			Source: lantern.Source{Name: "example.org/preempted", Version: "1.0", Digest: lantern.DigestOf([]byte("preempted tarball"))},
			Fetch:  fetch,
			Recipe: lantern.RecipeGeneric,
			Build: &lantern.BuildSpec{
				Image:    "registry.example/builder@sha256:" + strings.Repeat("ab", 32),
				Commands: []string{"cc -o $OUT/tool main.c"},
				Outputs:  map[string]string{"tool": "tool"},
			},
			Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		}
		return c, signed(t, signer, c)
	}
	_, first := claim(claimKey2, "https://dead.example/preempted.tar.gz")
	c2, second := claim(claimKey, "https://author.example/preempted.tar.gz")
	for _, b := range [][]byte{first, second} {
		if code := f.do("POST", "/api/v1/claims", b, nil); code != http.StatusAccepted {
			t.Fatalf("POST claim = %d", code)
		}
	}
	var src struct{ Claims []any }
	eventually(t, "both claims stored", func() bool {
		f.do("GET", "/api/v1/sources/"+c2.Source.String(), nil, &src)
		return len(src.Claims) == 2
	})
	var jobs struct{ Jobs []lantern.Job }
	if code := f.do("GET", "/api/v1/jobs?count=1000", nil, &jobs); code != http.StatusOK {
		t.Fatalf("GET jobs = %d", code)
	}
	for _, j := range jobs.Jobs {
		if j.MatchesClaim(c2, claimKey.ID()) == nil {
			return
		}
	}
	var have []string
	for _, j := range jobs.Jobs {
		have = append(have, j.ID+" (claim "+j.Claim.Short()+", fetch "+j.Fetch+")")
	}
	t.Errorf("no job the farm queued is the second claim's (claim %s, fetch %s): a worker that accepts only its signer builds none; jobs: %v",
		lantern.DigestOf(second).Short(), c2.Fetch, have)
}

// TestOversizedClaimDoesNotStopOthers: an accepted claim key posts a claim
// that fits the API and the claims stream but whose job does not fit a
// message (its envelope and its published artefacts, each about half a
// MiB), over the API and as a claimant on NATS. The API may refuse it (413);
// on NATS it is refused when it is ingested. Either way the claims after it
// make their jobs: one claim must not stop the farm's intake, whose
// consumer redelivers a claim that failed for the transport without end.
func TestOversizedClaimDoesNotStopOthers(t *testing.T) {
	f := newFarm(t, natsq.Config{}, builderA)
	big := &lantern.SourceClaim{
		Source:    lantern.Source{Name: "example.org/cmd/big", Version: "v1.0.0", Digest: lantern.DigestOf([]byte("big"))},
		Recipe:    "go",
		Artefacts: map[string]lantern.Digest{},
		Time:      time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	}
	for i := 0; len(big.Artefacts) < 3400; i++ {
		big.Artefacts[fmt.Sprintf("%0100d", i)] = lantern.DigestOf([]byte{byte(i), byte(i >> 8)})
	}
	raw := signed(t, claimKey2, big)
	if len(raw) >= 1<<20 {
		t.Fatalf("the big claim is %d bytes: it must fit a message", len(raw))
	}
	var resp struct{ Error string }
	if code := f.do("POST", "/api/v1/claims", raw, &resp); code != http.StatusRequestEntityTooLarge || !strings.Contains(resp.Error, "job") {
		t.Errorf("POST the big claim = %d %q; want 413 saying its job is too large", code, resp.Error)
	}
	big.Time = big.Time.Add(time.Second)
	if err := f.claimant().PublishClaim(t.Context(), signed(t, claimKey2, big)); err != nil {
		t.Fatalf("publish the big claim on NATS: %v", err)
	}
	small, job := sourceClaim(t, claimKey, "example.org/cmd/after-big", lantern.Digest{})
	if code := f.do("POST", "/api/v1/claims", small, nil); code != http.StatusAccepted {
		t.Fatalf("POST claim = %d", code)
	}
	eventually(t, "the job of the claim after the big one", func() bool {
		return f.do("GET", "/api/v1/jobs/"+job.ID, nil, nil) == http.StatusOK
	})
	// The one on NATS is refused for good, not redelivered without end.
	eventually(t, "the big claim on NATS refused", func() bool {
		resp, err := http.Get(f.api.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `lantern_claims_total{result="refused"} 1`)
	})
}
