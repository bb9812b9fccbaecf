package boltstore

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// Sizes of the store BenchmarkGetArtefact reads: one artefact that 20
// builders reported 100,000 times over 100 (source, label)s.
const (
	benchAttestations = 100_000
	benchBuilders     = 20
	benchSources      = 50 // × 2 labels = 100 verdicts
	benchLabels       = 2
	benchRawSize      = 2 << 10 // a signed SLSA provenance envelope is a few KiB
	benchFillBatch    = 10_000
)

// fillArtefact stores benchAttestations attestations of one artefact in s,
// benchFillBatch to a transaction, through the same code as PutAttestation,
// and returns the artefact.
func fillArtefact(b *testing.B, s *Store) lantern.Digest {
	b.Helper()
	out := digest("the artefact")
	builders := make([]lantern.Digest, benchBuilders)
	for i := range builders {
		builders[i] = digest("builder " + strconv.Itoa(i))
	}
	type sourceLabel struct {
		src   lantern.Source
		label string
	}
	var sls []sourceLabel
	verdictJSON := map[sourceLabel][][]byte{}
	verdicts := map[sourceLabel][]lantern.Verdict{}
	for i := range benchSources {
		src := source("example.com/tool"+strconv.Itoa(i), "v1.0.0")
		for _, label := range []string{"linux-amd64", "darwin-arm64"}[:benchLabels] {
			sl := sourceLabel{src, label}
			var outcomes []lantern.Outcome
			for j, bd := range builders {
				outcomes = append(outcomes, lantern.Outcome{Builder: bd, Output: out, Attestation: digest(fmt.Sprint(sl, j)), Finished: t0})
			}
			v := lantern.Decide(src, label, out, 2, outcomes)
			v.Job = lantern.JobID(src, "go", nil, nil, lantern.Digest{})
			vj, err := encodeVerdicts([]lantern.Verdict{v})
			if err != nil {
				b.Fatal(err)
			}
			sls, verdictJSON[sl], verdicts[sl] = append(sls, sl), vj, []lantern.Verdict{v}
		}
	}
	raw := make([]byte, benchRawSize)
	for i := range raw {
		raw[i] = 'a' + byte(i%26)
	}
	for start := 0; start < benchAttestations; start += benchFillBatch {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i := start; i < min(start+benchFillBatch, benchAttestations); i++ {
				sl := sls[i/benchBuilders%len(sls)]
				a := rebuild(sl.src, sl.label, builders[i%benchBuilders], out, i)
				a.JobID = fmt.Sprintf("jbench%06d", i) // each a different job, so none is a duplicate answer
				// bbolt keeps the value slices until the commit: a copy each,
				// valid JSON as a real envelope is (the API embeds it).
				a.Raw = fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, raw)
				a.Envelope = lantern.DigestOf(a.Raw)
				att, outcome, err := encodeAttestation(a)
				if err != nil {
					return err
				}
				if err := putAttestation(tx, a, att, outcome); err != nil {
					return err
				}
				if err := putVerdicts(tx, verdicts[sl], verdictJSON[sl], a); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkGetArtefact measures what the API's GET of an artefact asks of
// the store, with 100,000 attestations of that artefact stored: the first
// page of 50 attestations, a page from the middle through a cursor, and the
// verdicts. It reports each op's latency percentiles; the budget is a p99
// under 10 ms.
func BenchmarkGetArtefact(b *testing.B) {
	start := time.Now()
	s := openStore(b)
	out := fillArtefact(b, s)
	b.Logf("filled %d attestations in %s", benchAttestations, time.Since(start).Round(time.Millisecond))
	// The 50,000th attestation's key in atts.artefact: the cursor a client
	// holds after paging halfway.
	middle := encodeCursor(appendSeq(appendDigest(nil, out), benchAttestations/2))
	ctx := b.Context()
	atts, _, err := s.AttestationsByArtefact(ctx, out, lantern.Digest{}, scheduler.Page{Count: 1000, Cursor: middle})
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range atts {
		if lantern.DigestOf(a.Raw) != a.Envelope {
			b.Fatalf("attestation %s: its envelope's digest is %s", a.Envelope, lantern.DigestOf(a.Raw))
		}
	}

	firstPage := func(b *testing.B) {
		atts, next, err := s.AttestationsByArtefact(ctx, out, lantern.Digest{}, scheduler.Page{Count: 50})
		if err != nil || len(atts) != 50 || next == "" {
			b.Fatalf("first page: %d attestations, next %q, %v", len(atts), next, err)
		}
	}
	middlePage := func(b *testing.B) {
		atts, next, err := s.AttestationsByArtefact(ctx, out, lantern.Digest{}, scheduler.Page{Count: 50, Cursor: middle})
		if err != nil || len(atts) != 50 || next == "" {
			b.Fatalf("middle page: %d attestations, next %q, %v", len(atts), next, err)
		}
	}
	verdicts := func(b *testing.B) {
		vs, err := s.VerdictsOfArtefact(ctx, out)
		if err != nil || len(vs) != benchSources*benchLabels {
			b.Fatalf("verdicts: %d, %v", len(vs), err)
		}
	}
	run := func(parts ...func(*testing.B)) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			var lat []time.Duration
			for b.Loop() {
				t := time.Now()
				for _, part := range parts {
					part(b)
				}
				lat = append(lat, time.Since(t))
			}
			reportLatency(b, lat)
		}
	}
	// The same through the scheduler's real HTTP API, as a client sees it.
	sched, err := scheduler.New(scheduler.Config{Threshold: 2}, nil, s, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	api := httptest.NewServer(sched.Handler())
	defer api.Close()
	client := api.Client()
	apiGet := func(b *testing.B) {
		resp, err := client.Get(api.URL + "/api/v1/artefacts/" + out.String())
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n == 0 {
			b.Fatalf("GET artefact = %d, %d bytes", resp.StatusCode, n)
		}
	}
	b.Run("api", run(apiGet))
	b.Run("get", run(firstPage, middlePage, verdicts))
	b.Run("first-page", run(firstPage))
	b.Run("middle-page", run(middlePage))
	b.Run("verdicts", run(verdicts))
}

// reportLatency reports the 50th and 99th percentiles of lat, in ms.
func reportLatency(b *testing.B, lat []time.Duration) {
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

// BenchmarkPutClaims256 measures one PutClaims of 256 new claims and their
// jobs, synced to disk, as the scheduler's ingest calls it.
func BenchmarkPutClaims256(b *testing.B) {
	const batch = 256
	s := openStore(b)
	ctx := b.Context()
	raw := make([]byte, 1<<10) // a signed source claim envelope is about 1 KiB
	for i := range raw {
		raw[i] = 'a' + byte(i%26)
	}
	claims := make([]scheduler.ClaimRecord, batch)
	jobs := make([]lantern.Job, batch)
	n := 0
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		for i := range claims {
			c, j := claimOf(source("example.com/m"+strconv.Itoa(n), "v1.0.0"), n, map[string]lantern.Digest{"linux-amd64": digest(strconv.Itoa(n))})
			r := slices.Clone(raw)
			copy(r, strconv.Itoa(n)+" ")
			c.Raw, c.Envelope = r, lantern.DigestOf(r)
			claims[i], jobs[i] = c, j
			n++
		}
		t := time.Now()
		added, err := s.PutClaims(ctx, claims, jobs)
		lat = append(lat, time.Since(t))
		if err != nil || !added[batch-1] {
			b.Fatalf("PutClaims = %v", err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "claims/s")
	reportLatency(b, lat)
}

// BenchmarkPutAttestation measures one PutAttestation, synced to disk: the
// interface stores one attestation per transaction.
func BenchmarkPutAttestation(b *testing.B) {
	s := openStore(b)
	ctx := b.Context()
	out := digest("the artefact")
	raw := make([]byte, benchRawSize)
	for i := range raw {
		raw[i] = 'a' + byte(i%26)
	}
	var lat []time.Duration
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		src := source("example.com/tool"+strconv.Itoa(n/benchBuilders), "v1.0.0")
		a := rebuild(src, "linux-amd64", digest("builder "+strconv.Itoa(n%benchBuilders)), out, n)
		r := slices.Clone(raw)
		copy(r, strconv.Itoa(n)+" ")
		a.Raw, a.Envelope = r, lantern.DigestOf(r)
		v := lantern.Decide(src, a.Label, out, 2, []lantern.Outcome{a.Outcome()})
		v.Job = a.JobID
		t := time.Now()
		if err := s.PutAttestation(ctx, a, []lantern.Verdict{v}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
		n++
	}
	reportLatency(b, lat)
}
