package verify_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/verify"
	"github.com/lanternfarm/lantern/verify/evidence"
)

// The size of the bundle BenchmarkDecideBundle checks: 1,000 rebuild
// attestations of one artefact by 4 trusted builders, 250 rebuilds each
// (one per job: a farm that rebuilds a release again and again).
const (
	benchEnvelopes = 1000
	benchBuilders  = 4
)

// benchBundle returns a JSON Lines bundle of benchEnvelopes signed rebuild
// attestations, all to one artefact, as `lantern verify --evidence` reads
// it; the policy that trusts their builders; the artefact; and, for the bare
// loop, each envelope's pre-authentication encoding, signature and key.
func benchBundle(b *testing.B) (bundle []byte, p *verify.Policy, artefact lantern.Digest, paes, sigs [][]byte, pubs []*ecdsa.PublicKey) {
	b.Helper()
	p = &verify.Policy{Threshold: 3}
	ks := make([]*keys.Private, benchBuilders)
	for i := range ks {
		k, err := keys.Generate()
		if err != nil {
			b.Fatal(err)
		}
		ks[i] = k
		key, err := verify.ParseKey(k.Public().MarshalPEM(), fmt.Sprintf("builder-%d.pub", i))
		if err != nil {
			b.Fatal(err)
		}
		p.Builders = append(p.Builders, key)
	}
	artefact = lantern.DigestOf([]byte("stringer, linux-amd64"))
	src := lantern.Source{
		Name:    "golang.org/x/tools/cmd/stringer",
		Version: "v0.30.0",
		Digest:  lantern.DigestOf([]byte("golang.org/x/tools@v0.30.0 module zip")),
		GoSum:   "h1:bzFOWnwSSO4n7j9ifAoOPBN4YbVTGi5fIEtmhT4XOAA=",
	}
	started := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	var buf bytes.Buffer
	for i := range benchEnvelopes {
		k := ks[i%benchBuilders]
		r := &lantern.Rebuild{
			Source: src,
			Label:  "linux-amd64/stringer",
			Output: artefact,
			Recipe: lantern.Recipe{
				BuildType: "https://lanternfarm.github.io/lantern/recipes/go/v1",
				Digest:    lantern.DigestOf([]byte("recipes/go.toml")),
			},
			Builder: k.ID(),
			Claim:   lantern.DigestOf([]byte("the source claim's envelope")),
			Dependencies: []lantern.Dependency{
				{Name: "go", URI: "https://go.dev/dl/go1.24.1.linux-amd64.tar.gz", Digest: lantern.DigestOf([]byte("go1.24.1"))},
				{Name: "builder-image", URI: "oci://docker.io/library/golang@sha256", Digest: lantern.DigestOf([]byte("image"))},
				{Name: "golang.org/x/sync", URI: "https://proxy.golang.org/golang.org/x/sync/@v/v0.11.0.zip", Digest: lantern.DigestOf([]byte("sync"))},
				{Name: "golang.org/x/mod", URI: "https://proxy.golang.org/golang.org/x/mod/@v/v0.23.0.zip", Digest: lantern.DigestOf([]byte("mod"))},
			},
			Environment: map[string]string{
				"GOOS":              "linux",
				"GOARCH":            "amd64",
				"CGO_ENABLED":       "0",
				"GOFLAGS":           "-trimpath",
				"GOTOOLCHAIN":       "local",
				"SOURCE_DATE_EPOCH": "1741944413",
			},
			JobID:    fmt.Sprintf("job-01JPB7Z6K9M3Q4R5S6T7V8%04d", i),
			Started:  started.Add(time.Duration(i) * time.Hour),
			Finished: started.Add(time.Duration(i)*time.Hour + 97*time.Second),
			Log:      lantern.DigestOf(fmt.Appendf(nil, "build log %d", i)),
		}
		env, err := attest.Sign(r, k)
		if err != nil {
			b.Fatal(err)
		}
		line, err := json.Marshal(env)
		if err != nil {
			b.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
		paes = append(paes, dsse.PAE(env.PayloadType, env.Payload))
		sigs = append(sigs, env.Signatures[0].Sig)
		pubs = append(pubs, k.Public().Crypto())
	}
	return buf.Bytes(), p, artefact, paes, sigs, pubs
}

// BenchmarkDecideBundle measures offline verification, as `lantern verify
// --evidence bundle.jsonl` does it after reading the file: split a JSON
// Lines bundle of 1,000 signed rebuild attestations of one artefact (4
// trusted builders) into pieces and Decide over them. Its floor is the bare
// signature loop: 1,000 ecdsa.VerifyASN1 over the SHA-256 of the same
// pre-authentication encodings, with the same keys.
//
// The two sides take turns, a bundle each, so that a busy moment of a shared
// machine slows both alike (as BenchmarkVerifyInterleaved in package attest
// does), and each side is timed in CPU time of the process, not wall time:
// run with -cpu 1, that is the one core's work, which other processes on the
// machine do not add to as they do to wall time. cpu-ns/verify and
// cpu-ns/bare are each side's per bundle; envelopes/s is verify's rate on
// one core.
func BenchmarkDecideBundle(b *testing.B) {
	bundle, p, artefact, paes, sigs, pubs := benchBundle(b)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var (
		spent [2]time.Duration // verify, bare
		ops   [2]int
		i     int
	)
	b.ReportAllocs()
	for b.Loop() {
		side := i % 2
		i++
		start := cpuTime(b)
		if side == 0 {
			pieces := evidence.Split("bundle.jsonl", bundle)
			d := verify.Decide(p, artefact, pieces, now)
			if d.Result != verify.Verified || len(d.Agreeing) != benchBuilders || len(d.Evidence) != benchEnvelopes {
				b.Fatalf("Decide = %s, %d agreeing, %d pieces; want verified, %d, %d", d.Result, len(d.Agreeing), len(d.Evidence), benchBuilders, benchEnvelopes)
			}
		} else {
			for j, pae := range paes {
				h := sha256.Sum256(pae)
				if !ecdsa.VerifyASN1(pubs[j], h[:], sigs[j]) {
					b.Fatalf("ecdsa.VerifyASN1 of envelope %d = false, want true", j)
				}
			}
		}
		spent[side] += cpuTime(b) - start
		ops[side]++
	}
	if ops[0] == 0 || ops[1] == 0 {
		return // too short a run to say; b.Loop runs it again longer
	}
	verifyNs := float64(spent[0].Nanoseconds()) / float64(ops[0])
	bareNs := float64(spent[1].Nanoseconds()) / float64(ops[1])
	b.ReportMetric(verifyNs, "cpu-ns/verify")
	b.ReportMetric(bareNs, "cpu-ns/bare")
	b.ReportMetric(verifyNs/bareNs, "verify/bare")
	b.ReportMetric(benchEnvelopes/(verifyNs/1e9), "envelopes/s")
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
