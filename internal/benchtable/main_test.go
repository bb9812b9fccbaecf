package main

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sample is real `go test -run='^$' -bench=. -benchmem -cpu=1 ./...` output
// for two packages, with a benchmark's log lines and a -cpu=2 run added.
const sample = `goos: linux
goarch: amd64
pkg: github.com/lanternfarm/lantern
cpu: AMD EPYC
BenchmarkDigestReader 	      31	  37329002 ns/op	1797.77 MB/s	  262320 B/op	       3 allocs/op
BenchmarkSHA256Stdlib 	      31	  37313119 ns/op	1798.53 MB/s	     208 B/op	       3 allocs/op
PASS
ok  	github.com/lanternfarm/lantern	2.470s
goos: linux
goarch: amd64
pkg: github.com/lanternfarm/lantern/attest
cpu: AMD EPYC
BenchmarkVerifyAttestation
    bench_test.go:115: envelope 3076 bytes, payload 2163 bytes
BenchmarkVerifyAttestation 	    7165	    169225 ns/op	      5909 verifies/s	   39824 B/op	     183 allocs/op
BenchmarkECDSAVerifyASN1   	   16092	     73827 ns/op	     13545 verifies/s	     576 B/op	      10 allocs/op
BenchmarkECDSAVerifyASN1-2 	   16000	     70000 ns/op	     14285 verifies/s	     576 B/op	      10 allocs/op
BenchmarkPAE/size-1024     	 5000000	     245.5 ns/op
PASS
ok  	github.com/lanternfarm/lantern/attest	2.408s
?   	github.com/lanternfarm/lantern/cmd/lantern	[no test files]
`

func TestParse(t *testing.T) {
	rep, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Pkg, Name string
		Values    map[string][]float64
	}
	var got []row
	for _, r := range rep.results {
		got = append(got, row{r.pkg, r.name, r.values})
	}
	const root, attest = "github.com/lanternfarm/lantern", "github.com/lanternfarm/lantern/attest"
	want := []row{
		{root, "BenchmarkDigestReader", map[string][]float64{"ns/op": {37329002}, "MB/s": {1797.77}, "B/op": {262320}, "allocs/op": {3}}},
		{root, "BenchmarkSHA256Stdlib", map[string][]float64{"ns/op": {37313119}, "MB/s": {1798.53}, "B/op": {208}, "allocs/op": {3}}},
		{attest, "BenchmarkVerifyAttestation", map[string][]float64{"ns/op": {169225}, "verifies/s": {5909}, "B/op": {39824}, "allocs/op": {183}}},
		{attest, "BenchmarkECDSAVerifyASN1", map[string][]float64{"ns/op": {73827}, "verifies/s": {13545}, "B/op": {576}, "allocs/op": {10}}},
		{attest, "BenchmarkECDSAVerifyASN1-2", map[string][]float64{"ns/op": {70000}, "verifies/s": {14285}, "B/op": {576}, "allocs/op": {10}}},
		{attest, "BenchmarkPAE/size-1024", map[string][]float64{"ns/op": {245.5}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parse() results (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"verifies/s"}, rep.custom); diff != "" {
		t.Errorf("parse() custom units (-want +got):\n%s", diff)
	}
	if len(rep.failed) != 0 {
		t.Errorf("parse() failed = %q, want none", rep.failed)
	}
}

func TestParseCountTakesMedian(t *testing.T) {
	in := "pkg: example.com/p\nBenchmarkA-4 \t 10\t 100 ns/op\nBenchmarkA-4 \t 10\t 900 ns/op\nBenchmarkA-4 \t 10\t 120 ns/op\n"
	rep, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.results) != 1 {
		t.Fatalf("parse() = %d results, want 1", len(rep.results))
	}
	if got, _ := rep.results[0].median("ns/op"); got != 120 {
		t.Errorf("median ns/op = %v, want 120", got)
	}
}

func TestFind(t *testing.T) {
	rep, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want, wantErr string
	}{
		{name: "BenchmarkVerifyAttestation", want: "BenchmarkVerifyAttestation"},
		{name: "BenchmarkECDSAVerifyASN1", want: "BenchmarkECDSAVerifyASN1"}, // exact beats -2
		{name: "BenchmarkECDSAVerifyASN1-2", want: "BenchmarkECDSAVerifyASN1-2"},
		{name: "BenchmarkPAE/size-1024", want: "BenchmarkPAE/size-1024"},
		// go test's names cannot tell a sub-benchmark ending in -N from a
		// GOMAXPROCS suffix; the exact name always works.
		{name: "BenchmarkPAE/size", want: "BenchmarkPAE/size-1024"},
		{name: "BenchmarkNope", wantErr: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := rep.find(tt.name)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("find(%q) error = %v, want one saying %q", tt.name, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.name != tt.want {
				t.Errorf("find(%q) = %s, want %s", tt.name, r.name, tt.want)
			}
		})
	}

	suffixOnly, _ := parse(strings.NewReader("BenchmarkA-8 \t 10\t 100 ns/op\n"))
	if r, err := suffixOnly.find("BenchmarkA"); err != nil || r.name != "BenchmarkA-8" {
		t.Errorf("find(BenchmarkA) = %v, %v, want BenchmarkA-8", r, err)
	}
	twoProcs, _ := parse(strings.NewReader("BenchmarkA-2 \t 10\t 100 ns/op\nBenchmarkA-8 \t 10\t 90 ns/op\n"))
	if _, err := twoProcs.find("BenchmarkA"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("find(BenchmarkA) error = %v, want ambiguous", err)
	}
}

func TestParseRatio(t *testing.T) {
	tests := []struct {
		in      string
		want    ratio
		wantErr bool
	}{
		{in: "verify=BenchmarkVerifyAttestation/BenchmarkECDSAVerifyASN1<=1.2", want: ratio{"verify", "BenchmarkVerifyAttestation", "BenchmarkECDSAVerifyASN1", 1.2}},
		{in: "verify / ecdsa=BenchmarkA/BenchmarkB<=1.2", want: ratio{"verify / ecdsa", "BenchmarkA", "BenchmarkB", 1.2}},
		{in: "sub=BenchmarkX/small-8/BenchmarkY/big<=2", want: ratio{"sub", "BenchmarkX/small-8", "BenchmarkY/big", 2}},
		{in: "BenchmarkA/BenchmarkB<=1.2", wantErr: true},
		{in: "l=BenchmarkA/BenchmarkB", wantErr: true},
		{in: "l=BenchmarkA-BenchmarkB<=1", wantErr: true},
		{in: "l=BenchmarkA/BenchmarkB<=fast", wantErr: true},
		{in: "l=BenchmarkA/BenchmarkB<=0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRatio(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseRatio(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseRatio(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		in        string
		wantLines []string
		wantErr   error
	}{
		{
			name: "table and ratios",
			args: []string{
				"-ratio", "verify=BenchmarkVerifyAttestation/BenchmarkECDSAVerifyASN1<=1.2",
				"-ratio", "digest=BenchmarkDigestReader/BenchmarkSHA256Stdlib<=1.05",
			},
			in: sample,
			wantLines: []string{
				"benchmark  ns/op  ops/s  MB/s  B/op  allocs/op  verifies/s",
				"attest.BenchmarkVerifyAttestation  169225  5909  -  39824  183  5909",
				"lantern.BenchmarkDigestReader  37329002  26.8  1798  262320  3  -",
				"attest.BenchmarkPAE/size-1024  246  4073320  -  -  -  -",
				"verify: time(BenchmarkVerifyAttestation)/time(BenchmarkECDSAVerifyASN1) = 2.29, target ≤ 1.2, MISSED",
				"digest: time(BenchmarkDigestReader)/time(BenchmarkSHA256Stdlib) = 1.00, target ≤ 1.05, met",
			},
		},
		{
			name:      "ratio of metrics",
			args:      []string{"-ratio", "m=BenchmarkECDSAVerifyASN1:verifies/s/BenchmarkVerifyAttestation:verifies/s<=3"},
			in:        sample,
			wantLines: []string{"m: time(BenchmarkECDSAVerifyASN1:verifies/s)/time(BenchmarkVerifyAttestation:verifies/s) = 2.29, target ≤ 3, met"},
		},
		{
			name: "targets",
			args: []string{"-target", "fast=BenchmarkECDSAVerifyASN1:verifies/s>=10000", "-target", "small=BenchmarkVerifyAttestation:allocs/op<=100"},
			in:   sample,
			wantLines: []string{
				"fast: BenchmarkECDSAVerifyASN1 verifies/s = 13545, target ≥ 10000, met",
				"small: BenchmarkVerifyAttestation allocs/op = 183, target ≤ 100, MISSED",
			},
		},
		{
			name:    "bad target",
			args:    []string{"-target", "x=BenchmarkA>=1"},
			in:      sample,
			wantErr: errUsage,
		},
		{
			name:      "missing metric",
			args:      []string{"-ratio", "m=BenchmarkECDSAVerifyASN1:ns/frob/BenchmarkVerifyAttestation<=3"},
			in:        sample,
			wantLines: []string{"m: BenchmarkECDSAVerifyASN1 has no ns/frob, target ≤ 3, cannot tell"},
			wantErr:   errReport,
		},
		{
			name:      "missing benchmark",
			args:      []string{"-ratio", "x=BenchmarkVerifyAttestation/BenchmarkGone<=1.2"},
			in:        sample,
			wantLines: []string{"x: BenchmarkGone is missing from the input, target ≤ 1.2, cannot tell"},
			wantErr:   errReport,
		},
		{
			name:    "failed run",
			in:      sample + "--- FAIL: BenchmarkECDSAVerifyASN1\nFAIL\n",
			wantErr: errReport,
		},
		{
			name:    "no results",
			in:      "PASS\nok  \texample.com/p\t0.1s\n",
			wantErr: errReport,
		},
		{
			name:    "bad flag",
			args:    []string{"-ratio", "nonsense"},
			in:      sample,
			wantErr: errUsage,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, stderr bytes.Buffer
			err := run(tt.args, strings.NewReader(tt.in), &out, &stderr)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("run() error = %v, want %v", err, tt.wantErr)
			}
			got := squeeze(out.String())
			for _, l := range tt.wantLines {
				if !strings.Contains(got, l+"\n") {
					t.Errorf("run() output lacks line %q; output:\n%s", l, out.String())
				}
			}
		})
	}
}

// squeeze collapses the table's alignment to two spaces between cells.
func squeeze(s string) string {
	return regexp.MustCompile(` {2,}`).ReplaceAllString(s, "  ")
}
