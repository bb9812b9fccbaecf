package scheduler

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/claimtest"
)

// FuzzVerifyClaim feeds the body of POST /api/v1/claims (and of a claim on
// NATS) to the scheduler's check: never a panic, and whatever passes is a
// valid source claim signed by the accepted key with a job that names it.
func FuzzVerifyClaim(f *testing.F) {
	k, err := keys.Generate()
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{Threshold: 2, ClaimKeys: []*keys.Public{k.Public()}}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range claimtest.Claims(k.ID()) {
		env, err := attest.Sign(c, k)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(env)
		f.Add(b)
	}
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		vc, err := s.verifyClaim(b, claimtest.Started)
		if err != nil {
			return
		}
		if err := vc.rec.Claim.Validate(); err != nil {
			t.Fatalf("accepted an invalid claim: %v", err)
		}
		if vc.rec.Signer != k.ID() || vc.rec.Envelope != lantern.DigestOf(b) {
			t.Fatalf("accepted claim has signer %s, envelope %s", vc.rec.Signer, vc.rec.Envelope)
		}
		if err := vc.job.MatchesClaim(&vc.rec.Claim, vc.rec.Signer); err != nil || vc.job.Source != vc.rec.Claim.Source {
			t.Fatalf("job %+v does not match claim %+v", vc.job, vc.rec.Claim)
		}
	})
}
