package scheduler_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
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
			if err := m.Job.MatchesClaim(c); err != nil {
				t.Errorf("the job as a builder takes it: MatchesClaim = %v, want nil (every worker refuses it)", err)
			}
		})
	}
}
