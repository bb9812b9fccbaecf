package attest_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/attest/keys"
)

// The two benchmarks below are the two sides of one ratio that `make bench`
// reports: the cost of verifying a rebuild attestation as it arrives off the
// wire, against the floor set by the signature check alone. Both start from
// the same signed envelope: BenchmarkVerifyAttestation parses its JSON bytes
// and runs attest.Verify; BenchmarkECDSAVerifyASN1 hashes the same
// pre-authentication encoding and checks the same signature with the same
// key, and does nothing else. The gap is what Lantern adds: JSON, base64,
// strict parsing and validation.

// signedRebuild returns a realistic rebuild attestation as JSON bytes, the
// envelope it came from, and the key that signed it.
func signedRebuild(b *testing.B) ([]byte, *dsse.Envelope, *keys.Public) {
	b.Helper()
	k, err := keys.Generate()
	if err != nil {
		b.Fatal(err)
	}
	started := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	r := &lantern.Rebuild{
		Source: lantern.Source{
			Name:    "golang.org/x/text",
			Version: "v0.22.0",
			Digest:  lantern.DigestOf([]byte("golang.org/x/text@v0.22.0 module zip")),
			GoSum:   "h1:bzFOWnwSSO4n7j9ifAoOPBN4YbVTGi5fIEtmhT4XOAA=",
		},
		Label:  "linux-amd64/text.a",
		Output: lantern.DigestOf([]byte("output")),
		Recipe: lantern.Recipe{
			BuildType: "https://lanternfarm.github.io/lantern/recipes/go/v1",
			Digest:    lantern.DigestOf([]byte("recipes/go.toml")),
		},
		Builder: k.ID(),
		Dependencies: []lantern.Dependency{
			{Name: "go", URI: "https://go.dev/dl/go1.24.1.linux-amd64.tar.gz", Digest: lantern.DigestOf([]byte("go1.24.1"))},
			{Name: "builder-image", URI: "oci://docker.io/library/golang@sha256", Digest: lantern.DigestOf([]byte("image"))},
			{Name: "golang.org/x/sys", URI: "https://proxy.golang.org/golang.org/x/sys/@v/v0.30.0.zip", Digest: lantern.DigestOf([]byte("sys"))},
			{Name: "golang.org/x/tools", URI: "https://proxy.golang.org/golang.org/x/tools/@v/v0.29.0.zip", Digest: lantern.DigestOf([]byte("tools"))},
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
		JobID:    "job-01JPB7Z6K9M3Q4R5S6T7V8W9X0",
		Started:  started,
		Finished: started.Add(97 * time.Second),
		Log:      lantern.DigestOf([]byte("build log")),
	}
	env, err := attest.Sign(r, k)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}
	return raw, env, k.Public()
}

func BenchmarkVerifyAttestation(b *testing.B) {
	raw, _, pub := signedRebuild(b)
	b.ReportAllocs()
	for b.Loop() {
		env, err := dsse.Unmarshal(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := attest.Verify(env, pub); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

func BenchmarkECDSAVerifyASN1(b *testing.B) {
	_, env, pub := signedRebuild(b)
	pae := dsse.PAE(env.PayloadType, env.Payload)
	sig := env.Signatures[0].Sig
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.Sum256(pae)
		if !ecdsa.VerifyASN1(pub.Crypto(), h[:], sig) {
			b.Fatal("ecdsa.VerifyASN1 = false, want true")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

// BenchmarkParseAttestation is the difference of the two above, measured on
// its own: everything attest.Verify does but the signature check.
func BenchmarkParseAttestation(b *testing.B) {
	raw, _, _ := signedRebuild(b)
	b.ReportAllocs()
	for b.Loop() {
		env, err := dsse.Unmarshal(raw)
		if err != nil {
			b.Fatal(err)
		}
		st, err := attest.ParseStatement(env.Payload)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Claim(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyInterleaved measures the two sides of the ratio in one run,
// in alternating blocks: a stretch of attestation verifies, then a stretch of
// bare ecdsa.VerifyASN1 calls over the same data, and so on. Run one after
// the other, as -count runs them, the two benchmarks above meet different
// moments of a shared machine (other processes, frequency changes), which
// moves their ratio by more than the difference it is there to show.
// ns/attest and ns/bare are the time per operation of each side.
func BenchmarkVerifyInterleaved(b *testing.B) {
	raw, env, pub := signedRebuild(b)
	pae := dsse.PAE(env.PayloadType, env.Payload)
	sig := env.Signatures[0].Sig
	const block = 50
	var (
		spent [2]time.Duration // attestation verifies, bare verifies
		ops   [2]int
		i     int
		start = time.Now()
	)
	b.ReportAllocs()
	for b.Loop() {
		side := (i / block) % 2
		if side == 0 {
			e, err := dsse.Unmarshal(raw)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := attest.Verify(e, pub); err != nil {
				b.Fatal(err)
			}
		} else {
			h := sha256.Sum256(pae)
			if !ecdsa.VerifyASN1(pub.Crypto(), h[:], sig) {
				b.Fatal("ecdsa.VerifyASN1 = false, want true")
			}
		}
		ops[side]++
		if i++; i%block == 0 {
			now := time.Now()
			spent[side] += now.Sub(start)
			start = now
		}
	}
	if ops[0] < block || ops[1] < block {
		return // too short a run to say; b.Loop runs it again longer
	}
	last := ((i - 1) / block) % 2
	spent[last] += time.Since(start)
	attestNs := float64(spent[0].Nanoseconds()) / float64(ops[0])
	bareNs := float64(spent[1].Nanoseconds()) / float64(ops[1])
	b.ReportMetric(attestNs, "ns/attest")
	b.ReportMetric(bareNs, "ns/bare")
	b.ReportMetric(attestNs/bareNs, "attest/bare")
}
