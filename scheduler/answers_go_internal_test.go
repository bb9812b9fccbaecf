package scheduler

import (
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/recipes"
)

// TestAnswersGoBuild: an attestation answers a job that names a Go release
// and platforms only under go/v2 and a label of one of those platforms;
// one under go/v1, which builds go1.24.4 for linux/amd64 alone, cannot
// pass for it — nor go/v2's label of a platform the claim did not name.
// go/v1's attestations of a job without a GoBuild still count.
func TestAnswersGoBuild(t *testing.T) {
	v1, err := recipes.LoadVersion("go", 1)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := recipes.LoadVersion("go", 2)
	if err != nil {
		t.Fatal(err)
	}
	src := lantern.Source{Name: "golang.org/x/tools/cmd/stringer", Version: "v0.30.0", Digest: lantern.DigestOf([]byte("zip"))}
	claim := lantern.DigestOf([]byte("claim"))
	plain := lantern.Job{Source: src, Recipe: "go", Claim: claim}
	cross := plain
	cross.Go = &lantern.GoBuild{Version: "1.23.4", Platforms: []string{"linux/arm64", "windows/amd64"}}
	rec := func(r *recipes.Recipe, label string) AttestationRecord {
		return AttestationRecord{Source: src, Claim: claim, Recipe: r.Ref(), Label: label}
	}
	// The claim publishes a binary under a label of its platforms, and one
	// under the default platform's label, which it did not ask to build.
	published := cross
	published.Published = map[string]lantern.Digest{
		"stringer-linux-arm64": lantern.DigestOf([]byte("arm64")),
		"stringer-linux-amd64": lantern.DigestOf([]byte("amd64")),
	}
	failure := func(r *recipes.Recipe) AttestationRecord {
		a := rec(r, "")
		a.Kind = lantern.KindRebuildFailure
		return a
	}
	for _, tc := range []struct {
		name string
		job  lantern.Job
		rec  AttestationRecord
		want string // "" answers
	}{
		{"go/v1, no go", plain, rec(v1, "stringer-linux-amd64"), ""},
		{"go/v2, no go", plain, rec(v2, "stringer-linux-amd64"), ""},
		{"go/v2, a platform of the claim", cross, rec(v2, "stringer-linux-arm64"), ""},
		{"go/v2, windows", cross, rec(v2, "stringer-windows-amd64.exe"), ""},
		{"go/v1 for a claim of go1.23.4", cross, rec(v1, "stringer-linux-arm64"), "recipe"},
		{"go/v1's default label for a claim of go1.23.4", cross, rec(v1, "stringer-linux-amd64"), "recipe"},
		{"go/v2, a platform the claim did not name", cross, rec(v2, "stringer-linux-amd64"), "label"},
		{"go/v2, windows without .exe", cross, rec(v2, "stringer-windows-amd64"), "label"},
		// A published label is no way in: go/v1 builds none of this job,
		// and go/v2 only its platforms.
		{"go/v1 under a label the claim publishes", published, rec(v1, "stringer-linux-arm64"), "recipe"},
		{"go/v2 under a published label of a platform not claimed", published, rec(v2, "stringer-linux-amd64"), "label"},
		{"go/v2 under a published label of a platform claimed", published, rec(v2, "stringer-linux-arm64"), ""},
		// A failure names no label: go/v1's cannot fail a job it cannot build.
		{"go/v1's failure of a claim of go1.23.4", cross, failure(v1), "recipe"},
		{"go/v2's failure of a claim of go1.23.4", cross, failure(v2), ""},
		{"go/v1's failure, no go", plain, failure(v1), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := answers(recipes.Versions(), tc.job, tc.rec)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("answers() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("answers() = %v, want a %s error", err, tc.want)
			}
		})
	}
}
