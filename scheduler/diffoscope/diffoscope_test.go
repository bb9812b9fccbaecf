package diffoscope_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/scheduler/diffoscope"
)

// differ returns the diffoscope on the PATH; without one it skips the test,
// and fails it under CI, which must run it.
func differ(t *testing.T) *diffoscope.Differ {
	t.Helper()
	d, err := diffoscope.Find("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v\nCI must run the diffoscope tests ('make diffoscope')", err)
		}
		t.Skip(err)
	}
	return d
}

func TestDiff(t *testing.T) {
	d := differ(t)
	tests := []struct {
		name, a, b string
		want       []string // lines the report must hold
	}{
		{"stamp", "built at 1\nsame\n", "built at 2\nsame\n", []string{"--- a/stamp", "+++ b/stamp", "-built at 1", "+built at 2"}},
		{"equal", "same\n", "same\n", nil},
		// A label is a claim's signer's: it cannot name a path.
		{"../../etc/passwd", "x\n", "y\n", []string{"--- a/.._.._etc_passwd", "-x", "+y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			report, err := d.Diff(t.Context(), tt.name, strings.NewReader(tt.a), strings.NewReader(tt.b))
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			if len(tt.want) == 0 && len(report) != 0 {
				t.Errorf("Diff of equal inputs = %q, want an empty report", report)
			}
			for _, line := range tt.want {
				if !strings.Contains("\n"+string(report), "\n"+line+"\n") {
					t.Errorf("report has no line %q:\n%s", line, report)
				}
			}
		})
	}
}

func TestDiffCutsLongReports(t *testing.T) {
	d := differ(t)
	d.MaxReport = 4096
	var a, b strings.Builder
	for i := range 5000 {
		a.WriteString(strings.Repeat("a", i%70) + "\n")
		b.WriteString(strings.Repeat("b", i%70) + "\n")
	}
	report, err := d.Diff(t.Context(), "big.txt", strings.NewReader(a.String()), strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if len(report) > 4096+100 || !strings.Contains(string(report), "--- a/big.txt") || !strings.HasSuffix(string(report), "\n[lantern: report cut at 4096 bytes]\n") {
		t.Errorf("report of %d bytes with a limit of 4096:\n%.2000s", len(report), report)
	}
}

func TestDiffFailures(t *testing.T) {
	if _, err := diffoscope.Find("/nonexistent/diffoscope"); !errors.Is(err, diffoscope.ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("Find of a missing program = %v, want %v saying how to install it", err, diffoscope.ErrNotInstalled)
	}
	// A program that fails: its last line of stderr is in the error.
	script := t.TempDir() + "/broken"
	os.WriteFile(script, []byte("#!/bin/sh\necho something broke >&2\nexit 2\n"), 0o755)
	_, err := (&diffoscope.Differ{Path: script}).Diff(t.Context(), "x", strings.NewReader("a"), strings.NewReader("b"))
	if err == nil || !strings.Contains(err.Error(), "something broke") {
		t.Errorf("Diff with a failing program = %v, want its stderr", err)
	}
	// One that runs too long is stopped.
	slow := t.TempDir() + "/slow"
	os.WriteFile(slow, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755)
	start := time.Now()
	_, err = (&diffoscope.Differ{Path: slow, Timeout: time.Second}).Diff(t.Context(), "x", strings.NewReader("a"), strings.NewReader("b"))
	if le, ok := errors.AsType[*diffoscope.LimitError](err); !ok || !slices.Equal(le.Caps, []diffoscope.Cap{diffoscope.CapTime}) || !strings.Contains(err.Error(), "hit its time limit of 1s") {
		t.Errorf("Diff with a program that hangs = %v, want its time limit hit", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("Diff returned after %s", d)
	}
}
