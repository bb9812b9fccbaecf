package boltstore

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

func TestDiffs(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	src := source("example.com/tool", "v1.2.3")
	x, y, z := digest("output x"), digest("output y"), digest("output z")
	a, b, c, d := digest("builder a"), digest("builder b"), digest("builder c"), digest("builder d")

	pending := func() []scheduler.DiffRecord {
		t.Helper()
		p, err := s.PendingDiffs(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Builders that agree want no report.
	record(t, s, rebuild(src, "bin", a, x, 1), lantern.Digest{})
	record(t, s, rebuild(src, "bin", b, x, 2), lantern.Digest{})
	if p := pending(); len(p) != 0 {
		t.Fatalf("PendingDiffs after agreement = %+v, want none", p)
	}
	// A third that disagrees: x against y.
	third := rebuild(src, "bin", c, y, 3)
	record(t, s, third, lantern.Digest{})
	want := scheduler.DiffRecord{Source: src, Label: "bin", A: x, B: y, State: scheduler.DiffPending, Updated: third.Received}
	if diff := cmp.Diff([]scheduler.DiffRecord{want}, pending()); diff != "" {
		t.Fatalf("PendingDiffs after a mismatch (-want +got):\n%s", diff)
	}
	for _, pair := range [][2]lantern.Digest{{x, y}, {y, x}} {
		got, err := s.Diff(ctx, pair[0], pair[1])
		if err != nil || !cmp.Equal(*got, want) {
			t.Errorf("Diff(%s, %s) = %+v, %v; want %+v", pair[0].Short(), pair[1].Short(), got, err, want)
		}
	}
	if _, err := s.Diff(ctx, x, z); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("Diff of a pair never asked for = %v, want ErrNotFound", err)
	}

	// Done: off the pending list, and a later attestation does not ask again.
	done := want
	done.State, done.Report, done.Updated = scheduler.DiffDone, digest("report"), t0.Add(time.Hour)
	if err := s.PutDiff(ctx, done); err != nil {
		t.Fatal(err)
	}
	record(t, s, rebuild(src, "bin", d, z, 4), lantern.Digest{}) // x (2) against y (1) and z (1)
	p := pending()
	if len(p) != 1 || p[0].A != x || p[0].B != z {
		t.Errorf("PendingDiffs after a fourth output = %+v, want x against z only", p)
	}
	if got, _ := s.Diff(ctx, y, x); !cmp.Equal(*got, done) {
		t.Errorf("Diff(y, x) = %+v, want the done report %+v", got, done)
	}

	// Failed: off the list, until an attestation of the (source, label)
	// comes in and it is tried again.
	failed := p[0]
	failed.State, failed.Reason = scheduler.DiffFailed, "output z is not in the object store"
	if err := s.PutDiff(ctx, failed); err != nil {
		t.Fatal(err)
	}
	if p := pending(); len(p) != 0 {
		t.Fatalf("PendingDiffs after the last one failed = %+v, want none", p)
	}
	record(t, s, rebuild(src, "bin", digest("builder e"), z, 5), lantern.Digest{})
	if got, _ := s.Diff(ctx, x, z); got.State != scheduler.DiffPending {
		t.Errorf("Diff(x, z) after another output z = %+v, want the failed report pending again", got)
	}
	if got, _ := s.Diff(ctx, x, y); got.State != scheduler.DiffDone {
		t.Errorf("Diff(x, y) after another output z = %+v, want it done still", got)
	}

	// Reset forgets them all.
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Diff(ctx, x, y); !errors.Is(err, scheduler.ErrNotFound) {
		t.Errorf("Diff after Reset = %v, want ErrNotFound", err)
	}
}

func TestPutDiffRefuses(t *testing.T) {
	s := openStore(t)
	x, y := digest("x"), digest("y")
	for _, tt := range []struct {
		name string
		d    scheduler.DiffRecord
	}{
		{"one output", scheduler.DiffRecord{A: x, B: x, State: scheduler.DiffPending}},
		{"no output", scheduler.DiffRecord{A: x, State: scheduler.DiffPending}},
		{"no state", scheduler.DiffRecord{A: x, B: y}},
		{"done without report", scheduler.DiffRecord{A: x, B: y, State: scheduler.DiffDone}},
	} {
		if err := s.PutDiff(t.Context(), tt.d); err == nil {
			t.Errorf("%s: PutDiff(%+v) = nil, want an error", tt.name, tt.d)
		}
	}
}
