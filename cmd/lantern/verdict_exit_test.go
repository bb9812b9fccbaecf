package main

import (
	"io"
	"testing"

	"github.com/lanternfarm/lantern"
)

// TestVerdictExitCodes: lantern verdict answers "is NAME@VERSION
// reproduced?" with the exit codes every command uses — 0 yes, 1 not (yet):
// pending, failed, nothing to say; 3 contradicted. A CI job that runs
// `lantern verdict X && ship X` must not ship a source that nobody has
// reproduced yet, or that every builder failed to build.
func TestVerdictExitCodes(t *testing.T) {
	reproduced := lantern.Verdict{Label: "tool", Status: lantern.StatusReproduced}
	pending := lantern.Verdict{Label: "tool", Status: lantern.StatusPending}
	failed := lantern.Verdict{Status: lantern.StatusFailed}
	mismatch := lantern.Verdict{Label: "tool", Status: lantern.StatusMismatch}
	conflict := lantern.Verdict{Label: "tool", Status: lantern.StatusConflict}
	tests := []struct {
		name     string
		verdicts []lantern.Verdict
		want     int
	}{
		{"reproduced", []lantern.Verdict{reproduced}, 0},
		{"pending", []lantern.Verdict{pending}, 1},
		{"failed", []lantern.Verdict{failed}, 1},
		{"one label reproduced, another pending", []lantern.Verdict{reproduced, pending}, 1},
		{"no verdict", nil, 1},
		{"mismatch", []lantern.Verdict{reproduced, mismatch}, 3},
		{"conflict", []lantern.Verdict{conflict}, 3},
		{"pending and a mismatch", []lantern.Verdict{pending, mismatch}, 3},
	}
	for _, tt := range tests {
		for _, asJSON := range []bool{false, true} {
			name := tt.name
			if asJSON {
				name += " --json"
			}
			t.Run(name, func(t *testing.T) {
				io := &stdio{out: io.Discard, err: io.Discard}
				err := printVerdicts(io, "example.org/tool@v1.0.0", &sourceVerdicts{Verdicts: tt.verdicts}, asJSON)
				if got := exitCode(io.err, err); got != tt.want {
					t.Errorf("lantern verdict on %s: exit %d (%v), want %d", tt.name, got, err, tt.want)
				}
			})
		}
	}
}
