// Command benchtable prints the report of `make bench`: it reads the output
// of `go test -bench` on standard input and prints one table row per
// benchmark, with ns/op, operations per second (1e9 / ns/op), MB/s where the
// benchmark set bytes, B/op and allocs/op where it reported allocations, and a
// column for every custom metric (b.ReportMetric). With -count above 1, each
// figure is the median of the runs, which one run slowed by a busy machine
// does not move. Nothing else of the input is echoed.
//
// Each -ratio flag adds a row comparing two benchmarks' time per operation
// against a target:
//
//	go test -run='^$' -bench=. -benchmem -cpu=1 ./... > bench.out
//	go run ./internal/benchtable -ratio 'verify=BenchmarkVerifyAttestation/BenchmarkECDSAVerifyASN1<=1.2' < bench.out
//
// prints, after the table,
//
//	verify: time(BenchmarkVerifyAttestation)/time(BenchmarkECDSAVerifyASN1) = 2.31, target ≤ 1.2, MISSED
//
// Each -target flag adds a row checking one metric against a bound, such as
// -target 'ingest=BenchmarkIngestClaims:claims/s>=5000'.
//
// A side written BenchmarkX:UNIT takes the metric UNIT of BenchmarkX instead
// of its ns/op, for a benchmark that measures both sides of a ratio itself.
// A name may leave out the -N GOMAXPROCS suffix that go test adds. A missed
// target prints MISSED but exits 0: benchmarks report, they do not gate. A
// benchmark that is missing from the input, or an input that reports a
// failure, exits 1, since the report is then wrong.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// result is one benchmark's figures over its runs.
type result struct {
	pkg, name string
	values    map[string][]float64 // unit → one value per run
}

// median returns the median of the runs' values of unit.
func (r *result) median(unit string) (float64, bool) {
	vs := slices.Clone(r.values[unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2, true
	}
	return vs[len(vs)/2], true
}

// report is what parse finds in go test output.
type report struct {
	results []*result
	custom  []string // units of custom metrics, in order of appearance
	failed  []string // FAIL lines
}

// standard units have their own columns; every other unit is a custom metric.
var standard = map[string]bool{"ns/op": true, "MB/s": true, "B/op": true, "allocs/op": true}

// parse reads go test -bench output. Lines that are not results (goos:, pkg:,
// PASS, ok, logs) are skipped; pkg: lines tell packages apart.
func parse(r io.Reader) (*report, error) {
	rep := &report{}
	byKey := map[[2]string]*result{}
	seen := map[string]bool{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") {
			rep.failed = append(rep.failed, line)
			continue
		}
		name, metrics, ok := parseResult(line)
		if !ok {
			continue
		}
		key := [2]string{pkg, name}
		res := byKey[key]
		if res == nil {
			res = &result{pkg: pkg, name: name, values: map[string][]float64{}}
			byKey[key] = res
			rep.results = append(rep.results, res)
		}
		for _, m := range metrics {
			res.values[m.unit] = append(res.values[m.unit], m.value)
			if !standard[m.unit] && !seen[m.unit] {
				seen[m.unit] = true
				rep.custom = append(rep.custom, m.unit)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	return rep, nil
}

type metric struct {
	value float64
	unit  string
}

// parseResult parses "BenchmarkName[-N] iterations value unit [value unit]...".
func parseResult(line string) (string, []metric, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", nil, false
	}
	if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
		return "", nil, false
	}
	var ms []metric
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		ms = append(ms, metric{v, f[i+1]})
	}
	return f[0], ms, true
}

// find returns the one benchmark called name, or name with a -N suffix.
func (rep *report) find(name string) (*result, error) {
	var exact, suffixed []*result
	for _, r := range rep.results {
		switch {
		case r.name == name:
			exact = append(exact, r)
		case hasProcsSuffix(r.name, name):
			suffixed = append(suffixed, r)
		}
	}
	found := exact
	if len(found) == 0 {
		found = suffixed
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s is missing from the input", name)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, r := range found {
		names = append(names, r.qualified())
	}
	return nil, fmt.Errorf("%s is ambiguous: it matches %s", name, strings.Join(names, ", "))
}

// hasProcsSuffix reports whether name is base followed by "-N", the
// GOMAXPROCS suffix of go test.
func hasProcsSuffix(name, base string) bool {
	n, ok := strings.CutPrefix(name, base+"-")
	if !ok || n == "" {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}

// qualified names the benchmark with its package's last element, which is
// how a reader knows it ("attest.BenchmarkVerifyAttestation").
func (r *result) qualified() string {
	if r.pkg == "" {
		return r.name
	}
	return path.Base(r.pkg) + "." + r.name
}

// ratio is one -ratio flag: LABEL=A/B<=max.
type ratio struct {
	label, a, b string
	max         float64
}

func parseRatio(s string) (ratio, error) {
	const want = "want LABEL=BenchmarkA/BenchmarkB<=MAX, such as verify=BenchmarkVerify/BenchmarkECDSA<=1.2"
	label, rest, ok := strings.Cut(s, "=")
	if !ok || label == "" || strings.Contains(label, "<") {
		return ratio{}, fmt.Errorf("-ratio %q: %s", s, want)
	}
	names, max, ok := strings.Cut(rest, "<=")
	if !ok {
		return ratio{}, fmt.Errorf("-ratio %q: no <=MAX: %s", s, want)
	}
	// Sub-benchmark names contain slashes too; B starts at "/Benchmark".
	i := strings.Index(names, "/Benchmark")
	if i < 0 || !strings.HasPrefix(names, "Benchmark") {
		return ratio{}, fmt.Errorf("-ratio %q: %s", s, want)
	}
	m, err := strconv.ParseFloat(max, 64)
	if err != nil || m <= 0 {
		return ratio{}, fmt.Errorf("-ratio %q: target %q: want a positive number", s, max)
	}
	return ratio{label: label, a: names[:i], b: names[i+1:], max: m}, nil
}

// line computes the ratio row; the error says why it could not. A side is
// a benchmark's ns/op, or, written Benchmark:UNIT, one of its metrics.
func (q ratio) line(rep *report) (string, error) {
	var times [2]float64
	for i, side := range []string{q.a, q.b} {
		name, unit, ok := strings.Cut(side, ":")
		if !ok {
			unit = "ns/op"
		}
		r, err := rep.find(name)
		if err != nil {
			return fmt.Sprintf("%s: %v, target ≤ %g, cannot tell", q.label, err, q.max), err
		}
		ns, ok := r.median(unit)
		if !ok || ns <= 0 {
			err := fmt.Errorf("%s has no %s", name, unit)
			return fmt.Sprintf("%s: %v, target ≤ %g, cannot tell", q.label, err, q.max), err
		}
		times[i] = ns
	}
	x := times[0] / times[1]
	verdict := "met"
	if x > q.max {
		verdict = "MISSED"
	}
	return fmt.Sprintf("%s: time(%s)/time(%s) = %.2f, target ≤ %g, %s", q.label, q.a, q.b, x, q.max, verdict), nil
}

// target is one -target flag: LABEL=Benchmark:UNIT>=MIN or <=MAX, a bound
// on one metric of one benchmark.
type target struct {
	label, bench, unit string
	atLeast            bool
	bound              float64
}

func parseTarget(s string) (target, error) {
	const want = "want LABEL=Benchmark:UNIT>=MIN or LABEL=Benchmark:UNIT<=MAX, such as ingest=BenchmarkIngest:claims/s>=5000"
	label, rest, ok := strings.Cut(s, "=")
	if !ok || label == "" {
		return target{}, fmt.Errorf("-target %q: %s", s, want)
	}
	t := target{label: label}
	var metric, bound string
	if metric, bound, ok = strings.Cut(rest, ">="); ok {
		t.atLeast = true
	} else if metric, bound, ok = strings.Cut(rest, "<="); !ok {
		return target{}, fmt.Errorf("-target %q: %s", s, want)
	}
	if t.bench, t.unit, ok = strings.Cut(metric, ":"); !ok || !strings.HasPrefix(t.bench, "Benchmark") || t.unit == "" {
		return target{}, fmt.Errorf("-target %q: %s", s, want)
	}
	v, err := strconv.ParseFloat(bound, 64)
	if err != nil {
		return target{}, fmt.Errorf("-target %q: bound %q: want a number", s, bound)
	}
	t.bound = v
	return t, nil
}

// line computes the target row; the error says why it could not.
func (t target) line(rep *report) (string, error) {
	op := "≤"
	if t.atLeast {
		op = "≥"
	}
	r, err := rep.find(t.bench)
	if err != nil {
		return fmt.Sprintf("%s: %v, target %s %g, cannot tell", t.label, err, op, t.bound), err
	}
	v, ok := r.median(t.unit)
	if !ok {
		err := fmt.Errorf("%s has no %s", t.bench, t.unit)
		return fmt.Sprintf("%s: %v, target %s %g, cannot tell", t.label, err, op, t.bound), err
	}
	verdict := "met"
	if t.atLeast && v < t.bound || !t.atLeast && v > t.bound {
		verdict = "MISSED"
	}
	return fmt.Sprintf("%s: %s %s = %s, target %s %g, %s", t.label, t.bench, t.unit, number(v), op, t.bound, verdict), nil
}

// writeTable prints one row per benchmark; "-" marks a figure it lacks.
func writeTable(w io.Writer, rep *report) error {
	// Padding 0 and a gap inside each figure's cell keep the first column
	// flush left while the figures align right.
	tw := tabwriter.NewWriter(w, 0, 0, 0, ' ', tabwriter.AlignRight)
	cols := append([]string{"ns/op", "ops/s", "MB/s", "B/op", "allocs/op"}, rep.custom...)
	// Names align left, figures right: pad the names to one width.
	width := len("benchmark")
	for _, r := range rep.results {
		width = max(width, len(r.qualified()))
	}
	fmt.Fprintf(tw, "%-*s\t  %s\t\n", width, "benchmark", strings.Join(cols, "\t  "))
	for _, r := range rep.results {
		cells := []string{fmt.Sprintf("%-*s", width, r.qualified())}
		for _, unit := range cols {
			v, ok := r.median(unit)
			if unit == "ops/s" {
				ns, has := r.median("ns/op")
				v, ok = 1e9/ns, has && ns > 0
			}
			if !ok {
				cells = append(cells, "  -")
				continue
			}
			cells = append(cells, "  "+number(v))
		}
		fmt.Fprintf(tw, "%s\t\n", strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// number prints a figure with no more digits than a benchmark can mean.
func number(v float64) string {
	if v >= 1000 || v == 0 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

var (
	errReport = errors.New("the report is incomplete")
	errUsage  = errors.New("usage") // the flag package has said what was wrong
)

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ratios []ratio
	fs.Func("ratio", "add a row `LABEL=BenchmarkA/BenchmarkB<=MAX`: time(A)/time(B) against MAX (repeatable)", func(s string) error {
		q, err := parseRatio(s)
		if err != nil {
			return err
		}
		ratios = append(ratios, q)
		return nil
	})
	var targets []target
	fs.Func("target", "add a row `LABEL=Benchmark:UNIT>=MIN` (or <=MAX): one metric against a bound (repeatable)", func(s string) error {
		t, err := parseTarget(s)
		if err != nil {
			return err
		}
		targets = append(targets, t)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: benchtable reads go test output on stdin", fs.Arg(0))
	}
	rep, err := parse(stdin)
	if err != nil {
		return err
	}
	if len(rep.results) == 0 {
		return fmt.Errorf("%w: no benchmark results on stdin", errReport)
	}
	if err := writeTable(stdout, rep); err != nil {
		return err
	}
	var problems []error
	if len(ratios)+len(targets) > 0 {
		fmt.Fprintln(stdout)
	}
	for _, q := range ratios {
		s, err := q.line(rep)
		fmt.Fprintln(stdout, s)
		if err != nil {
			problems = append(problems, err)
		}
	}
	for _, t := range targets {
		s, err := t.line(rep)
		fmt.Fprintln(stdout, s)
		if err != nil {
			problems = append(problems, err)
		}
	}
	for _, f := range rep.failed {
		problems = append(problems, fmt.Errorf("the input reports a failure: %s", f))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %w", errReport, errors.Join(problems...))
	}
	return nil
}

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
		if errors.Is(err, errReport) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}
