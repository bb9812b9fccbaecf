package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/boltstore"
)

// The farm BenchmarkVerifyFarm asks: one artefact that 53 builders rebuilt,
// of which the client trusts 3.
const (
	benchTrusted   = 3
	benchUntrusted = 50
)

// BenchmarkVerifyFarm measures `lantern verify --farm URL --trust ...
// --threshold 3 sha256:...` as a distro's client runs it, in-process and
// whole: flags, policy and key files, the evidence fetched from a farm on
// loopback (the artefact's envelopes, then its source's: a source claim and
// the same 53 rebuilds again), every signature checked, two decisions, the
// report. The farm is the real scheduler API over a real bbolt store,
// filled as the scheduler fills it with 53 builders' signed rebuild
// attestations of one artefact. It reports each run's latency percentiles;
// the budget is a p99 under 50 ms.
func BenchmarkVerifyFarm(b *testing.B) {
	ctx := b.Context()
	dir := b.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "lantern.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	art, trusted := fillVerifyFarm(b, st, dir)
	sched, err := scheduler.New(scheduler.Config{Threshold: 2}, nil, st, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	farm := httptest.NewServer(sched.Handler())
	defer farm.Close()

	args := []string{"verify", "--farm", farm.URL, "--threshold", fmt.Sprint(benchTrusted)}
	for _, k := range trusted {
		args = append(args, "--trust", k)
	}
	args = append(args, art.String())
	// One run, read: the check the benchmark times is the real one.
	var out, errOut bytes.Buffer
	if err := run(ctx, args, &stdio{out: &out, err: &errOut}); err != nil {
		b.Fatalf("lantern %s = %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	want := fmt.Sprintf("verified, %d of %d trusted builders agree", benchTrusted, benchTrusted)
	if !strings.Contains(out.String(), want) || strings.Count(out.String(), "untrusted key") != benchUntrusted+1 {
		b.Fatalf("lantern verify printed, without %q and %d untrusted keys (the builders' and the claim's):\n%s", want, benchUntrusted+1, out.String())
	}

	quiet := &stdio{out: io.Discard, err: io.Discard}
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t := time.Now()
		if err := run(ctx, args, quiet); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	reportVerifyLatency(b, lat)
}

// fillVerifyFarm stores in st what a farm holds after 53 builders rebuilt
// stringer to one artefact: the author's source claim and its job, and each
// builder's signed rebuild attestation with the verdict it led to, through
// the store's own PutClaims and PutAttestation. It writes the public keys of
// the first 3 builders in dir, and returns the artefact and those files.
func fillVerifyFarm(b *testing.B, st *boltstore.Store, dir string) (lantern.Digest, []string) {
	b.Helper()
	ctx := b.Context()
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	art := lantern.DigestOf([]byte("stringer, linux-amd64"))
	const label = "linux-amd64/stringer"
	src := lantern.Source{
		Name:    "golang.org/x/tools/cmd/stringer",
		Version: "v0.30.0",
		Digest:  lantern.DigestOf([]byte("golang.org/x/tools@v0.30.0 module zip")),
		GoSum:   "h1:bzFOWnwSSO4n7j9ifAoOPBN4YbVTGi5fIEtmhT4XOAA=",
	}
	author, err := keys.Generate()
	if err != nil {
		b.Fatal(err)
	}
	claim := &lantern.SourceClaim{Source: src, Recipe: "go", Artefacts: map[string]lantern.Digest{label: art}, Time: at}
	claimRaw := signed(b, claim, author)
	job := lantern.Job{ID: lantern.JobID(src, "go", nil, nil, lantern.Digest{}), Source: src, Recipe: "go", Published: claim.Artefacts, Claim: lantern.DigestOf(claimRaw), Envelope: claimRaw, Created: at}
	rec := scheduler.ClaimRecord{Envelope: job.Claim, Raw: claimRaw, Claim: *claim, Signer: author.ID(), Jobs: []string{job.ID}, Received: at}
	if _, err := st.PutClaims(ctx, []scheduler.ClaimRecord{rec}, []lantern.Job{job}); err != nil {
		b.Fatal(err)
	}
	recipe := lantern.Recipe{BuildType: "https://lanternfarm.github.io/lantern/recipes/go/v1", Digest: lantern.DigestOf([]byte("recipes/go.toml"))}
	var trusted []string
	var outcomes []lantern.Outcome
	for i := range benchTrusted + benchUntrusted {
		k, err := keys.Generate()
		if err != nil {
			b.Fatal(err)
		}
		if i < benchTrusted {
			f := filepath.Join(dir, fmt.Sprintf("builder-%d.pub", i))
			if err := os.WriteFile(f, k.Public().MarshalPEM(), 0o644); err != nil {
				b.Fatal(err)
			}
			trusted = append(trusted, f)
		}
		started := at.Add(time.Duration(i) * time.Minute)
		r := &lantern.Rebuild{
			Source:  src,
			Label:   label,
			Output:  art,
			Recipe:  recipe,
			Builder: k.ID(),
			Claim:   job.Claim,
			Dependencies: []lantern.Dependency{
				{Name: "go", URI: "https://go.dev/dl/go1.24.1.linux-amd64.tar.gz", Digest: lantern.DigestOf([]byte("go1.24.1"))},
				{Name: "builder-image", URI: "oci://docker.io/library/golang@sha256", Digest: lantern.DigestOf([]byte("image"))},
				{Name: "golang.org/x/sync", URI: "https://proxy.golang.org/golang.org/x/sync/@v/v0.11.0.zip", Digest: lantern.DigestOf([]byte("sync"))},
				{Name: "golang.org/x/mod", URI: "https://proxy.golang.org/golang.org/x/mod/@v/v0.23.0.zip", Digest: lantern.DigestOf([]byte("mod"))},
			},
			Environment: map[string]string{"GOOS": "linux", "GOARCH": "amd64", "CGO_ENABLED": "0", "GOFLAGS": "-trimpath", "GOTOOLCHAIN": "local"},
			JobID:       job.ID,
			Started:     started,
			Finished:    started.Add(97 * time.Second),
			Log:         lantern.DigestOf(fmt.Appendf(nil, "build log %d", i)),
		}
		raw := signed(b, r, k)
		// The record the scheduler makes of a verified result.
		a := scheduler.AttestationRecord{
			Envelope: lantern.DigestOf(raw), Raw: raw, Kind: lantern.KindRebuild, Builder: k.ID(),
			JobID: r.JobID, Source: r.Source, Label: r.Label, Output: r.Output, Recipe: r.Recipe, Claim: r.Claim,
			Started: r.Started, Finished: r.Finished, Log: r.Log, Received: r.Finished.Add(time.Second),
		}
		outcomes = append(outcomes, a.Outcome())
		v := lantern.Decide(src, label, art, 2, slices.Clone(outcomes))
		v.Job = job.ID
		if err := st.PutAttestation(ctx, a, []lantern.Verdict{v}); err != nil {
			b.Fatal(err)
		}
	}
	return art, trusted
}

// signed returns c signed by k, as the JSON of its envelope.
func signed(b *testing.B, c lantern.Claim, k *keys.Private) []byte {
	b.Helper()
	env, err := attest.Sign(c, k)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// reportVerifyLatency reports the 50th and 99th percentiles of lat, in ms.
func reportVerifyLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) / 1e6
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
