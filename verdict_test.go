package lantern_test

import (
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
)

func TestDecide(t *testing.T) {
	src := lantern.Source{Name: "hello", Version: "1", Digest: lantern.DigestOf([]byte("src"))}
	b := func(s string) lantern.Digest { return lantern.DigestOf([]byte("builder " + s)) }
	out := func(s string) lantern.Digest { return lantern.DigestOf([]byte("output " + s)) }
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ok := func(builder, output string) lantern.Outcome {
		return lantern.Outcome{Builder: b(builder), Output: out(output), Finished: at}
	}
	fail := func(builder string) lantern.Outcome {
		return lantern.Outcome{Builder: b(builder), Stage: "build", Reason: "exit status 2", Finished: at}
	}
	tests := []struct {
		name      string
		published lantern.Digest
		outcomes  []lantern.Outcome
		want      lantern.Status
		groups    []int // sizes, largest first
	}{
		{"nothing yet", lantern.Digest{}, nil, lantern.StatusPending, nil},
		{"one of two", lantern.Digest{}, []lantern.Outcome{ok("a", "x")}, lantern.StatusPending, []int{1}},
		{"two agree", lantern.Digest{}, []lantern.Outcome{ok("a", "x"), ok("b", "x")}, lantern.StatusReproduced, []int{2}},
		{"a third disagrees", lantern.Digest{}, []lantern.Outcome{ok("a", "x"), ok("b", "x"), ok("c", "y")}, lantern.StatusMismatch, []int{2, 1}},
		{"agree with published", out("x"), []lantern.Outcome{ok("a", "x"), ok("b", "x")}, lantern.StatusReproduced, []int{2}},
		{"agree, not published", out("p"), []lantern.Outcome{ok("a", "x"), ok("b", "x")}, lantern.StatusMismatch, []int{2}},
		{"one builder twice counts once", lantern.Digest{}, []lantern.Outcome{ok("a", "x"), ok("a", "x")}, lantern.StatusPending, []int{1}},
		{"all failed", lantern.Digest{}, []lantern.Outcome{fail("a"), fail("b")}, lantern.StatusFailed, nil},
		{"a failure beside agreement", lantern.Digest{}, []lantern.Outcome{ok("a", "x"), ok("b", "x"), fail("c")}, lantern.StatusReproduced, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := lantern.Decide(src, "hello", tt.published, 2, tt.outcomes)
			if v.Status != tt.want {
				t.Errorf("Decide().Status = %s, want %s", v.Status, tt.want)
			}
			if len(v.Groups) != len(tt.groups) {
				t.Fatalf("Decide() has %d groups, want %d: %+v", len(v.Groups), len(tt.groups), v.Groups)
			}
			for i, n := range tt.groups {
				if len(v.Groups[i].Builders) != n {
					t.Errorf("group %d has %d builders, want %d", i, len(v.Groups[i].Builders), n)
				}
			}
		})
	}
	// The outcome the farm received last stands, whatever the builder's
	// clock says: one dated in the future does not outvote a later one.
	future := ok("a", "x")
	future.Finished = at.AddDate(100, 0, 0)
	v := lantern.Decide(src, "hello", lantern.Digest{}, 1, []lantern.Outcome{future, ok("a", "y")})
	if len(v.Groups) != 1 || v.Groups[0].Output != out("y") {
		t.Errorf("Decide() groups = %+v, want the output received last only", v.Groups)
	}
	// A revoked builder's outcome is listed, and does not count.
	revoked := ok("c", "z")
	revoked.Revoked = true
	v = lantern.Decide(src, "hello", lantern.Digest{}, 2, []lantern.Outcome{ok("a", "x"), ok("b", "x"), revoked})
	if v.Status != lantern.StatusReproduced || len(v.Groups) != 1 || len(v.Revoked) != 1 || v.Revoked[0].Builder != b("c") {
		t.Errorf("Decide() with a revoked builder = %s %+v revoked %+v, want reproduced by a and b, c listed as revoked", v.Status, v.Groups, v.Revoked)
	}
}
